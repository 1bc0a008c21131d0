"""The direct transcode's part of the plan, as pure functions (see
:mod:`kinoit.media.direct`): the request of a range task, the per-segment results a
range's result stands for, the check of a range's result against the split's plan,
and the payload of a segment's verification re-run.

A source the first split task planned directly (its result's ``"direct"``: ranges of
whole segments, each with the planned source timestamp of every segment's first
frame) has one task per range, ``transcode.<a>`` for the range from segment ``a``;
its result lists every segment of the range (renditions, signature, thumbnail, first
source timestamp). Completing it records the results of ``transcode.<k>`` (the other
segments) and ``thumbnail.<k>`` (every segment) as done, so every later reader (merge
plan, preview, segment view) finds the per-segment tasks it always found.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from kinoit.errors import MediaError
from kinoit.service.spec import JobSpec

# What the split's plan must say about one segment: its frames and first timestamp.
SegmentPlanned = tuple[int, int, Fraction]


def direct_body(spec: JobSpec, payload: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A range task's request body and its result-cache parameters (with the source
    CID: source + range + ladder + segment length)."""
    rng = dict(payload["range"])
    params = {"ladder": spec.ladder, "range": rng, "segment_seconds": spec.segment_seconds}
    body: dict[str, Any] = {
        "source": spec.source,
        "range": rng,
        "ladder": spec.ladder,
        "segment_seconds": spec.segment_seconds,
    }
    if payload.get("fps") and payload.get("size"):
        body["fps"] = str(payload["fps"])
        body["width"], body["height"] = (int(v) for v in payload["size"])
    return body, params


def range_payloads(split: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(task id, payload)`` of every range task a direct plan names."""
    source = split["source"]
    shared = {"fps": str(source["fps"]), "size": [int(source["width"]), int(source["height"])]}
    return [(f"transcode.{int(r['first'])}", {**shared, "range": dict(r)}) for r in split["direct"]]


def planned_segment(split: Mapping[str, Any], index: int) -> SegmentPlanned:
    """Segment ``index`` of a direct plan: start frame, frames, first source timestamp."""
    k, total = int(split["segment_frames"]), int(split["source"]["frames"])
    for rng in split["direct"]:
        if int(rng["first"]) <= index <= int(rng["last"]):
            pts = Fraction(str(rng["pts"][index - int(rng["first"])]))
            return index * k, min(k, total - index * k), pts
    raise MediaError(f"direct transcode: segment {index} is in no planned range")


def check_range_result(
    split: Mapping[str, Any], first: int, result: Mapping[str, Any], *, single: bool
) -> None:
    """MediaError unless ``result`` holds exactly the planned segments from ``first``
    (just that one when ``single``: a re-run), each rung with the planned frames and
    each segment starting at the planned source frame (half a frame of tolerance)."""
    segments = result.get("segments")
    if not isinstance(segments, list) or not segments:
        raise MediaError("direct transcode: the result lists no segments")
    indices = [int(s.get("index", -1)) for s in segments]
    if indices[0] != first or indices != list(range(first, first + len(indices))):
        raise MediaError(f"direct transcode: segments {indices}, expected a run from {first}")
    if single and len(indices) != 1:
        raise MediaError(f"direct transcode: a re-run of segment {first} gave {indices}")
    half = Fraction(1, 2) / Fraction(str(split["source"]["fps"]))
    for seg in segments:
        start, frames, pts = planned_segment(split, int(seg["index"]))
        counts = {int(n) for n in dict(seg.get("frames") or {}).values()}
        if int(seg.get("start_frame", -1)) != start or counts != {frames}:
            raise MediaError(
                f"direct transcode: segment {seg['index']} has frames {seg.get('frames')} "
                f"from {seg.get('start_frame')}, planned {frames} from {start}"
            )
        if abs(Fraction(str(seg.get("pts"))) - pts) >= half:
            raise MediaError(
                f"direct transcode: segment {seg['index']} starts at source time "
                f"{seg.get('pts')}, planned {pts}"
            )


def segment_result(
    split: Mapping[str, Any], result: Mapping[str, Any], seg: Mapping[str, Any]
) -> dict[str, Any]:
    """What ``transcode.<k>`` of one segment of a range records: the renditions and
    signature its checksum and merge read, as a per-segment transcode's result, and
    the payload of its re-run (``rerun``)."""
    return {
        "segment": result["source"],
        "start_frame": int(seg["start_frame"]),
        "fps": result.get("fps"),
        "renditions": dict(seg["renditions"]),
        "frames": dict(seg["frames"]),
        "bytes": dict(seg.get("bytes") or {}),
        "signature": str(seg["signature"]),
        "pts": str(seg["pts"]),
        "rerun": rerun_range(split, int(seg["index"])),
    }


def rerun_range(split: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The payload of segment ``index``'s re-run: a range of that segment alone, seeking
    half a frame before its planned first timestamp (a VFR range's segment: seeking as
    its range does, to the keyframe at or before every frame of the range)."""
    start, frames, pts = planned_segment(split, int(index))
    fps = Fraction(str(split["source"]["fps"]))
    whole = next(r for r in split["direct"] if int(r["first"]) <= index <= int(r["last"]))
    key = int(whole["key_frame"])
    seek = max(Fraction(0), pts - Fraction(1, 2) / fps) if start else Fraction(0)
    if whole.get("vfr"):  # its timestamps are slots: the seek is the range's own
        seek = Fraction(str(whole["seek"]))
    rng = {
        "first": index, "last": index, "start_frame": start, "frames": frames,
        "key_frame": key, "seek": f"{seek.numerator}/{seek.denominator}",
        "pts": [f"{pts.numerator}/{pts.denominator}"],
    }  # fmt: skip
    if whole.get("vfr"):
        rng["vfr"] = True
    source = split["source"]
    return {"range": rng, "fps": str(source["fps"]),
            "size": [int(source["width"]), int(source["height"])]}  # fmt: skip
