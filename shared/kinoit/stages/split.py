"""split stage: source CID -> frame-exact segments and the audio, added to the store.

The reply stays small whatever the length of the video: the segment list goes
into a paged DAG-CBOR index whose CID is returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from kinoit import failpoints
from kinoit.config import Settings
from kinoit.documents import AudioHls, AudioSegmentRef, SegmentRef, write_split_index
from kinoit.errors import InvalidParameter, NotAVideo
from kinoit.stages.common import fetch, require_cid, require_mapping
from kinoit.stages.scratch import scratch_dir

if TYPE_CHECKING:
    from kinoit.media.keyframes import KeyframeScan
    from kinoit.media.probe import ProbeResult
    from kinoit.media.ranges import SplitRange

# Segments that hold exactly their frames: a stream copy cut at the source's own
# keyframes where every boundary is one (no encode), else bit-exact lossless (UT Video
# or FFV1); see run().
SPLIT_MODE: Final = "aligned"


@dataclass(frozen=True)
class SplitRequest:
    """``{"source": CID, "segment_seconds": "1"}``, and one of: ``"range_seconds"``
    (the first split task: ranges of about that many seconds when the source is long
    enough, 0 or absent for one task), ``"range"`` with ``"pix_fmt"`` and the source's
    facts ``"source"`` (a range task), ``"part": "audio"`` (the audio of a split in
    ranges)."""

    source: str
    segment_seconds: Fraction
    range_seconds: Fraction = Fraction(0)
    range: SplitRange | None = None
    pix_fmt: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    audio_part: bool = False
    # the audio task of a VFR direct plan: the video's frames, resampled (0: count them)
    audio_frames: int = 0
    # the first task: plan a direct transcode in ranges of about this many seconds
    # where the source allows it (0: split into segments)
    direct_seconds: Fraction = Fraction(0)


def _seconds(body: dict[str, Any], name: str, default: str, top: int) -> Fraction:
    raw = body.get(name, default)
    try:
        seconds = Fraction(str(raw))
    except (ValueError, ZeroDivisionError):
        raise InvalidParameter(name, f"not a number: {raw!r}") from None
    if not 0 <= seconds <= top:
        raise InvalidParameter(name, f"must be in [0, {top}]")
    return seconds


def parse_request(body: dict[str, Any]) -> SplitRequest:
    """Validate a split request."""
    seconds = _seconds(body, "segment_seconds", "1", 60)
    if seconds == 0:
        raise InvalidParameter("segment_seconds", "must be in (0, 60]")
    source = require_cid(body, "source")
    range_seconds = _seconds(body, "range_seconds", "0", 24 * 3600)
    if body.get("part") is not None:
        if body["part"] != "audio":
            raise InvalidParameter("part", f"expected 'audio', got {body['part']!r}")
        frames = body.get("frames", 0)
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 0:
            raise InvalidParameter("frames", "expected an integer >= 0")
        return SplitRequest(source, seconds, audio_part=True, audio_frames=frames)
    if body.get("range") is None:
        direct = _seconds(body, "transcode_range_seconds", "0", 24 * 3600)
        return SplitRequest(source, seconds, range_seconds, direct_seconds=direct)
    from kinoit.media.ranges import SplitRange

    rng = SplitRange.from_json(body["range"])
    pix_fmt = body.get("pix_fmt")
    if not isinstance(pix_fmt, str) or not pix_fmt.isidentifier():
        raise InvalidParameter("pix_fmt", "expected a pixel format name")
    facts = require_mapping(body, "source_facts")
    try:
        Fraction(str(facts.get("fps")))
    except (ValueError, ZeroDivisionError):
        raise InvalidParameter("source_facts.fps", "expected a frame rate") from None
    return SplitRequest(source, seconds, range=rng, pix_fmt=pix_fmt, facts=dict(facts))


def preview_audio(
    store: Any, audio: Path, fps: Fraction, frames: list[int], work: Path, settings: Settings
) -> AudioHls:
    """The stereo track cut into the MPEG-TS segments the final HLS will have (merge
    cuts the same file the same way, so these are the same blocks), stored for the
    preview that plays while the job runs; ``frames``: every segment's frames."""
    from kinoit.media.merge import audio_segment_seconds, cut_audio_hls, probe_audio_tracks

    stereo = probe_audio_tracks(audio, settings)[0]
    seconds = audio_segment_seconds(fps, frames)
    cut = cut_audio_hls(audio, work, seconds, stereo.index, settings)
    segments = tuple(
        AudioSegmentRef(store.add(path, pin=False), duration, path.stat().st_size)
        for path, duration in cut
    )
    return AudioHls(stereo.language, stereo.channels, segments)


