"""The direct transcode of a variable-frame-rate source (see :mod:`kinoit.media.direct`):
the frames the whole-source lossless split gives, read range by range from the source.

The split resamples a VFR source with ``fps=<average rate>``: output frame (slot)
``n``, at ``n / rate``, shows the last source frame whose timestamp, rounded to the
nearest slot, is at or before ``n`` (ffmpeg first subtracts the file's start time,
here 0). A range reads the same slots when its decode keeps the source's timeline:
``-copyts -start_at_zero`` through an input seek that lands on the keyframe at or
before the source frame the range's first slot shows (half the real gap to the frame
after that keyframe), no frame dropped by the seek, the same ``fps=`` filter, then a
trim by output timestamp (``start_pts``/``end_pts``, in slots). The proof on real
ffmpeg is tests/media/test_direct_vfr.py.

So every timestamp after the filter is a slot: a segment's planned "first pts" is
its first slot's time, ``start_frame / rate``, and a seek that lands past the frame
the first slot shows starts the filter at a later slot, which that check sees.

Only where the model is exact: MP4/MOV or Matroska (a keyframe index), one packet
per frame with unique timestamps, the first keyframe first, the first frame's
timestamp and the file's start time 0. MPEG-TS and every other VFR source keep the
whole-source lossless split. The total frames depend on how long the container says
the last frame lasts (MP4 and Matroska differ): :func:`resampled_frames` runs the
recipe over the last GOP to count them.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from kinoit.config import Settings
from kinoit.errors import MediaError
from kinoit.media import ffmpeg
from kinoit.media.keyframes import KeyframeScan
from kinoit.media.plan import plan_segments
from kinoit.media.probe import ProbeResult
from kinoit.media.ranges import RANGE_FORMATS, SplitRange, plan_ranges


def qualifies(info: ProbeResult, scan: KeyframeScan) -> bool:
    """Whether a VFR source can be transcoded directly (pure): see the module."""
    return (
        info.vfr
        and info.format_name in RANGE_FORMATS
        and len(scan.pts) == len(scan.decode_pts) == info.frames > 0
        and len(set(scan.pts)) == info.frames
        and bool(scan.keys)
        and scan.keys[0] == 0
        and scan.pts[0] == 0
        and scan.start_time == 0
    )


def _near(x: Fraction) -> int:
    """Round half away from zero, as ffmpeg's AV_ROUND_NEAR_INF (pure)."""
    return math.floor(x + Fraction(1, 2)) if x >= 0 else -math.floor(-x + Fraction(1, 2))


def source_times(scan: KeyframeScan) -> list[Fraction]:
    """Every source frame's timestamp in seconds, presentation order (pure)."""
    return [p * scan.time_base for p in scan.pts]


def slots(times: Sequence[Fraction], rate: Fraction) -> list[int]:
    """The output slot of every source frame (presentation order; the first frame's
    timestamp is 0): its timestamp rounded to the nearest ``1 / rate`` (pure)."""
    return [_near(t * rate) for t in times]


def shown(frame_slots: Sequence[int], n: int) -> int:
    """The source frame the fps filter shows at slot ``n``: the last one whose slot is
    at or before it (pure)."""
    return max(0, bisect.bisect_right(frame_slots, n) - 1)


def key_seek(times: Sequence[Fraction], key: int, rate: Fraction) -> Fraction:
    """The input seek that lands on keyframe ``key``: half the real gap to the frame
    after it (half a nominal frame after the last frame) (pure)."""
    after = times[key + 1] if key + 1 < len(times) else times[key] + 1 / rate
    return (times[key] + after) / 2


