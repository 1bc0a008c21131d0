"""transcode stage: segment CID + ladder -> one rendition CID per rung."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from kinoit import failpoints
from kinoit.config import Settings
from kinoit.errors import InvalidParameter
from kinoit.stages.common import (
    fetch,
    optional_cid,
    optional_fps,
    optional_int,
    require_cid,
    require_mapping,
    segment_work,
)
from kinoit.stages.scratch import scratch_dir


@dataclass(frozen=True)
class TranscodeRequest:
    """``{"segment": CID, "ladder": {...}, "start_frame": 0, "fps": "30/1"}``."""

    segment: str
    ladder: dict[str, Any]
    start_frame: int
    fps: Fraction | None
    # Known from the split index: with all three the segment is not probed again.
    frames: int | None = None
    size: tuple[int, int] | None = None
    # The segment's verifier signature (from split): passed on to its checksum.
    signature: str | None = None


@dataclass(frozen=True)
class RangeRequest:
    """A direct transcode: ``{"source": CID, "range": {...ranges' fields, "pts": [...]},
    "ladder": {...}, "fps": "25/1", "width": W, "height": H, "segment_seconds": "1"}``:
    segments first..last of the source, from one decode of it."""

    source: str
    range: Any  # kinoit.media.ranges.SplitRange
    pts: tuple[Fraction, ...]
    ladder: dict[str, Any]
    fps: Fraction
    size: tuple[int, int]
    segment_seconds: Fraction


def parse_request(body: dict[str, Any]) -> TranscodeRequest | RangeRequest:
    """Validate a transcode request (the ladder fully, before any work)."""
    from kinoit.media.ladder import parse_ladder

    if body.get("range") is not None:
        return parse_range_request(body)
    segment = require_cid(body, "segment")
    ladder = parse_ladder(require_mapping(body, "ladder")).to_json()
    fps = optional_fps(body)
    frames = optional_int(body, "frames", 0, 0) or None
    width, height = optional_int(body, "width", 0, 0), optional_int(body, "height", 0, 0)
    size = (width, height) if width and height else None
    signature = optional_cid(body, "signature")
    return TranscodeRequest(
        segment, ladder, optional_int(body, "start_frame", 0), fps, frames, size, signature
    )


def parse_range_request(body: dict[str, Any]) -> RangeRequest:
    """Validate a direct transcode's request (InvalidParameter naming the field)."""
    from kinoit.media.direct import parse_pts
    from kinoit.media.ladder import parse_ladder
    from kinoit.media.ranges import SplitRange, range_segments

    source = require_cid(body, "source")
    rng = SplitRange.from_json(body["range"])
    ladder = parse_ladder(require_mapping(body, "ladder")).to_json()
    fps = optional_fps(body)
    width, height = optional_int(body, "width", 0, 1), optional_int(body, "height", 0, 1)
    if fps is None or not width or not height:
        raise InvalidParameter("fps", "a range needs fps, width and height")
    try:
        seconds = Fraction(str(body.get("segment_seconds", "1")))
    except (ValueError, ZeroDivisionError):
        raise InvalidParameter("segment_seconds", "not a number") from None
    plan = range_segments(rng, fps, seconds)
    pts = parse_pts(require_mapping(body, "range").get("pts"), len(plan))
    return RangeRequest(source, rng, pts, ladder, fps, (width, height), seconds)


def run(request: TranscodeRequest | RangeRequest, settings: Settings) -> dict[str, Any]:
    """Fetch the segment, render every fitting rung, store each; return their CIDs."""
    from kinoit.media.transcode import STAGE_ENCODER_THREADS, transcode_segment

    if isinstance(request, RangeRequest):
        return run_range(request, settings)
    with segment_work("transcode", request.segment, settings) as work:
        files = transcode_segment(
            work.segment,
            request.ladder,
            work.folder / "out",
            fps=request.fps,
            start_frame=request.start_frame,
            frames=request.frames,
            size=request.size,
            threads=STAGE_ENCODER_THREADS,
            settings=settings,
        )
        renditions = {name: work.store.add(f.path, pin=False) for name, f in sorted(files.items())}
        frames = {name: f.frames for name, f in files.items()}
        sizes = {name: f.bytes for name, f in files.items()}  # the preview's BANDWIDTH
    fps = f"{request.fps.numerator}/{request.fps.denominator}" if request.fps else None
    return {
        "segment": request.segment,
        "start_frame": request.start_frame,
        "fps": fps,
        "renditions": renditions,
        "frames": frames,
        "bytes": sizes,
        **({"signature": request.signature} if request.signature else {}),
    }


def run_range(request: RangeRequest, settings: Settings) -> dict[str, Any]:
    """Fetch the source, transcode the range (every rung, the signatures and the
    thumbnails of its segments from one decode), store each file; per segment its
    renditions, signature, thumbnail and first source timestamp."""
    from kinoit.media.direct import fraction_text, transcode_range
    from kinoit.media.ladder import load_ladder
    from kinoit.media.transcode import STAGE_ENCODER_THREADS
    from kinoit.store import open_store

    failpoints.hit(settings.failpoints, "stage.transcode")
    store = open_store(settings)
    with scratch_dir("transcode", settings) as work:
        src = fetch(store, request.source, work / "source")
        made = transcode_range(
            src, request.range, load_ladder(request.ladder), work / "out", fps=request.fps,
            seconds=request.segment_seconds, size=request.size, settings=settings,
            first_pts=request.pts, threads=STAGE_ENCODER_THREADS,
        )  # fmt: skip
        segments = [
            {
                "index": seg.index,
                "start_frame": seg.start_frame,
                "renditions": {
                    name: store.add(f.path, pin=False) for name, f in sorted(seg.renditions.items())
                },
                "frames": {name: f.frames for name, f in seg.renditions.items()},
                "bytes": {name: f.bytes for name, f in seg.renditions.items()},
                "signature": store.add(seg.signature, pin=False),
                "thumbnail": store.add(seg.thumbnail, pin=False),
                "pts": fraction_text(seg.first_pts),
            }
            for seg in made
        ]
    return {
        "source": request.source,
        "range": {**request.range.to_json(), "pts": [fraction_text(p) for p in request.pts]},
        "fps": fraction_text(request.fps),
        "segments": segments,
    }
