import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kinoit.errors import InvalidParameter
from kinoit.media import load_split, probe, split_video
from kinoit.media.keyframes import keyframe_indices, plan_copy_cuts
from kinoit.media.plan import SegmentPlan
from kinoit.media.split import build_decode_split_argv

RATES = ["24000/1001", "30000/1001", "25", "30", "50", "60"]


def segment_frames(frame_hashes, result) -> list[str]:
    out: list[str] = []
    for seg in result.segments:
        hashes = frame_hashes(seg.path)
        if seg.frame_range is not None:
            hashes = hashes[seg.frame_range[0] : seg.frame_range[1]]
        assert len(hashes) == seg.frames
        out += hashes
    return out


@pytest.mark.parametrize("fps", RATES)
@pytest.mark.parametrize("mode", ["raw", "lossless"])
def test_decoded_segments_are_pixel_identical_to_the_source(
    clip, frame_hashes, tmp_path: Path, settings, fps: str, mode: str
) -> None:
    src = clip(fps=fps, audio=False)
    result = split_video(src, tmp_path / "s", mode=mode, settings=settings)  # type: ignore[arg-type]
    k = round(float(result.fps))
    assert [s.frames for s in result.segments[:-1]] == [k] * (len(result.segments) - 1)
    assert [s.start_frame for s in result.segments] == [i * k for i in range(len(result.segments))]
    assert segment_frames(frame_hashes, result) == frame_hashes(src)


@pytest.mark.parametrize("mode", ["raw", "lossless", "copy"])
def test_long_gop_source_with_keyframes_off_the_boundaries(
    clip, frame_hashes, tmp_path: Path, settings, mode: str
) -> None:
    src = clip(seconds=3.0, gop=37, audio=False)
    result = split_video(src, tmp_path / "s", mode=mode, settings=settings)  # type: ignore[arg-type]
    assert [s.frames for s in result.segments] == [25, 25, 25]
    assert segment_frames(frame_hashes, result) == frame_hashes(src)
    if mode == "copy":
        assert [s.frame_range for s in result.segments] == [(0, 25), (25, 50), (13, 38)]


def test_segments_json_matches_the_issue_format(clip, tmp_path: Path, settings) -> None:
    result = split_video(clip(), tmp_path / "s", settings=settings)
    doc = json.loads((tmp_path / "s" / "segments.json").read_text())
    assert doc["fps"] == "25/1" and doc["frames"] == 55
    assert doc["segments"][0] == {"index": 0, "start_frame": 0, "frames": 25, "path": "00000.mkv"}
    assert doc["segments"][-1]["frames"] == 5
    assert doc["audio"] == "audio.m4a"
    assert load_split(tmp_path / "s") == result


def test_audio_is_extracted_once_to_the_video_duration(clip, tmp_path: Path, settings) -> None:
    result = split_video(clip(), tmp_path / "s", settings=settings)
    assert result.audio is not None
    audio = probe(result.audio, settings=settings) if False else None  # audio-only: use ffprobe
    del audio
    import subprocess

    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,duration", "-of", "json",
         str(result.audio)], capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    stream = json.loads(out)["streams"][0]
    assert stream["codec_name"] == "aac"
    assert abs(float(stream["duration"]) - 2.2) <= 1 / 25


def test_no_audio_gives_null(clip, tmp_path: Path, settings) -> None:
    result = split_video(clip(audio=False), tmp_path / "s", settings=settings)
    assert result.audio is None
    assert json.loads(result.manifest.read_text())["audio"] is None


def test_shorter_than_one_second(clip, frame_hashes, tmp_path: Path, settings) -> None:
    src = clip(seconds=0.4)
    result = split_video(src, tmp_path / "s", settings=settings)
    assert [(s.start_frame, s.frames) for s in result.segments] == [(0, 10)]
    assert segment_frames(frame_hashes, result) == frame_hashes(src)


def test_odd_size(clip, frame_hashes, tmp_path: Path, settings) -> None:
    src = clip(width=161, height=91, pix_fmt="yuv444p", audio=False)
    result = split_video(src, tmp_path / "s", settings=settings)
    assert (result.width, result.height) == (161, 91)
    assert segment_frames(frame_hashes, result) == frame_hashes(src)


def test_rotation_is_applied_to_the_frames(clip, tmp_path: Path, settings) -> None:
    result = split_video(clip(rotation=90, audio=False), tmp_path / "s", settings=settings)
    seg = probe(result.segments[0].path, settings=settings)
    assert (seg.width, seg.height, seg.rotation) == (90, 160, 0)


def test_variable_frame_rate_becomes_constant_without_losing_time(
    clip, tmp_path: Path, settings
) -> None:
    src = clip(vfr=True, audio=False)
    info = probe(src, settings=settings)
    result = split_video(src, tmp_path / "s", settings=settings)
    assert result.fps == info.fps
    assert abs(result.frames / float(result.fps) - info.duration) <= 2 / float(result.fps)
    for seg in result.segments:
        assert probe(seg.path, settings=settings).frames == seg.frames


