"""split over keyframe ranges: the pure planner, and real ffmpeg range splits that
must write the very segment and signature bytes a whole-source split writes."""

from __future__ import annotations

import itertools
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
from kinoit.config import Settings
from kinoit.errors import InvalidParameter
from kinoit.media.keyframes import KeyframeScan, scan_keyframes
from kinoit.media.plan import plan_segments
from kinoit.media.probe import probe
from kinoit.media.ranges import (
    SplitRange,
    can_split_in_ranges,
    plan_ranges,
    range_segments,
    split_range,
)
from kinoit.media.split import split_video


def _scan(frames: int, keys: list[int], tick: int = 512) -> KeyframeScan:
    pts = [i * tick for i in range(frames)]
    return KeyframeScan(pts, keys, Fraction(1, 12800), tuple(pts))


def test_one_range_when_the_plan_is_not_longer_than_a_range() -> None:
    plan = plan_segments(200, Fraction(25), 1)
    ranges = plan_ranges(plan, _scan(200, [0]), Fraction(25), 8)
    assert ranges == [SplitRange(0, 7, 0, 200, 0, Fraction(0))]
    assert plan_ranges(plan, _scan(200, [0]), Fraction(25), 0) == ranges


def test_ranges_cover_every_segment_once_in_order() -> None:
    plan = plan_segments(25 * 40 + 7, Fraction(25), 1)  # 41 segments, the last 7 frames
    ranges = plan_ranges(plan, _scan(len(plan) * 25, [0]), Fraction(25), 8)
    assert ranges[0].first == 0 and ranges[-1].last == len(plan) - 1
    for a, b in itertools.pairwise(ranges):
        assert b.first == a.last + 1
        assert b.start_frame == a.start_frame + a.frames
    assert sum(r.frames for r in ranges) == 25 * 40 + 7
    # no keyframe but the first: every boundary at its nominal place
    assert [r.first for r in ranges] == [0, 8, 16, 24, 32, 40][: len(ranges)]


def test_boundaries_move_to_just_after_a_keyframe_within_a_quarter_range() -> None:
    plan = plan_segments(25 * 24, Fraction(25), 1)
    # keyframes at frames 0, 230 (segment 9 starts at 225, 10 at 250), 410
    ranges = plan_ranges(plan, _scan(600, [0, 230, 410]), Fraction(25), 8)
    # nominal boundary 8 (frame 200): candidates 6..10; segment 10 is 20 frames after
    # keyframe 230, the others further from theirs
    assert ranges[1].first == 10 and ranges[1].key_frame == 230
    # next nominal 18 (frame 450), candidates 16..20: 17 starts at 425, 15 after 410
    assert ranges[2].first == 17 and ranges[2].key_frame == 410
    half = Fraction(1, 50)
    assert ranges[1].seek == Fraction(250 * 512, 12800) - half


def _wasted(ranges: list[SplitRange]) -> int:
    """Frames the ranges decode and throw away before their first (pure)."""
    return sum(r.start_frame - r.key_frame for r in ranges)


def test_with_x264s_default_gop_the_ranges_start_on_keyframes() -> None:
    # 25 fps, a keyframe every 250 frames (10 s), ranges of about 6 s: no 6-s window
    # holds a keyframe every time, so the ranges grow to the next one instead
    plan = plan_segments(25 * 40, Fraction(25), 1)
    keys = [0, 250, 500, 750]
    ranges = plan_ranges(plan, _scan(1000, keys), Fraction(25), 6)
    assert [r.first for r in ranges] == [0, 10, 20, 30]
    assert _wasted(ranges) == 0
    # a keyframe within half a range of the nominal boundary is taken as before
    keys = [0, 200, 325, 650]  # segments 8, 13 (a keyframe 0 frames before), 26
    ranges = plan_ranges(plan, _scan(1000, keys), Fraction(25), 6)
    assert [r.first for r in ranges][:3] == [0, 8, 13]
    # with no keyframe after the first at all, the boundaries stay nominal, and the
    # last 10 segments (under two ranges) stay one range rather than decode 900 frames
    # more for a range of their last 4
    ranges = plan_ranges(plan, _scan(1000, [0]), Fraction(25), 6)
    assert [r.first for r in ranges] == [0, 6, 12, 18, 24, 30]


def test_a_short_last_range_joins_the_one_before() -> None:
    plan = plan_segments(25 * 17, Fraction(25), 1)
    ranges = plan_ranges(plan, _scan(425, [0]), Fraction(25), 8)
    assert [(r.first, r.last) for r in ranges] == [(0, 7), (8, 16)]


def test_range_json_round_trips_and_bad_ranges_name_the_field() -> None:
    rng = SplitRange(3, 5, 75, 75, 41, Fraction(149, 50))
    assert SplitRange.from_json(rng.to_json()) == rng
    with pytest.raises(InvalidParameter) as err:
        SplitRange.from_json({**rng.to_json(), "frames": -1})
    assert err.value.field == "range.frames"
    with pytest.raises(InvalidParameter):
        SplitRange.from_json({**rng.to_json(), "key_frame": 80})
    with pytest.raises(InvalidParameter):
        range_segments(SplitRange(3, 5, 70, 75, 41, Fraction(0)), Fraction(25), Fraction(1))


def _long_gop_clip(path: Path, rate: str) -> Path:
    """B-frames and keyframes off the segment boundaries: the lossless split's case."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi",
         "-i", f"testsrc2=size=160x90:rate={rate},noise=alls=8:allf=t",
         "-t", "6", "-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-g", "47",
         str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


@pytest.mark.parametrize(("name", "rate"), [("clip.mp4", "25"), ("clip.mkv", "30000/1001")])
def test_range_splits_write_the_whole_splits_bytes(
    tmp_path: Path, settings: Settings, name: str, rate: str
) -> None:
    src = _long_gop_clip(tmp_path / name, rate)
    info = probe(src, settings=settings)
    scan = scan_keyframes(src, settings)
    assert can_split_in_ranges(info, scan)
    whole = split_video(
        src, tmp_path / "whole", seconds=1, mode="aligned", settings=settings, signatures=True
    )
    assert whole.mode == "lossless"
    plan = plan_segments(info.frames, info.fps, 1)
    ranges = plan_ranges(plan, scan, info.fps, 2)
    assert len(ranges) >= 2 and any(r.key_frame < r.start_frame for r in ranges)
    got = []
    for number, rng in enumerate(ranges):
        got += split_range(
            src, tmp_path / f"range{number}", rng, fps=info.fps, seconds=Fraction(1),
            pix_fmt=info.pix_fmt, settings=settings,
        )  # fmt: skip
    assert [s.index for s in got] == [s.index for s in whole.segments]
    for mine, theirs in zip(got, whole.segments, strict=True):
        assert (mine.start_frame, mine.frames) == (theirs.start_frame, theirs.frames)
        assert mine.path.read_bytes() == theirs.path.read_bytes(), mine.index
        assert mine.signature is not None and theirs.signature is not None
        assert mine.signature.read_bytes() == theirs.signature.read_bytes(), mine.index


def test_a_transport_stream_is_not_split_in_ranges(tmp_path: Path, settings: Settings) -> None:
    mp4 = _long_gop_clip(tmp_path / "clip.mp4", "25")
    ts = tmp_path / "clip.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(mp4), "-c", "copy", str(ts)], check=True)
    assert not can_split_in_ranges(probe(ts, settings=settings), scan_keyframes(ts, settings))
