"""Can a variable-frame-rate source be transcoded directly, range by range? The proof
of the seek-and-resample recipe on real ffmpeg, before any planner uses it.

The whole-source lossless split resamples a VFR source with ``fps=<average rate>``:
output slot ``n`` (timestamp ``n / rate``) shows the last source frame whose
timestamp, rounded to the nearest slot, is at or before ``n``; ffmpeg first subtracts
the file's start time. A range read from the source gets the same slots only on the
same timeline: ``-copyts -start_at_zero`` keeps the source's timestamps minus that
start time through an input seek (a plain ``-ss`` shifts them by the seek, rounded),
so the same ``fps=`` filter numbers its slots as the whole-source split does, wherever
the decode starts; then a trim by output timestamp cuts the range's frames.

These tests compare, for a range starting at every segment boundary (the first, the
last, ranges starting mid-GOP), the frames of that recipe with the decoded frames of
the whole-source lossless split's segments, framemd5 by framemd5, and check the model
of which source frame (hence which keyframe to seek to) each slot shows.
"""

from __future__ import annotations

import bisect
import math
import subprocess
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import pytest
from kinoit.config import Settings
from kinoit.errors import InvalidParameter
from kinoit.media.keyframes import probe_and_scan, scan_keyframes
from kinoit.media.plan import frames_per_segment
from kinoit.media.probe import probe
from kinoit.media.split import split_video

from tests.media.conftest import decoded_frame_md5s

# (name, extension, setpts expression of frame N, nominal rate, whether the resampling
# drops and repeats frames inside the clip, not only at its end)
SOURCES = [
    # the bench's VFR source: every tenth frame half a frame late
    ("late-tenth", "mp4", "(N+0.5*floor(N/10))/30/TB", 30, False),
    # irregular: a sawtooth jitter of up to 0.9 frames plus the late tenth frame
    ("jitter", "mp4", "(N+0.45*mod(N\\,3)+0.5*floor(N/10))/30/TB", 30, True),
    ("jitter-mkv", "mkv", "(N+0.4*mod(N\\,3))/25/TB", 25, True),
]


def _vfr_clip(path: Path, expr: str, rate: int, seconds: float = 5) -> Path:
    """160x90 H.264 with B-frames, a 37-frame GOP (no segment starts on most of its
    keyframes) and the timestamps of ``expr`` kept (90 kHz encoder time base)."""
    argv = [
        "ffmpeg", "-v", "error", "-y", "-f", "lavfi",
        "-i", f"testsrc2=size=160x90:rate={rate},noise=alls=8:allf=t",
        "-vf", f"settb=1/90000,setpts={expr}", "-t", str(seconds),
        "-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-g", "37", "-keyint_min", "37",
        "-sc_threshold", "0", "-pix_fmt", "yuv420p",
        "-fps_mode", "vfr", "-enc_time_base", "1/90000",
    ]  # fmt: skip
    if path.suffix == ".mp4":
        argv += ["-video_track_timescale", "90000"]
    subprocess.run([*argv, str(path)], check=True, timeout=120)
    return path


def _near(x: Fraction) -> int:
    """Round half away from zero, as ffmpeg's AV_ROUND_NEAR_INF."""
    return math.floor(x + Fraction(1, 2)) if x >= 0 else -math.floor(-x + Fraction(1, 2))


def _slots(pts: Sequence[Fraction], rate: Fraction) -> list[int]:
    """The output slot of every source frame (presentation order): its timestamp minus
    the first, rounded to the nearest 1/rate."""
    return [_near((p - pts[0]) * rate) for p in pts]


def _shown(slots: Sequence[int], n: int) -> int:
    """The source frame the fps filter shows at output frame ``n`` (0 = the first slot):
    the last one whose slot is at or before it."""
    return bisect.bisect_right(slots, slots[0] + n) - 1


def _recipe_md5s(
    src: Path, rate: Fraction, seek: Fraction, start: int, end: int, slot0: int
) -> list[str]:
    """framemd5 of the recipe's frames for output frames [start, end)."""
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"]
    if seek:
        argv += ["-copyts", "-start_at_zero", "-noaccurate_seek", "-seek_timestamp", "1"]
        argv += ["-ss", f"{float(seek):.6f}"]
    argv += ["-i", str(src)]
    graph = (
        f"[0:v:0]fps={rate.numerator}/{rate.denominator},"
        f"trim=start_pts={slot0 + start}:end_pts={slot0 + end}"
    )
    argv += ["-filter_complex", graph, "-fps_mode", "passthrough", "-c:v", "rawvideo"]
    out = subprocess.run(
        [*argv, "-f", "framemd5", "-"], capture_output=True, check=True, timeout=120
    ).stdout.decode()
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if line and line[0] != "#"]


