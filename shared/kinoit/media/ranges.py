"""split over ranges of the source: several split tasks, each cutting the segments of
one range of whole segments, in parallel.

A range task decodes only its part of the source: ffmpeg's input seek
(``-seek_timestamp 1 -ss T``, T half a frame before the range's first frame) lands
on the keyframe at or before T (the demuxer's keyframe index; ffmpeg steps back
further when B-frames delay the timestamps), decodes from there and drops every
frame before T. Decoding from a keyframe gives the same pictures as decoding the
whole source, and the range's first frame starts at timestamp 0 as every later
segment does after the segment muxer's reset, so a range writes the very bytes
(the same CIDs) and signatures a whole-source split writes for its segments.

Only where that seek is exact: an MP4/MOV or Matroska source (a keyframe index;
an MPEG-TS seek lands on any packet) of constant frame rate, one packet per
frame, unique timestamps. Every other source is split by one task.

The planner (:func:`plan_ranges`) is pure; :func:`split_range` runs one range.
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import io
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from kinoit.config import Settings
from kinoit.errors import InvalidParameter, MediaError
from kinoit.media import ffmpeg
from kinoit.media.keyframes import KeyframeScan
from kinoit.media.plan import SegmentPlan, frames_per_segment
from kinoit.media.probe import ProbeResult
from kinoit.media.signature import FRAME_BYTES, grid_filter
from kinoit.media.split import Segment, _write_signature, build_audio_argv, lossless_codec_args

# Containers whose demuxer seeks to a keyframe at or before the asked time.
RANGE_FORMATS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})
RANGE_FIELDS = ("first", "last", "start_frame", "frames", "key_frame")


@dataclass(frozen=True)
class SplitRange:
    """Segments ``first``..``last`` (inclusive): source frames [start_frame,
    start_frame + frames), decoded from the keyframe ``key_frame`` (a presentation
    index at or before ``start_frame``) by seeking to ``seek`` (seconds, the source's
    own timestamps: half a frame before ``start_frame``'s).

    ``vfr``: a direct transcode of a variable-rate source (:mod:`kinoit.media.direct_vfr`):
    the frames are then output frames of the source resampled to its average rate, and
    ``key_frame`` the source's keyframe (a presentation index of the source, which may
    be past ``start_frame``) at or before the source frame the first one shows."""

    first: int
    last: int
    start_frame: int
    frames: int
    key_frame: int
    seek: Fraction
    vfr: bool = False

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {name: getattr(self, name) for name in RANGE_FIELDS}
        body["seek"] = f"{self.seek.numerator}/{self.seek.denominator}"
        if self.vfr:  # only then: a constant-rate range's JSON (its cache key) is unchanged
            body["vfr"] = True
        return body

    @classmethod
    def from_json(cls, body: Any) -> SplitRange:
        """A range from a request; InvalidParameter naming ``range.<field>``."""
        if not isinstance(body, Mapping):
            raise InvalidParameter("range", "expected an object")
        values: list[int] = []
        for name in RANGE_FIELDS:
            value = body.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidParameter(f"range.{name}", "expected an integer >= 0")
            values.append(value)
        first, last, start, frames, key = values
        vfr = body.get("vfr", False)
        if not isinstance(vfr, bool):
            raise InvalidParameter("range.vfr", "expected true or false")
        if last < first or frames < 1 or (key > start and not vfr):
            raise InvalidParameter(
                "range", "expected first <= last, frames > 0, key_frame <= start_frame"
            )
        try:
            seek = Fraction(str(body.get("seek")))
        except (ValueError, ZeroDivisionError):
            raise InvalidParameter("range.seek", "expected a number of seconds") from None
        return cls(first, last, start, frames, key, seek, vfr)


def can_split_in_ranges(info: ProbeResult, scan: KeyframeScan) -> bool:
    """Whether a range's input seek is frame-exact on this source (pure): see the module."""
    return (
        info.format_name in RANGE_FORMATS
        and not info.vfr
        and len(scan.pts) == len(scan.decode_pts) == info.frames > 0
        and len(set(scan.pts)) == info.frames
        and bool(scan.keys)
        and scan.keys[0] == 0
        and scan.pts[0] >= 0
    )


