"""The direct transcode on real ffmpeg: one decode of a range of the source gives every
rung cut per segment, the segments' reference signatures and thumbnails, and the same
frames, timestamps and signature planes as the whole-source paths."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from kinoit.config import Settings
from kinoit.errors import MediaError
from kinoit.media.direct import build_direct_argv, direct_ranges, listed_frames, transcode_range
from kinoit.media.keyframes import scan_keyframes
from kinoit.media.ladder import load_ladder
from kinoit.media.plan import plan_segments
from kinoit.media.probe import probe
from kinoit.media.ranges import SplitRange, can_split_in_ranges, plan_ranges, range_segments
from kinoit.media.signature import Signature
from kinoit.media.split import split_video
from kinoit.media.thumbnail import make_thumbnail
from kinoit.media.transcode import plan_targets, transcode_segment
from PIL import Image

LADDER = {
    "rungs": [
        {"name": "90p", "codec": "h264", "height": 90, "crf": 26, "preset": "ultrafast"},
        # x264's B-frames (ultrafast has none): their delay makes the first DTS negative
        {"name": "48p", "codec": "h264", "height": 48, "crf": 30, "preset": "veryfast"},
    ]
}
VP9 = {"rungs": [{"name": "vp9", "codec": "vp9", "height": 48, "crf": 40, "preset": 8}]}


def _clip(path: Path, rate: str, gop: int, bframes: int, seconds: float = 5) -> Path:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi",
         "-i", f"testsrc2=size=160x90:rate={rate},noise=alls=8:allf=t",
         "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-bf", str(bframes),
         "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


def _frames(path: Path) -> list[dict[str, object]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "frame=key_frame,pict_type,pts_time", "-of", "json", str(path)],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return list(json.loads(out)["frames"])


def _first_slice_nal(path: Path) -> int:
    """The nal_unit_type of the first coded slice of an H.264 file."""
    out = subprocess.run(
        ["ffmpeg", "-v", "trace", "-nostdin", "-i", str(path), "-frames:v", "1", "-f", "null",
         "-"],
        capture_output=True, text=True, timeout=60,
    ).stderr  # fmt: skip
    for found in re.finditer(r"\[h264 @ [^]]*\] nal_unit_type: (\d+)\(", out):
        if int(found[1]) in (1, 5):
            return int(found[1])
    raise AssertionError("no slice found")


def _pts(path: Path) -> list[float]:
    return sorted(float(str(f["pts_time"])) for f in _frames(path))


def _run(src: Path, rng: SplitRange, out: Path, settings: Settings, ladder=LADDER, **kw):  # type: ignore[no-untyped-def]
    info = probe(src, settings=settings)
    return transcode_range(
        src, rng, load_ladder(ladder), out, fps=info.fps, seconds=Fraction(1),
        size=(info.width, info.height), settings=settings, **kw,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "rate", "gop", "bframes"),
    [("b.mp4", "25", 47, 3), ("short.mp4", "25", 12, 2), ("phone.mp4", "30", 30, 0),
     ("b.mkv", "30000/1001", 40, 3)],
)  # fmt: skip
def test_ranges_give_the_whole_sources_frames_signatures_and_idrs(
    tmp_path: Path, settings: Settings, name: str, rate: str, gop: int, bframes: int
) -> None:
    src = _clip(tmp_path / name, rate, gop, bframes)
    info = probe(src, settings=settings)
    scan = scan_keyframes(src, settings)
    assert can_split_in_ranges(info, scan)
    plan = plan_segments(info.frames, info.fps, 1)
    ranges = direct_ranges(info, scan, Fraction(1), Fraction(2))
    assert len(ranges) >= 2
    assert [SplitRange.from_json(r) for r in ranges] == [
        replace(r, seek=SplitRange.from_json(body).seek)
        for r, body in zip(plan_ranges(plan, scan, info.fps, 2), ranges, strict=True)
    ]
    got = []
    for number, body in enumerate(ranges):
        rng = SplitRange.from_json(body)
        if rng.start_frame:  # the seek lands on the range's keyframe, half a frame after it
            key = scan.pts[rng.key_frame] * scan.time_base
            assert rng.seek == key + Fraction(1, 2) / info.fps
        firsts = [Fraction(p) for p in body["pts"]]
        got += _run(src, rng, tmp_path / f"r{number}", settings, first_pts=firsts)
    assert [(s.index, s.start_frame, s.frames) for s in got] == [
        (p.index, p.start_frame, p.frames) for p in plan
    ]
    # the signature split writes today for the same segments: the same planes
    whole = split_video(
        src, tmp_path / "split", seconds=1, mode="aligned", settings=settings, signatures=True
    )
    for mine, theirs in zip(got, whole.segments, strict=True):
        assert theirs.signature is not None
        ours, ref = (
            Signature.from_bytes(mine.signature.read_bytes()),
            Signature.from_bytes(theirs.signature.read_bytes()),
        )
        assert ours.planes == ref.planes, mine.index
        assert ours.pts is not None
        planned = [scan.pts[f] * scan.time_base for f in range(mine.start_frame, mine.start_frame
                                                                + mine.frames)]  # fmt: skip
        assert all(abs(a - b) < Fraction(1, 1000) for a, b in zip(ours.pts, planned, strict=True))
    # every rendition segment starts with an IDR; concatenated, a rung has the frames and
    # timestamps of one whole-source transcode
    reference = transcode_segment(
        src, LADDER, tmp_path / "whole", fps=info.fps, start_frame=0, gop=25, settings=settings
    )
    for rung in ("90p", "48p"):
        joined = tmp_path / f"{rung}.ts"
        with joined.open("wb") as out:
            for seg in got:
                path = seg.renditions[rung].path
                frames = _frames(path)
                assert len(frames) == seg.frames == seg.renditions[rung].frames
                assert frames[0]["pict_type"] == "I" and frames[0]["key_frame"] == 1
                assert _first_slice_nal(path) == 5, (rung, seg.index)
                out.write(path.read_bytes())
        assert _pts(joined) == pytest.approx(_pts(reference[rung].path), abs=1e-6)


def test_a_range_that_starts_mid_gop_gives_the_split_segments(
    tmp_path: Path, settings: Settings
) -> None:
    src = _clip(tmp_path / "c.mp4", "25", 60, 3, seconds=4)
    scan = scan_keyframes(src, settings)
    # segments 1..2: frames 25..74, decoded from the keyframe at 0 (seek half a frame early)
    rng = SplitRange(1, 2, 25, 50, 0, scan.pts[25] * scan.time_base - Fraction(1, 50))
    firsts = [scan.pts[25] * scan.time_base, scan.pts[50] * scan.time_base]
    got = _run(src, rng, tmp_path / "r", settings, ladder=VP9, first_pts=firsts)
    whole = split_video(
        src, tmp_path / "split", seconds=1, mode="aligned", settings=settings, signatures=True
    )
    thumbs = tmp_path / "thumbs"
    for seg in got:
        theirs = whole.segments[seg.index]
        assert theirs.signature is not None
        ref = Signature.from_bytes(theirs.signature.read_bytes())
        assert Signature.from_bytes(seg.signature.read_bytes()).planes == ref.planes
        vp9 = seg.renditions["vp9"]
        assert vp9.path.suffix == ".mkv" and len(_frames(vp9.path)) == 25
        assert _frames(vp9.path)[0]["key_frame"] == 1
        # the thumbnail: the middle frame, as the thumbnail stage picks it from the segment
        alone = make_thumbnail(theirs.path, thumbs / f"{seg.index}.jpg", settings=settings)
        with Image.open(seg.thumbnail) as mine, Image.open(alone) as other:
            assert mine.size == other.size == (320, 180)
            diff = np.abs(np.asarray(mine, float) - np.asarray(other, float)).mean()
            assert diff < 3, diff


def test_a_mis_cut_range_fails(tmp_path: Path, settings: Settings) -> None:
    src = _clip(tmp_path / "c.mp4", "25", 25, 2, seconds=3)
    scan = scan_keyframes(src, settings)
    # a seek that overshoots: it lands on the keyframe after the range's first frame,
    # so the decode starts one segment late
    wrong = scan.pts[50] * scan.time_base + Fraction(1, 50)
    rng = SplitRange(1, 1, 25, 25, 25, wrong)
    with pytest.raises(MediaError, match=r"segment 1 starts at source time 2\.0"):
        _run(src, rng, tmp_path / "r", settings, first_pts=[scan.pts[25] * scan.time_base])
    assert not list((tmp_path / "r").glob("**/*.ts"))


def test_argv_one_decode_segment_muxer_per_rung(tmp_path: Path) -> None:
    lad = load_ladder(LADDER).for_source(160, 90)
    rng = SplitRange(4, 6, 100, 60, 94, Fraction(398, 100))
    plan = range_segments(rng, Fraction(25), Fraction(1))
    targets = plan_targets(lad, 160, 90, tmp_path, "range")
    argv = build_direct_argv("src.mp4", rng, plan, lad, targets, tmp_path, fps=Fraction(25),
                             gop=25, first_pts=Fraction(4))  # fmt: skip
    assert argv.count("-i") == 1 and argv[argv.index("-ss") + 1] == "3.980000"
    assert "-noaccurate_seek" in argv[: argv.index("-i")]
    graph = argv[argv.index("-filter_complex") + 1]
    # the cut: from the frame at source time 4 s (half a frame early), 60 frames
    assert graph.startswith("[0:v:0]trim=start=0.000000,trim=end_frame=60,split=3")
    assert "setpts=N+100" in graph and "eq(n\\,12)+eq(n\\,37)+eq(n\\,55)" in graph
    assert argv.count("segment") == 2 and argv.count("-force_key_frames") == 2
    assert argv[argv.index("-segment_frames") + 1] == "25,50"
    assert argv[argv.index("-segment_start_number") + 1] == "4"
    assert argv[argv.index("-reset_timestamps") + 1] == "0"


def test_listed_frames_derive_the_first_from_the_total() -> None:
    text = "00002.ts,0.000000,3.000000\n00003.ts,3.000000,4.000000\n00004.ts,4.000000,4.400000\n"
    assert listed_frames(text, Fraction(25), 60) == [25, 25, 10]