@pytest.mark.parametrize(
    ("name", "ext", "expr", "rate", "repeats"), SOURCES, ids=[s[0] for s in SOURCES]
)
def test_seek_then_resample_gives_the_lossless_splits_segments(
    tmp_path: Path, settings: Settings, name: str, ext: str, expr: str, rate: int,
    repeats: bool,
) -> None:  # fmt: skip
    src = _vfr_clip(tmp_path / f"{name}.{ext}", expr, rate)
    info = probe(src, settings=settings)
    assert info.vfr, "the source must be variable-rate for this test to mean anything"
    scan = scan_keyframes(src, settings)
    pts = sorted(p * scan.time_base for p in scan.pts)
    assert pts[0] == 0  # ffmpeg's start-time subtraction is then the model's "minus the first"
    whole = split_video(src, tmp_path / "split", seconds=1, mode="lossless", settings=settings)
    assert whole.mode == "lossless" and whole.fps == info.fps
    per_segment = [decoded_frame_md5s(seg.path) for seg in whole.segments]
    split_frames = [h for seg in per_segment for h in seg]
    assert [len(s) for s in per_segment] == [seg.frames for seg in whole.segments]
    assert len(split_frames) == whole.frames
    k = frames_per_segment(info.fps, 1)

    slots = _slots(pts, info.fps)
    source = decoded_frame_md5s(src)  # the source's own frames, presentation order
    assert len(source) == len(pts)
    shown = [_shown(slots, n) for n in range(whole.frames)]
    # the resampling drops or repeats source frames: the plain range seek is not enough
    assert shown != list(range(len(pts)))
    assert (len(set(shown)) < len(shown)) == repeats, (len(set(shown)), len(shown))
    # the model of the fps filter names the very frames the split holds
    assert [source[i] for i in shown] == split_frames

    mid_gop = 0
    for first in range(len(whole.segments)):
        start = first * k
        end = min(whole.frames, start + 2 * k)  # two segments: a boundary inside too
        chosen = shown[start]
        key = scan.keys[bisect.bisect_right(scan.keys, chosen) - 1]
        mid_gop += key < chosen
        # land on that keyframe: half the gap to the next frame after it
        seek = (pts[key] + pts[key + 1]) / 2 if start else Fraction(0)
        # the last range asks past the end: its count is the fps filter's own at EOF
        ask = end if end < whole.frames else end + 10 * k
        got = _recipe_md5s(src, info.fps, seek, start, ask, slots[0])
        assert got == split_frames[start:end], (first, key, chosen)
    assert mid_gop >= 3


