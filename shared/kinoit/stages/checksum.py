"""checksum stage: a segment's renditions against the segment -> per-frame hashes,
distances and every verification test's scores per rung, and the verdict.

The source side is the segment's signature written by split (``signature``: a
small file, no decode); without one the segment itself is decoded. Each rendition
is decoded once, in this process (``kinoit.media.frames``: an ffmpeg's start would
cost as much as decoding a 1-second rendition)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kinoit import failpoints
from kinoit.config import Settings
from kinoit.errors import InvalidParameter, KinoitError
from kinoit.names import check_name
from kinoit.stages.common import (
    fetch,
    optional_cid,
    require_cid,
    require_mapping,
)
from kinoit.stages.scratch import scratch_dir


@dataclass(frozen=True)
class ChecksumRequest:
    """``{"segment": CID, "renditions": {rung: CID}, "signature": CID (optional)}``."""

    segment: str
    renditions: dict[str, str]
    signature: str | None = None


def parse_request(body: dict[str, Any]) -> ChecksumRequest:
    """Validate a checksum request."""
    segment = require_cid(body, "segment")
    raw = require_mapping(body, "renditions")
    if not raw:
        raise InvalidParameter("renditions", "expected at least one rendition")
    renditions = {check_name(rung, "renditions"): require_cid(raw, rung) for rung in sorted(raw)}
    signature = optional_cid(body, "signature")
    return ChecksumRequest(segment, renditions, signature)


def rung_result(comparison: Any, frames: int) -> dict[str, Any]:
    """One rung's entry in the result (and, trimmed, in the manifest)."""
    return {
        "verdict": comparison.verdict,
        "failed": comparison.failed,
        "reason": comparison.reason,
        "max_distance": comparison.max,
        "mean_distance": round(comparison.mean, 3),
        "distances": list(comparison.distances),
        "frames": frames,
        "scores": {k: round(v, 4) for k, v in comparison.scores.items()},
    }


def run(request: ChecksumRequest, settings: Settings) -> dict[str, Any]:
    """Compare every rendition with the segment, each decoded at most once."""
    from kinoit.media.checksum import ALGORITHM, checksums, compare_signatures
    from kinoit.media.signature import Signature
    from kinoit.store import open_store

    failpoints.hit(settings.failpoints, "stage.checksum")
    store = open_store(settings)
    rungs: dict[str, Any] = {}
    with scratch_dir("checksum", settings) as work:
        paths = {
            rung: fetch(store, cid, work / "renditions" / f"{i}.rendition")
            for i, (rung, cid) in enumerate(request.renditions.items())
        }
        if request.signature is not None:
            reference = Signature.from_bytes(
                fetch(store, request.signature, work / "segment.sig").read_bytes()
            )
            decoded = _decode(list(paths.values()), settings, work)
        else:
            segment = fetch(store, request.segment, work / "segment.mkv")
            both = _decode([segment, *paths.values()], settings, work)
            if isinstance(both[0], KinoitError):
                raise both[0]  # the segment itself is broken: the input's fault
            reference, decoded = both[0], both[1:]
        for (rung, _), sig in zip(paths.items(), decoded, strict=True):
            if isinstance(sig, KinoitError):
                rungs[rung] = {
                    "verdict": "mismatch", "failed": "decode", "frames": 0,
                    "reason": f"the rendition cannot be decoded: {sig}",
                }  # fmt: skip
                continue
            rungs[rung] = rung_result(compare_signatures(reference, sig), sig.frames)
    bad = {rung: v for rung, v in rungs.items() if v["verdict"] != "match"}
    return {
        "segment": request.segment,
        "renditions": request.renditions,
        "algorithm": ALGORITHM,
        "hashes": checksums(reference),
        "rungs": rungs,
        "ok": not bad,
        "failed": sorted({str(v["failed"]) for v in bad.values()}),
        "reason": "; ".join(f"{rung}: {v['failed']}: {v['reason']}" for rung, v in bad.items())
        or "match",
    }


def _decode(paths: list[Path], settings: Settings, work: Path) -> list[Any]:
    """Signatures of every file, each decoded in this process (no ffmpeg to start); an
    undecodable rendition comes back as its error and the others are still judged."""
    from kinoit.media.checksum import video_signatures

    out: list[Any] = []
    for path in paths:
        try:
            out.append(video_signatures([path], settings, work)[0])
        except KinoitError as exc:
            out.append(exc)
    return out
