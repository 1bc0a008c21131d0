"""transcode stage: segment CID + ladder -> one rendition CID per rung."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from kinoit.config import Settings
from kinoit.stages.common import (
    optional_cid,
    optional_fps,
    optional_int,
    require_cid,
    require_mapping,
    segment_work,
)


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


def parse_request(body: dict[str, Any]) -> TranscodeRequest:
    """Validate a transcode request (the ladder fully, before any work)."""
    from kinoit.media.ladder import parse_ladder

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


def run(request: TranscodeRequest, settings: Settings) -> dict[str, Any]:
    """Fetch the segment, render every fitting rung, store each; return their CIDs."""
    from kinoit.media.transcode import STAGE_ENCODER_THREADS, transcode_segment

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
