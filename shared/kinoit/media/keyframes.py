"""The source's keyframes, for the splits that cut by stream copy: one ffprobe of every
video packet's pts and flags, where the keyframes fall in presentation order, the
keyframe-aligned slice holding each segment (``copy``), and whether every segment
boundary is a keyframe no frame is reordered across (``aligned``).
"""

from __future__ import annotations

import bisect
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from kinoit.config import Settings
from kinoit.errors import MediaError
from kinoit.media import ffmpeg
from kinoit.media.plan import SegmentPlan
from kinoit.media.probe import ProbeResult, probe_document, video_stream


def build_keyframes_argv(src: str | Path) -> list[str]:
    """ffprobe: pts and flags of every video packet (for copy mode's keyframe map)."""
    return [
        ffmpeg.FFPROBE, "-v", "error", "-select_streams", "v:0",
        "-show_entries", "packet=pts,flags:stream=time_base,start_time:format=start_time",
        "-of", "json", "-i", str(src),
    ]  # fmt: skip


def keyframe_indices(packets: Sequence[tuple[int, bool]]) -> list[int]:
    """Presentation indices of keyframes, from (pts, is_key) packets in any order (pure)."""
    ordered = sorted(packets, key=lambda p: p[0])
    return [i for i, (_, key) in enumerate(ordered) if key]


@dataclass(frozen=True)
class CopyCut:
    """A keyframe-aligned slice of the source holding one segment."""

    first_key: int  # presentation index of the keyframe the slice starts at
    packets: int  # frames (= packets, closed GOP) in the slice
    frame_range: tuple[int, int]  # the segment's frames within the slice


def plan_copy_cuts(
    plan: Sequence[SegmentPlan], keyframes: Sequence[int], total: int
) -> list[CopyCut]:
    """For each segment: the keyframe at or before its start, the one at or after its end (pure)."""
    if not keyframes or keyframes[0] != 0:
        raise MediaError("copy split: the video does not start with a keyframe")
    cuts = []
    for seg in plan:
        first = keyframes[bisect.bisect_right(keyframes, seg.start_frame) - 1]
        after = bisect.bisect_left(keyframes, seg.end_frame)
        end = keyframes[after] if after < len(keyframes) else total
        cuts.append(CopyCut(first, end - first, (seg.start_frame - first, seg.end_frame - first)))
    return cuts


def build_copy_argv(src: str | Path, out: Path, seek: float, packets: int) -> list[str]:
    """Stream-copy ``packets`` video packets starting at the keyframe at or before ``seek``."""
    return [
        ffmpeg.FFMPEG, *ffmpeg.QUIET, "-y", "-ss", f"{seek:.6f}", "-i", str(src),
        "-map", "0:v:0", "-c", "copy", "-an", "-sn", "-dn", "-map_metadata", "-1",
        "-frames:v", str(packets), "-avoid_negative_ts", "make_zero", "-f", "matroska", str(out),
    ]  # fmt: skip


@dataclass(frozen=True)
class KeyframeScan:
    """Packet timestamps (sorted) and keyframe positions of the source's video stream."""

    pts: list[int]
    keys: list[int]
    time_base: Fraction
    # every packet's pts in decode (file) order; empty when not known
    decode_pts: tuple[int, ...] = ()
    # the file's start time (seconds; what ffmpeg subtracts from every timestamp);
    # None when not known
    start_time: Fraction | None = None

    @property
    def longest_gop(self) -> int:
        """Frames in the longest run between keyframes (to the end for the last)."""
        edges = [*self.keys, len(self.pts)]
        return max((b - a for a, b in itertools.pairwise(edges)), default=len(self.pts))


def scan_keyframes(src: Path, settings: Settings) -> KeyframeScan:
    """Demux the video stream once: every packet's pts and keyframe flag."""
    out = ffmpeg.run(build_keyframes_argv(src), settings.ffmpeg_timeout_seconds, what="split")
    doc = json.loads(out.stdout or b"{}")
    stream = (doc.get("streams") or [{}])[0]
    time_base = Fraction(str(stream.get("time_base", "1/1")))
    return _scan(doc.get("packets", []), time_base, _start_time(doc))


def _start_time(doc: Mapping[str, Any]) -> Fraction | None:
    """The format's start time in ffprobe's JSON (pure); None when absent or unreadable."""
    raw = (doc.get("format") or {}).get("start_time")
    try:
        return Fraction(str(raw)) if raw is not None else None
    except (ValueError, ZeroDivisionError):
        return None


def _scan(
    packets_json: Iterable[Mapping[str, Any]], time_base: Fraction,
    start_time: Fraction | None = None,
) -> KeyframeScan:  # fmt: skip
    packets = [
        (int(p["pts"]), "K" in str(p.get("flags", "")))
        for p in packets_json
        if str(p.get("pts", "")).lstrip("-").isdigit()
    ]
    return KeyframeScan(
        sorted(p for p, _ in packets),
        keyframe_indices(packets),
        time_base,
        tuple(p for p, _ in packets),
        start_time,
    )


def scan_from_probe(doc: Mapping[str, Any]) -> KeyframeScan:
    """The keyframe scan of the video stream :func:`kinoit.media.probe.parse_probe` reads,
    from a probe's JSON that lists every packet's flags (pure)."""
    stream = video_stream(doc) or {}
    index = stream.get("index")
    packets = [p for p in doc.get("packets") or [] if p.get("stream_index") == index]
    return _scan(packets, Fraction(str(stream.get("time_base") or "1/1")), _start_time(doc))


def probe_and_scan(src: Path, settings: Settings) -> tuple[ProbeResult, KeyframeScan]:
    """:func:`kinoit.media.probe.probe` and :func:`scan_keyframes` from one read of the
    source (one ffprobe listing every packet's pts and flags) instead of two."""
    info, doc = probe_document(src, settings=settings, flags=True)
    return info, scan_from_probe(doc)


def cuts_on_keyframes(scan: KeyframeScan, plan: Sequence[SegmentPlan], frames: int) -> bool:
    """Whether a stream copy cut at every planned boundary gives frame-exact segments (pure).

    Each boundary must be a keyframe, and the packets before it in decode order must be
    exactly the frames presented before it (no B-frame of one segment decoded after the
    next segment's keyframe, none of the next before it); every packet has its own pts."""
    order = scan.decode_pts
    if not (len(scan.pts) == len(order) == frames) or len(set(order)) != frames:
        return False
    keys = set(scan.keys)
    if 0 not in keys:
        return False
    prefix_max = list(itertools.accumulate(order, max))
    for seg in plan[1:]:
        b = seg.start_frame
        if b not in keys or order[b] != scan.pts[b] or prefix_max[b - 1] >= scan.pts[b]:
            return False
    return True
