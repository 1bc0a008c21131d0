"""Segment planning: which frames go into which segment (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from kinoit.errors import InvalidParameter

# Segments longer than this are no longer "small units of work".
MAX_SEGMENT_SECONDS = 60


@dataclass(frozen=True)
class SegmentPlan:
    """Segment ``index`` holds frames [start_frame, start_frame + frames)."""

    index: int
    start_frame: int
    frames: int

    @property
    def end_frame(self) -> int:
        """One past the last frame of the segment."""
        return self.start_frame + self.frames


def parse_rate(value: str | Fraction | int | float) -> Fraction:
    """A frame rate such as ``"30000/1001"``, ``"25"`` or ``29.97`` as a positive Fraction."""
    try:
        rate = (
            Fraction(value)
            if not isinstance(value, float)
            else Fraction(value).limit_denominator(1001)
        )
    except (ValueError, ZeroDivisionError):
        raise InvalidParameter("fps", f"not a frame rate: {value!r}") from None
    if rate <= 0:
        raise InvalidParameter("fps", f"must be positive, got {value!r}")
    return rate


def frames_per_segment(fps: Fraction, seconds: float | Fraction) -> int:
    """k = fps x seconds rounded to whole frames (29.97 fps x 1 s gives 30 frames)."""
    if not 0 < float(seconds) <= MAX_SEGMENT_SECONDS:
        raise InvalidParameter("seconds", f"must be in (0, {MAX_SEGMENT_SECONDS}], got {seconds}")
    return max(1, round(fps * Fraction(seconds)))


def plan_segments(frames: int, fps: Fraction, seconds: float | Fraction = 1) -> list[SegmentPlan]:
    """Cut ``frames`` frames into segments of k = fps x seconds frames; the last may be shorter."""
    if frames < 0:
        raise InvalidParameter("frames", f"must be >= 0, got {frames}")
    k = frames_per_segment(fps, seconds)
    return [
        SegmentPlan(index=i, start_frame=start, frames=min(k, frames - start))
        for i, start in enumerate(range(0, frames, k))
    ]