def plan_ranges(
    plan: Sequence[SegmentPlan], scan: KeyframeScan, fps: Fraction, range_segments: int
) -> list[SplitRange]:
    """Ranges of about ``range_segments`` whole segments (pure).

    Each boundary after the first may move up to half a range either way, to the
    segment that starts closest after a keyframe of its own (one after the previous
    boundary), so that a range decodes and throws away as few frames before its start
    as the source allows: with x264's default GOP of 250 a keyframe is up to 10 s
    away, and decoding a frame costs a tenth to a fifth of transcoding it into the
    ladder (docs/benchmarks.md, "Where a range starts"). Ties go
    to the nominal place. A window with no keyframe of its own ends the range instead
    just after the next keyframe, up to twice the nominal length (or at the end of the
    plan, if that is as near); with neither, at the nominal place. A last range of at
    most a quarter range joins the one before it. One range when ``range_segments`` <
    1 or the plan is not longer."""
    n = len(plan)
    starts = [0]
    if range_segments >= 1 and n > range_segments:
        window = range_segments // 2
        nominal = range_segments
        while nominal < n:
            lo, hi = max(starts[-1] + 1, nominal - window), min(n - 1, nominal + window)
            floor = plan[starts[-1]].start_frame + 1
            last = min(n - 1, starts[-1] + 2 * range_segments)  # the next range's furthest start
            waste = {s: _waste(scan.keys, plan[s], floor) for s in range(lo, max(hi, last) + 1)}
            best = min(range(lo, hi + 1), key=lambda s: (waste[s], abs(s - nominal)))
            if waste[best] == float("inf"):
                # no keyframe of its own in the window: a longer range (up to twice
                # the nominal) that starts just after the next keyframe, if any
                later = range(hi + 1, last + 1)
                on_key = [s for s in later if waste[s] < float("inf")]
                if on_key:
                    best = min(on_key, key=lambda s: (waste[s], s))
                elif n - starts[-1] <= 2 * range_segments:
                    break  # the rest is one range: nothing thrown away
            starts.append(best)
            nominal = best + range_segments
        if len(starts) > 1 and n - starts[-1] <= range_segments // 4:
            starts.pop()
    half = Fraction(1, 2) / fps
    ranges = []
    for first, end in zip(starts, [*starts[1:], n], strict=True):
        start = plan[first].start_frame
        frames = plan[end - 1].end_frame - start
        seek = scan.pts[start] * scan.time_base - half if start else Fraction(0)
        ranges.append(
            SplitRange(first, end - 1, start, frames, _key_before(scan.keys, start), seek)
        )
    return ranges


def _waste(keys: Sequence[int], seg: SegmentPlan, floor: int) -> float:
    """Frames decoded and thrown away before ``seg`` when a range starts there; the
    same (infinite) for every segment whose keyframe lies before ``floor`` (the
    previous range's own keyframe or an earlier one)."""
    key = _key_before(keys, seg.start_frame)
    return seg.start_frame - key if key >= floor else float("inf")


def _key_before(keys: Sequence[int], frame: int) -> int:
    """The keyframe at or before ``frame`` (presentation indices; keys[0] is 0)."""
    return keys[bisect.bisect_right(keys, frame) - 1] if keys else 0


def range_segments(rng: SplitRange, fps: Fraction, seconds: Fraction) -> list[SegmentPlan]:
    """The segments of ``rng`` (pure); InvalidParameter when it does not hold whole
    segments of ``seconds``."""
    k = frames_per_segment(fps, seconds)
    if (
        rng.start_frame != rng.first * k
        or not (rng.last - rng.first) * k < rng.frames <= (rng.last - rng.first + 1) * k
    ):
        raise InvalidParameter("range", f"not whole segments of {k} frames: {rng.to_json()}")
    end = rng.start_frame + rng.frames
    return [SegmentPlan(i, i * k, min(k, end - i * k)) for i in range(rng.first, rng.last + 1)]