def test_copy_mode_refuses_vfr_and_bad_mode(clip, tmp_path: Path, settings) -> None:
    with pytest.raises(InvalidParameter, match="constant frame rate"):
        split_video(clip(vfr=True, audio=False), tmp_path / "s", mode="copy", settings=settings)
    with pytest.raises(InvalidParameter, match="mode"):
        split_video(clip(), tmp_path / "s", mode="zip", settings=settings)  # type: ignore[arg-type]


def test_copy_cuts_are_planned_from_keyframes() -> None:
    plan = [SegmentPlan(0, 0, 25), SegmentPlan(1, 25, 25), SegmentPlan(2, 50, 10)]
    cuts = plan_copy_cuts(plan, [0, 37], 60)
    assert [(c.first_key, c.packets, c.frame_range) for c in cuts] == [
        (0, 37, (0, 25)), (0, 60, (25, 50)), (37, 23, (13, 23)),
    ]  # fmt: skip
    assert keyframe_indices([(3, False), (0, True), (2, True), (1, False)]) == [0, 2]


def test_decode_split_argv_cuts_at_planned_frames(tmp_path: Path) -> None:
    from fractions import Fraction

    plan = [SegmentPlan(0, 0, 25), SegmentPlan(1, 25, 25), SegmentPlan(2, 50, 5)]
    argv = build_decode_split_argv(
        "in.mp4", tmp_path, mode="lossless", plan=plan, fps=Fraction(25), vfr=False,
        segment_list=tmp_path / "l.csv",
    )  # fmt: skip
    assert argv[argv.index("-segment_frames") + 1] == "25,50"
    assert argv[argv.index("-c:v") + 1] == "ffv1" and "-g" in argv
    assert "-vf" not in argv


def test_lossless_segments_are_ut_video_where_it_keeps_the_pixel_format(tmp_path: Path) -> None:
    from fractions import Fraction

    plan = [SegmentPlan(0, 0, 25)]

    def codec(pix_fmt: str) -> str:
        argv = build_decode_split_argv(
            "in.mp4", tmp_path, mode="lossless", plan=plan, fps=Fraction(25), vfr=False,
            segment_list=tmp_path / "l.csv", pix_fmt=pix_fmt,
        )  # fmt: skip
        return argv[argv.index("-c:v") + 1]

    assert [codec(f) for f in ("yuv420p", "yuv422p", "yuv444p")] == ["utvideo"] * 3
    assert [codec(f) for f in ("yuv420p10le", "yuvj420p", "nv12")] == ["ffv1"] * 3


@pytest.mark.parametrize(("pix_fmt", "codec"), [("yuv420p", "utvideo"), ("yuv420p10le", "ffv1")])
def test_lossless_split_is_pixel_identical_in_either_codec(
    clip, frame_hashes, tmp_path: Path, settings, pix_fmt: str, codec: str
) -> None:
    import subprocess

    src = clip(seconds=2.2, gop=37, pix_fmt=pix_fmt, preset="veryfast", audio=False)
    result = split_video(src, tmp_path / "s", mode="lossless", settings=settings)
    used = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name", "-of", "csv=p=0", str(result.segments[0].path)],
        capture_output=True, check=True, timeout=60,
    ).stdout.decode().strip()  # fmt: skip
    assert used == codec
    assert segment_frames(frame_hashes, result) == frame_hashes(src)


def test_auto_mode_copies_short_gops_and_decodes_long_ones(clip, tmp_path: Path, settings) -> None:
    short = split_video(clip(seconds=2.0, gop=25, audio=False), tmp_path / "a", settings=settings)
    assert short.mode == "copy"
    assert json.loads(short.manifest.read_text())["mode"] == "copy"
    long = split_video(clip(seconds=3.0, gop=75, audio=False), tmp_path / "b", settings=settings)
    assert long.mode == "lossless"
    vfr = split_video(clip(vfr=True, audio=False), tmp_path / "c", settings=settings)
    assert vfr.mode == "lossless"


def test_choose_mode_is_pure() -> None:
    from fractions import Fraction

    from kinoit.media.keyframes import KeyframeScan
    from kinoit.media.probe import ProbeResult
    from kinoit.media.split import choose_mode

    info = ProbeResult("x", "mp4", "h264", 4.0, Fraction(25), 100, 64, 36, "yuv420p", 0, False)
    assert choose_mode(info, KeyframeScan(list(range(100)), [0, 50], Fraction(1, 25)), 1) == "copy"
    assert (
        choose_mode(info, KeyframeScan(list(range(100)), [0, 60], Fraction(1, 25)), 1) == "lossless"
    )
    assert choose_mode(info, None, 1) == "lossless"


def test_copy_mode_is_exact_with_b_frames(clip, frame_hashes, tmp_path: Path, settings) -> None:
    src = clip(fps="30000/1001", seconds=2.5, gop=37, preset="veryfast", audio=False)
    result = split_video(src, tmp_path / "s", mode="copy", settings=settings)
    assert segment_frames(frame_hashes, result) == frame_hashes(src)