def _facts(frames: int, fps: Fraction, size: tuple[int, int], source_bytes: int) -> dict[str, Any]:
    """The source's facts as the split index and the results carry them."""
    return {
        "frames": frames,
        "fps": f"{fps.numerator}/{fps.denominator}",
        "width": size[0],
        "height": size[1],
        "duration": float(Fraction(frames) / fps),
        "bytes": source_bytes,
    }


def _refs(store: Any, segments: Any) -> list[SegmentRef]:
    return [
        SegmentRef(
            seg.index,
            store.add(Path(seg.path), pin=False),
            seg.start_frame,
            seg.start_frame + seg.frames,
            # what every checksum of this segment compares with
            store.add(seg.signature, pin=False) if seg.signature is not None else None,
        )
        for seg in segments
    ]


def plan_in_ranges(
    src: Path,
    info: ProbeResult,
    request: SplitRequest,
    settings: Settings,
    scan: KeyframeScan | None = None,
) -> list[SplitRange] | None:
    """The ranges of a source long enough to be split by several tasks, or None: one
    task (too short, a container or a rate :mod:`kinoit.media.ranges` cannot seek
    exactly, or keyframes on every boundary: the aligned copy needs no encode)."""
    from kinoit.media.keyframes import cuts_on_keyframes, scan_keyframes
    from kinoit.media.plan import plan_segments
    from kinoit.media.ranges import RANGE_FORMATS, can_split_in_ranges, plan_ranges

    per_range = round(request.range_seconds / request.segment_seconds)
    plan = plan_segments(info.frames, info.fps, request.segment_seconds)
    if per_range < 1 or len(plan) <= per_range or info.vfr or info.format_name not in RANGE_FORMATS:
        return None
    scan = scan or scan_keyframes(src, settings)
    if not can_split_in_ranges(info, scan) or cuts_on_keyframes(scan, plan, info.frames):
        return None
    ranges = plan_ranges(plan, scan, info.fps, per_range)
    return ranges if len(ranges) > 1 else None


def run(request: SplitRequest, settings: Settings) -> dict[str, Any]:
    """Fetch, split, store; return ``{source_cid, index, segments, audio, source}`` (and
    the plan ``ranges`` from a first task that leaves the segments to range tasks)."""
    from kinoit.media.keyframes import probe_and_scan
    from kinoit.media.split import split_video
    from kinoit.store import open_store

    failpoints.hit(settings.failpoints, "stage.split")
    store = open_store(settings)
    with scratch_dir("split", settings) as work:
        src = fetch(store, request.source, work / "source")
        source_bytes = src.stat().st_size
        if request.range is not None:
            return _run_range(store, src, request, work, settings)
        # one read of the source: its facts and every keyframe (the plan's two ffprobes)
        info, scan = probe_and_scan(src, settings)
        if request.audio_part:
            return _run_audio(store, src, info, scan, request, work, source_bytes, settings)
        if request.direct_seconds:
            planned = _plan_direct(store, src, info, scan, request, source_bytes, settings)
            if planned is not None:
                return planned
        ranges = plan_in_ranges(src, info, request, settings, scan)
        if ranges is not None:
            return _planned(store, info, request, ranges, source_bytes)
        # split_video computes with Fractions inside; an exact 1/3 s must not be rounded.
        seconds: Any = request.segment_seconds
        # Every segment holds exactly its frames (copy mode's overlap on keyframes off the
        # boundaries would need a frame range in every later stage), and its CID names
        # exactly that content: aligned copies them where the keyframes allow.
        result = split_video(
            src, work / "segments", seconds=seconds, mode=SPLIT_MODE, settings=settings,
            signatures=True, info=info,
        )  # fmt: skip
        if not result.segments:
            raise NotAVideo("split: the source has no video frames")
        segments = _refs(store, result.segments)
        audio = store.add(Path(result.audio), pin=False) if result.audio else None
        audio_hls = None
        if result.audio:
            frames = [s.frames for s in result.segments]
            audio_hls = preview_audio(
                store, Path(result.audio), result.fps, frames, work / "audio-hls", settings
            )
    source = _facts(result.frames, result.fps, (result.width, result.height), source_bytes)
    return {
        "source_cid": request.source,
        "index": write_split_index(store, segments, source, audio, audio_hls),
        "segments": len(segments),
        "audio": audio,
        "source": source,
        **_echo(request),
    }


def _echo(request: SplitRequest) -> dict[str, Any]:
    """The request fields a result repeats (its result-cache key is rebuilt from them)."""
    if request.range is not None:
        return {"range": request.range.to_json()}
    if request.audio_part:
        return {"part": "audio"}
    if request.direct_seconds:  # a first task asked for a direct plan: its own cache key
        return {"transcode_range_seconds": str(request.direct_seconds)}
    return {}


