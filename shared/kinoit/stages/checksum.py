"""checksum stage: a segment and its renditions -> per-frame perceptual hashes,
distances per rung, and the verification verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kinoit import failpoints
from kinoit.config import Settings
from kinoit.errors import InvalidParameter
from kinoit.names import check_name
from kinoit.stages.common import (
    fetch,
    require_cid,
    require_mapping,
)
from kinoit.stages.scratch import scratch_dir


@dataclass(frozen=True)
class ChecksumRequest:
    """``{"segment": CID, "renditions": {rung: CID}}``."""

    segment: str
    renditions: dict[str, str]


def parse_request(body: dict[str, Any]) -> ChecksumRequest:
    """Validate a checksum request."""
    segment = require_cid(body, "segment")
    raw = require_mapping(body, "renditions")
    if not raw:
        raise InvalidParameter("renditions", "expected at least one rendition")
    renditions = {check_name(rung, "renditions"): require_cid(raw, rung) for rung in sorted(raw)}
    return ChecksumRequest(segment, renditions)


def run(request: ChecksumRequest, settings: Settings) -> dict[str, Any]:
    """Hash the segment and every rendition frame by frame and compare."""
    from kinoit.media.checksum import ALGORITHM, checksum_video, compare_checksums
    from kinoit.store import open_store

    failpoints.hit(settings.failpoints, "stage.checksum")
    store = open_store(settings)
    rungs: dict[str, Any] = {}
    with scratch_dir("checksum", settings) as work:
        reference = checksum_video(
            fetch(store, request.segment, work / "segment.mkv"), settings=settings
        )
        for rung, cid in request.renditions.items():
            path = fetch(store, cid, work / f"{rung}.rendition")
            comparison = compare_checksums(reference, checksum_video(path, settings=settings))
            rungs[rung] = {
                "max_distance": comparison.max,
                "mean_distance": round(comparison.mean, 3),
                "verdict": comparison.verdict,
                "reason": comparison.reason,
            }
    bad = {rung: v["reason"] for rung, v in rungs.items() if v["verdict"] != "match"}
    return {
        "segment": request.segment,
        "renditions": request.renditions,
        "algorithm": ALGORITHM,
        "hashes": reference,
        "rungs": rungs,
        "ok": not bad,
        "reason": "; ".join(f"{rung}: {why}" for rung, why in bad.items()) or "match",
    }