@pytest.mark.parametrize("mode", ["raw", "copy"])
def test_temp_folders_live_under_outdir_and_are_removed(
    clip, tmp_path: Path, settings, temp_dirs: list[Path], mode: str
) -> None:
    out = tmp_path / "s"
    split_video(clip(audio=False), out, mode=mode, settings=settings)  # type: ignore[arg-type]
    assert all(d.parent == out and not d.exists() for d in temp_dirs), temp_dirs
    assert list((tmp_path / "system-tmp").iterdir()) == []
    assert not list(out.glob("kinoit-*"))


@pytest.mark.parametrize("preset", ["ultrafast", "veryfast"])  # no B-frames, B-frames
def test_aligned_source_is_cut_by_stream_copy_exactly_as_lossless(
    clip, frame_hashes, tmp_path: Path, settings, preset: str
) -> None:
    # a keyframe on every segment boundary (a phone's 1-second GOP): no encode at all
    src = clip(seconds=3.2, gop=25, preset=preset, audio=False)
    copied = split_video(src, tmp_path / "a", mode="aligned", settings=settings, signatures=True)
    lossless = split_video(src, tmp_path / "l", mode="lossless", settings=settings, signatures=True)
    assert copied.mode == "copy" and lossless.mode == "lossless"
    assert [s.frames for s in copied.segments] == [25, 25, 25, 5]
    assert all(s.frame_range is None for s in copied.segments)
    codec = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=codec_name", "-of", "csv=p=0", str(copied.segments[1].path)],
        capture_output=True, check=True, timeout=60,
    ).stdout.decode().strip()  # fmt: skip
    assert codec == "h264"  # the source's own packets
    for a, b in zip(copied.segments, lossless.segments, strict=True):
        assert frame_hashes(a.path) == frame_hashes(b.path)
        assert (a.start_frame, a.frames) == (b.start_frame, b.frames)
        assert a.signature is not None and b.signature is not None
        assert a.signature.read_bytes() == b.signature.read_bytes()
    assert segment_frames(frame_hashes, copied) == frame_hashes(src)
    assert load_split(tmp_path / "a") == copied


@pytest.mark.parametrize(("fps", "gop"), [(25, 37), (30, 25)])
def test_keyframes_off_the_boundaries_are_split_lossless(
    clip, frame_hashes, tmp_path: Path, settings, fps: int, gop: int
) -> None:
    src = clip(seconds=3.2, fps=fps, gop=gop, audio=False)
    result = split_video(src, tmp_path / "s", mode="aligned", settings=settings, signatures=True)
    assert result.mode == "lossless"
    assert all(s.path.suffix == ".mkv" and s.signature is not None for s in result.segments)
    assert segment_frames(frame_hashes, result) == frame_hashes(src)


def test_cuts_on_keyframes_refuses_reordering_across_a_boundary() -> None:
    from fractions import Fraction

    from kinoit.media.keyframes import KeyframeScan, cuts_on_keyframes
    from kinoit.media.plan import plan_segments

    plan = plan_segments(8, Fraction(4), 1)  # two segments of 4 frames
    tb = Fraction(1, 4)
    closed = KeyframeScan(list(range(8)), [0, 4], tb, (0, 2, 1, 3, 4, 6, 5, 7))
    assert cuts_on_keyframes(closed, plan, 8)
    # frame 3 decoded after the keyframe at 4 (an open GOP): not cuttable there
    open_gop = KeyframeScan(list(range(8)), [0, 4], tb, (0, 2, 1, 4, 3, 6, 5, 7))
    assert not cuts_on_keyframes(open_gop, plan, 8)
    off = KeyframeScan(list(range(8)), [0, 5], tb, tuple(range(8)))
    assert not cuts_on_keyframes(off, plan, 8)
    missing = KeyframeScan(list(range(7)), [0, 4], tb, tuple(range(7)))
    assert not cuts_on_keyframes(missing, plan, 8)
    assert not cuts_on_keyframes(KeyframeScan(list(range(8)), [0, 4], tb), plan, 8)


def test_aligned_split_falls_back_to_lossless_when_the_copy_fails(
    clip, frame_hashes, tmp_path: Path, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kinoit.media import split as split_module

    real = split_module.build_aligned_copy_argv

    def refused(*args: Any, **kwargs: Any) -> list[str]:
        argv = real(*args, **kwargs)
        return [*argv[:-1], "-c:v", "no-such-codec", argv[-1]]  # real ffmpeg fails

    monkeypatch.setattr(split_module, "build_aligned_copy_argv", refused)
    src = clip(seconds=3.2, gop=25, audio=False)
    result = split_video(src, tmp_path / "s", mode="aligned", settings=settings, signatures=True)
    assert result.mode == "lossless"
    assert [s.frames for s in result.segments] == [25, 25, 25, 5]
    assert segment_frames(frame_hashes, result) == frame_hashes(src)
