"""thumbnail stage: segment CID -> a JPEG poster frame CID."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from kinoit.config import Settings
from kinoit.stages.common import optional_fps, optional_int, require_cid, segment_work

# Wide enough for a seek preview, small enough to stay a few KiB.
DEFAULT_WIDTH = 320


@dataclass(frozen=True)
class ThumbnailRequest:
    """``{"segment": CID, "width": 320, "frames": 25, "fps": "25/1"}``."""

    segment: str
    width: int = DEFAULT_WIDTH
    # Known from the split index: with both the segment is not probed.
    frames: int | None = None
    fps: Fraction | None = None


def parse_request(body: dict[str, Any]) -> ThumbnailRequest:
    """Validate a thumbnail request."""
    fps = optional_fps(body)
    return ThumbnailRequest(
        require_cid(body, "segment"),
        optional_int(body, "width", DEFAULT_WIDTH, 16),
        optional_int(body, "frames", 0, 0) or None,
        fps,
    )


def run(request: ThumbnailRequest, settings: Settings) -> dict[str, Any]:
    """Fetch the segment, render its thumbnail, store it."""
    from kinoit.media.thumbnail import make_thumbnail

    with segment_work("thumbnail", request.segment, settings) as work:
        image = make_thumbnail(
            work.segment, work.folder / "thumb.jpg", width=request.width,
            frames=request.frames, fps=request.fps, settings=settings,
        )  # fmt: skip
        cid = work.store.add(image, pin=False)
    return {"segment": request.segment, "thumbnail": cid}