# x264 at crf 0 is lossless: a rendition's decoded frames are then the frames fed to
# the encoder, whatever the rate control of a continuous or a per-segment encode
LOSSLESS = {"rungs": [{"name": "90p", "codec": "h264", "height": 90, "crf": 0,
                       "preset": "ultrafast"}]}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "ext", "expr", "rate"),
    [
        ("late-tenth", "mp4", SOURCES[0][2], 30),
        ("jitter-mkv", "mkv", SOURCES[2][2], 25),
    ],
)
def test_the_direct_transcode_of_a_vfr_source_gives_the_per_segment_paths_frames(
    tmp_path: Path, settings: Settings, name: str, ext: str, expr: str, rate: int
) -> None:
    from kinoit.media import direct_vfr
    from kinoit.media.direct import can_transcode_directly, direct_ranges, transcode_range
    from kinoit.media.ladder import load_ladder
    from kinoit.media.ranges import SplitRange
    from kinoit.media.signature import Signature
    from kinoit.media.transcode import transcode_segment

    src = _vfr_clip(tmp_path / f"{name}.{ext}", expr, rate)
    info, scan = probe_and_scan(src, settings)
    assert info.vfr and can_transcode_directly(info, scan)
    # the old path: the whole-source lossless split, a transcode per segment
    whole = split_video(
        src, tmp_path / "split", seconds=1, mode="lossless", settings=settings, signatures=True
    )
    assert direct_vfr.resampled_frames(src, info, scan, settings) == whole.frames
    old: list[str] = []
    for seg in whole.segments:
        files = transcode_segment(
            seg.path, LOSSLESS, tmp_path / "old" / str(seg.index), fps=info.fps,
            start_frame=seg.start_frame, settings=settings,
        )  # fmt: skip
        old += decoded_frame_md5s(files["90p"].path)
    assert len(old) == whole.frames
    # the direct path: ranges of two segments read from the source
    ranges = direct_ranges(info, scan, Fraction(1), Fraction(2), total=whole.frames)
    assert len(ranges) >= 2 and all(r["vfr"] for r in ranges)
    new: list[str] = []
    made = []
    for number, body in enumerate(ranges):
        rng = SplitRange.from_json(body)
        made += transcode_range(
            src, rng, load_ladder(LOSSLESS), tmp_path / "new" / str(number), fps=info.fps,
            seconds=Fraction(1), size=(info.width, info.height), settings=settings,
            first_pts=[Fraction(p) for p in body["pts"]],
        )  # fmt: skip
    assert [(s.index, s.start_frame, s.frames) for s in made] == [
        (s.index, s.start_frame, s.frames) for s in whole.segments
    ]
    for seg, theirs in zip(made, whole.segments, strict=True):
        new += decoded_frame_md5s(seg.renditions["90p"].path)
        assert seg.first_pts == Fraction(seg.start_frame) / info.fps
        assert theirs.signature is not None
        ours = Signature.from_bytes(seg.signature.read_bytes())
        assert ours.planes == Signature.from_bytes(theirs.signature.read_bytes()).planes
    assert new == old
    # a segment's re-run (kinoit.service.direct_plan.rerun_range): the last segment of
    # the second range alone, from that range's keyframe
    from kinoit.service.direct_plan import rerun_range

    last = int(ranges[1]["last"])
    split_doc = {"direct": ranges, "segment_frames": whole.segments[1].start_frame,
                 "source": {"frames": whole.frames, "fps": str(info.fps), "width": 160,
                            "height": 90}}  # fmt: skip
    body = rerun_range(split_doc, last)["range"]
    again = transcode_range(
        src, SplitRange.from_json(body), load_ladder(LOSSLESS), tmp_path / "rerun",
        fps=info.fps, seconds=Fraction(1), size=(info.width, info.height), settings=settings,
        first_pts=[Fraction(p) for p in body["pts"]],
    )  # fmt: skip
    assert [(s.index, s.frames) for s in again] == [(last, whole.segments[last].frames)]
    seg = whole.segments[last]
    begin = seg.start_frame
    assert decoded_frame_md5s(again[0].renditions["90p"].path) == old[begin : begin + seg.frames]


def test_a_vfr_ranges_argv_keeps_the_sources_timeline_and_cuts_by_slot(tmp_path: Path) -> None:
    from kinoit.media.direct import build_direct_argv
    from kinoit.media.ladder import load_ladder
    from kinoit.media.ranges import SplitRange, range_segments
    from kinoit.media.transcode import plan_targets

    lad = load_ladder(LOSSLESS).for_source(160, 90)
    fps = Fraction(143, 5)
    # the keyframe (source frame 60) comes after the range's first output frame (58)
    body = {"first": 2, "last": 3, "start_frame": 58, "frames": 52, "key_frame": 60,
            "seek": "60667/30000", "vfr": True}  # fmt: skip
    rng = SplitRange.from_json(body)
    assert rng.vfr and rng.to_json() == body
    with pytest.raises(InvalidParameter, match="key_frame"):
        SplitRange.from_json({**body, "vfr": False})
    plan = range_segments(rng, fps, Fraction(1))
    targets = plan_targets(lad, 160, 90, tmp_path, "range")
    argv = build_direct_argv("src.mp4", rng, plan, lad, targets, tmp_path, fps=fps, gop=29,
                             first_pts=Fraction(58) / fps)  # fmt: skip
    before = argv[: argv.index("-i")]
    assert {"-copyts", "-start_at_zero", "-noaccurate_seek"} <= set(before)
    assert before[before.index("-ss") + 1] == "2.022233"
    graph = argv[argv.index("-filter_complex") + 1]
    assert graph.startswith("[0:v:0]fps=143/5,trim=start_pts=58:end_pts=110,split=3")
    assert "setpts=N+58" in graph and argv[argv.index("-segment_frames") + 1] == "29"
    # a constant-rate range's JSON is unchanged
    assert "vfr" not in SplitRange(0, 1, 0, 50, 0, Fraction(0)).to_json()
