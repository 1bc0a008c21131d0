import itertools
from fractions import Fraction

import pytest
from kinoit.errors import InvalidParameter
from kinoit.media.plan import frames_per_segment, parse_rate, plan_segments


@pytest.mark.parametrize(
    ("fps", "k"),
    [("24000/1001", 24), ("30000/1001", 30), ("25", 25), ("30", 30), ("50", 50), ("60", 60)],
)
def test_one_second_segment_is_fps_rounded(fps: str, k: int) -> None:
    assert frames_per_segment(Fraction(fps), 1) == k


def test_segments_tile_frames_without_gap_or_overlap() -> None:
    plan = plan_segments(62, Fraction(25), 1)
    assert [(s.index, s.start_frame, s.frames) for s in plan] == [
        (0, 0, 25),
        (1, 25, 25),
        (2, 50, 12),
    ]
    assert all(a.end_frame == b.start_frame for a, b in itertools.pairwise(plan))


def test_shorter_than_one_segment_gives_one_short_segment() -> None:
    assert [(s.start_frame, s.frames) for s in plan_segments(7, Fraction(30), 1)] == [(0, 7)]


def test_two_second_segments_and_no_frames() -> None:
    assert [s.frames for s in plan_segments(100, Fraction(25), 2)] == [50, 50]
    assert plan_segments(0, Fraction(25), 1) == []


@pytest.mark.parametrize("seconds", [0, -1, 61])
def test_segment_length_out_of_range_is_rejected(seconds: float) -> None:
    with pytest.raises(InvalidParameter, match="seconds"):
        plan_segments(10, Fraction(25), seconds)


def test_rates_parse_as_exact_fractions() -> None:
    assert parse_rate("30000/1001") == Fraction(30000, 1001)
    assert parse_rate(29.97) == Fraction(2997, 100)
    with pytest.raises(InvalidParameter, match="fps"):
        parse_rate("abc")
    with pytest.raises(InvalidParameter, match="fps"):
        parse_rate("0/1")