def _planned(
    store: Any, info: ProbeResult, request: SplitRequest, ranges: list[SplitRange],
    source_bytes: int,
) -> dict[str, Any]:  # fmt: skip
    """The first task's result for a split in ranges: the plan, no segments yet."""
    from kinoit.media.plan import frames_per_segment

    size = (info.display_width, info.display_height)
    source = _facts(info.frames, info.fps, size, source_bytes)
    return {
        "source_cid": request.source,
        "index": write_split_index(store, [], source, None),
        "segments": ranges[-1].last + 1,
        "segment_frames": frames_per_segment(info.fps, request.segment_seconds),
        "audio": None,
        "audio_part": bool(info.audio),
        "source": source,
        "pix_fmt": info.pix_fmt,
        "ranges": [r.to_json() for r in ranges],
        **_echo(request),
    }


def _plan_direct(
    store: Any, src: Path, info: ProbeResult, scan: KeyframeScan, request: SplitRequest,
    source_bytes: int, settings: Settings,
) -> dict[str, Any] | None:  # fmt: skip
    """The first task's result for a direct transcode (:mod:`kinoit.media.direct`): the
    plan (ranges with their segments' first timestamps) and an index of every segment
    as frames of the source itself (of a VFR source: resampled to its average rate, as
    the lossless split gives them); None when the source does not qualify."""
    from kinoit.media.direct import can_transcode_directly, direct_ranges
    from kinoit.media.plan import frames_per_segment
    from kinoit.media.ranges import RANGE_FORMATS

    if info.format_name not in RANGE_FORMATS or info.frames < 1:
        return None
    if not can_transcode_directly(info, scan):
        return None
    frames = _direct_frames(src, info, scan, settings)
    ranges = direct_ranges(info, scan, request.segment_seconds, request.direct_seconds, frames)
    size = (info.display_width, info.display_height)
    source = _facts(frames, info.fps, size, source_bytes)
    k = frames_per_segment(info.fps, request.segment_seconds)
    refs = [
        SegmentRef(i, request.source, start, min(start + k, frames), None)
        for i, start in enumerate(range(0, frames, k))
    ]
    return {
        "source_cid": request.source,
        "index": write_split_index(store, refs, source, None),
        "segments": len(refs),
        "segment_frames": k,
        "audio": None,
        "audio_part": bool(info.audio),
        "source": source,
        "pix_fmt": info.pix_fmt,
        "direct": ranges,
        **_echo(request),
    }


def _direct_frames(src: Path, info: ProbeResult, scan: KeyframeScan, settings: Settings) -> int:
    """The frames a direct transcode makes of the source: its own, or a VFR source's
    resampled to its average rate (:func:`kinoit.media.direct_vfr.resampled_frames`)."""
    if not info.vfr:
        return info.frames
    from kinoit.media.direct_vfr import resampled_frames

    return resampled_frames(src, info, scan, settings)


def _run_range(
    store: Any, src: Path, request: SplitRequest, work: Path, settings: Settings
) -> dict[str, Any]:
    """One range task: its segments and their signatures, in its own index."""
    from kinoit.media.ranges import split_range

    assert request.range is not None
    failpoints.hit(settings.failpoints, "stage.split.range")
    fps = Fraction(str(request.facts["fps"]))
    segments = split_range(
        src, work / "segments", request.range, fps=fps, seconds=request.segment_seconds,
        pix_fmt=request.pix_fmt, settings=settings,
    )  # fmt: skip
    refs = _refs(store, segments)
    return {
        "source_cid": request.source,
        "index": write_split_index(store, refs, request.facts, None),
        "segments": len(refs),
        "audio": None,
        "source": request.facts,
        **_echo(request),
    }


def _run_audio(
    store: Any, src: Path, info: ProbeResult, scan: KeyframeScan, request: SplitRequest,
    work: Path, source_bytes: int, settings: Settings,
) -> dict[str, Any]:  # fmt: skip
    """The audio task of a split in ranges or a direct plan: the audio once, from the
    whole source, as long as the video's frames, and its preview cut, in an index
    without segments."""
    from kinoit.media.plan import plan_segments
    from kinoit.media.ranges import write_audio

    work.joinpath("audio").mkdir()
    total = request.audio_frames or _direct_frames(src, info, scan, settings)
    path = write_audio(src, work / "audio" / "audio.m4a", info, total, settings)
    audio = store.add(path, pin=False) if path is not None else None
    frames = [p.frames for p in plan_segments(total, info.fps, request.segment_seconds)]
    audio_hls = (
        preview_audio(store, path, info.fps, frames, work / "audio-hls", settings)
        if path is not None
        else None
    )
    size = (info.display_width, info.display_height)
    source = _facts(total, info.fps, size, source_bytes)
    return {
        "source_cid": request.source,
        "index": write_split_index(store, [], source, audio, audio_hls),
        "segments": 0,
        "audio": audio,
        "source": source,
        **_echo(request),
    }