def build_range_argv(
    src: str | Path, outdir: Path, rng: SplitRange, plan: Sequence[SegmentPlan], *,
    pix_fmt: str, segment_list: Path, signature: Path | None = None,
) -> list[str]:  # fmt: skip
    """One ffmpeg: decode the range from its keyframe, write its segments lossless
    (named by their index in the whole source) and, with ``signature``, every frame on
    the verifier's grid, as :func:`~kinoit.media.split.build_decode_split_argv` does
    for the whole source."""
    argv = [ffmpeg.FFMPEG, *ffmpeg.QUIET, "-y"]
    head = f"[0:v:0]trim=end_frame={rng.frames}"
    if rng.start_frame:
        argv += ["-seek_timestamp", "1", "-ss", f"{float(rng.seek):.6f}"]
        head += ",setpts=PTS-STARTPTS"  # the first segment starts at 0, as the others do
    argv += ["-i", str(src)]
    if signature is not None:
        argv += ["-filter_complex", f"{head},split=2[v][g];[g]{grid_filter()}[sig]"]
    else:
        argv += ["-filter_complex", f"{head}[v]"]
    argv += ["-map", "[v]", "-fps_mode", "passthrough", "-an", "-sn", "-dn"]
    argv += ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact"]
    argv += lossless_codec_args(pix_fmt)
    cuts = ",".join(str(p.start_frame - rng.start_frame) for p in plan[1:]) or "1000000000"
    argv += [
        "-f", "segment", "-segment_format", "matroska", "-segment_frames", cuts,
        "-segment_start_number", str(rng.first), "-reset_timestamps", "1",
        "-segment_list", str(segment_list), "-segment_list_type", "csv",
        str(outdir / "%05d.mkv"),
    ]  # fmt: skip
    if signature is not None:
        argv += ["-map", "[sig]", "-fps_mode", "passthrough", "-f", "rawvideo", str(signature)]
    return argv


def split_range(
    src: str | Path, outdir: str | Path, rng: SplitRange, *, fps: Fraction,
    seconds: Fraction, pix_fmt: str, settings: Settings, signatures: bool = True,
) -> list[Segment]:  # fmt: skip
    """Cut the segments of ``rng`` (lossless, frame-exact) into ``outdir``, each with
    its signature when asked; MediaError when ffmpeg gave other frame counts."""
    plan = range_segments(rng, fps, seconds)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    names = [out / f"{p.index:05d}.{ext}" for p in plan for ext in ("mkv", "sig")]
    try:
        with tempfile.TemporaryDirectory(prefix="kinoit-split-", dir=out) as tmp:
            seg_list = Path(tmp) / "segments.csv"
            grid = Path(tmp) / "grid.yuv" if signatures else None
            argv = build_range_argv(
                src, out, rng, plan, pix_fmt=pix_fmt, segment_list=seg_list, signature=grid
            )
            ffmpeg.run(argv, settings.ffmpeg_timeout_seconds, what="split")
            counts = [
                round((Fraction(row[2]) - Fraction(row[1])) * fps)
                for row in csv.reader(io.StringIO(seg_list.read_text("utf-8")))
                if len(row) >= 3
            ]
            planned = [p.frames for p in plan]
            decoded = grid.stat().st_size // FRAME_BYTES if grid is not None else rng.frames
            if counts != planned or decoded != rng.frames:
                raise MediaError(
                    f"split: range {rng.first}-{rng.last} gave segments of {counts} frames "
                    f"({decoded} decoded), expected {planned}", argv,
                )  # fmt: skip
            segments = []
            with grid.open("rb") if grid is not None else contextlib.nullcontext() as planes:
                for p in plan:
                    sig = None
                    if planes is not None:
                        sig = out / f"{p.index:05d}.sig"
                        _write_signature(planes.read(p.frames * FRAME_BYTES), p.frames, fps, sig)
                    segments.append(
                        Segment(p.index, p.start_frame, p.frames, out / f"{p.index:05d}.mkv",
                                signature=sig)
                    )  # fmt: skip
            return segments
    except BaseException:
        for name in names:
            name.unlink(missing_ok=True)
        raise


def write_audio(
    src: Path, out: Path, info: ProbeResult, frames: int, settings: Settings
) -> Path | None:
    """The source's first audio stream encoded once to ``out``, padded or cut to the
    video's ``frames``; None (nothing written) when the source has no audio."""
    if not info.audio:
        return None
    first = info.audio[0]
    duration = Fraction(frames) / info.fps
    argv = build_audio_argv(src, out, duration, channels=first.channels, language=first.language)
    ffmpeg.run(argv, settings.ffmpeg_timeout_seconds, what="audio")
    return out