def slot_text(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


def slot_times(times: Sequence[Fraction], rate: Fraction) -> list[Fraction]:
    """Output timestamps (the muxer's time base rounds them) as their slots' exact
    times ``n / rate`` (pure)."""
    return [Fraction(_near(t * rate)) / rate for t in times]


def build_total_argv(src: str | Path, rate: Fraction, seek: Fraction) -> list[str]:
    """ffmpeg: the recipe from the keyframe at ``seek`` to the end, every output frame's
    timestamp listed (framecrc of the frames' references: nothing is copied). Only
    the timestamps count: one decoder thread, no loop filter (0.76 CPU s instead of
    0.87 for the 163 frames of the 720p bench source's last GOP)."""
    return [
        ffmpeg.FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error",
        "-threads", "1", "-skip_loop_filter", "all", *seek_args(seek), "-i", str(src),
        "-map", "0:v:0", "-vf", f"fps={slot_text(rate)}",
        "-fps_mode", "passthrough", "-an", "-sn", "-dn", "-c:v", "wrapped_avframe",
        "-f", "framecrc", "-",
    ]  # fmt: skip


def seek_args(seek: Fraction) -> list[str]:
    """The input options of the recipe: the source's own timeline through the seek."""
    return [
        "-copyts", "-start_at_zero", "-noaccurate_seek", "-seek_timestamp", "1",
        "-ss", f"{float(seek):.6f}",
    ]  # fmt: skip


def last_slot(framecrc: str, rate: Fraction) -> int:
    """The last output slot a framecrc listing shows (pure); MediaError when none."""
    tb: Fraction | None = None
    last: int | None = None
    for line in framecrc.splitlines():
        if line.startswith("#tb 0:"):
            tb = Fraction(line.split(":", 1)[1].strip())
        elif line and line[0] != "#" and tb is not None:
            fields = [f.strip() for f in line.split(",")]
            if fields[0] == "0":
                last = _near(int(fields[2]) * tb * rate)
    if last is None:
        raise MediaError("direct transcode: the resampled source showed no frame")
    return last


def resampled_frames(
    src: str | Path, info: ProbeResult, scan: KeyframeScan, settings: Settings
) -> int:
    """The frames of the source resampled to ``info.fps`` (what the lossless split gives):
    the last slot the recipe shows from the last keyframe on, plus one."""
    times = source_times(scan)
    key = scan.keys[-1]
    seek = key_seek(times, key, info.fps) if key else Fraction(0)
    argv = build_total_argv(src, info.fps, seek)
    done = ffmpeg.run(argv, settings.ffmpeg_timeout_seconds, what="direct transcode")
    return last_slot(done.stdout.decode("utf-8", "replace"), info.fps) + 1


def vfr_ranges(
    info: ProbeResult, scan: KeyframeScan, total: int, seconds: Fraction, per_range: int
) -> list[dict[str, Any]]:
    """The ranges of a VFR source's direct transcode (pure): ranges of ``total`` output
    frames as :func:`~kinoit.media.ranges.plan_ranges` chooses them on the slots of the
    source's keyframes, each seeking to the keyframe at or before the source frame its
    first slot shows, with every segment's first slot time as ``pts``."""
    times = source_times(scan)
    frame_slots = slots(times, info.fps)
    plan = plan_segments(total, info.fps, seconds)
    # the keyframes in output frames: keyframe K is at or before the frame slot n shows
    # exactly when its slot is at or before n
    on_slots = KeyframeScan(
        list(range(total)), sorted({frame_slots[k] for k in scan.keys}), 1 / info.fps
    )
    out = []
    for rng in plan_ranges(plan, on_slots, info.fps, per_range):
        key = scan.keys[bisect.bisect_right(scan.keys, shown(frame_slots, rng.start_frame)) - 1]
        seek = key_seek(times, key, info.fps) if rng.start_frame else Fraction(0)
        body = SplitRange(rng.first, rng.last, rng.start_frame, rng.frames, key, seek, True)
        firsts = [Fraction(p.start_frame) / info.fps for p in plan[rng.first : rng.last + 1]]
        out.append({**body.to_json(), "pts": [slot_text(p) for p in firsts]})
    return out


def graph_head(rng: SplitRange, fps: Fraction) -> str:
    """The start of a VFR range's filter graph: resample, then cut its slots."""
    end = rng.start_frame + rng.frames
    return f"[0:v:0]fps={slot_text(fps)},trim=start_pts={rng.start_frame}:end_pts={end}"
