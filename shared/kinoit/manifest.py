"""The job manifest: one strict DAG-CBOR document, linked by CID.

Pure functions: build it from the stage results, and render its dag-json view.
The manifest is deterministic (no timestamps, no dispatch counters) so the same
source and ladder always give the same manifest CID. ``attempts`` per segment
counts the transcode runs the verification gate needed (1, or 2 after a
mismatch), which depends on the content only; lease re-dispatches after lost
workers are reported by ``GET /jobs/{id}``, not here.

Shape::

    {"version": 1,
     "source": {"cid", "frames", "fps", "width", "height", "duration", "bytes"},
     "segment_seconds": "1", "ladder": [rung, ...],
     "audio": CID | None,   # AAC in MP4: stereo, then the source's 5.1 when it has one
     "segments": [{"index", "start_frame", "end_frame", "cid", "renditions": {rung: CID},
                   "thumbnail": CID,
                   "checksum": {"algorithm", "hashes": [per-frame hex],
                                "rungs": {rung: {"max_distance", "mean_distance",
                                                 "distances": [per-frame Hamming distance],
                                                 "frames": frames the rendition has,
                                                 "verdict", "failed": test | None, "reason",
                                                 "scores": {test score: number}}}},
                   "attempts"}],
     "outputs": {"mp4": {rung: CID}, "hls": CID, "storyboard": CID, "storyboard_vtt": CID,
                 "directory": CID}}   # directory: every output as one UnixFS directory

A long video's ``segments`` is instead a list of links to pages (lists of up to
512 entries, in order), so no block outgrows the 1 MiB that Kubo accepts;
:func:`expand_segments` gives the flat list either way.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kinoit.documents import DagStore, read_pages

MANIFEST_VERSION = 1

LinkFn = Callable[[str], Any]


def build_segment_entry(
    *,
    index: int,
    start_frame: int,
    end_frame: int,
    segment: str,
    renditions: Mapping[str, str],
    thumbnail: str | None,
    checksum: Mapping[str, Any],
    attempts: int,
    link: LinkFn,
) -> dict[str, Any]:
    """One segment's entry; ``link`` turns a CID string into a DAG-CBOR link."""
    return {
        "index": index,
        "start_frame": start_frame,
        "end_frame": end_frame,
        "cid": link(segment),
        "renditions": {rung: link(cid) for rung, cid in sorted(renditions.items())},
        "thumbnail": link(thumbnail) if thumbnail else None,
        "checksum": {
            "algorithm": str(checksum.get("algorithm", "")),
            "hashes": [str(h) for h in checksum.get("hashes") or []],
            "rungs": {
                str(rung): {
                    "max_distance": int(v.get("max_distance", 0)),
                    "mean_distance": float(v.get("mean_distance", 0.0)),
                    "distances": [int(d) for d in v.get("distances") or []],
                    "frames": int(v.get("frames", 0)),
                    "verdict": str(v.get("verdict", "")),
                    "failed": str(v["failed"]) if v.get("failed") else None,
                    "reason": str(v.get("reason", "")),
                    "scores": {
                        str(k): float(x) for k, x in sorted(dict(v.get("scores") or {}).items())
                    },
                }
                for rung, v in sorted(dict(checksum.get("rungs") or {}).items())
            },
        },
        "attempts": attempts,
    }


def build_manifest(
    *,
    source: Mapping[str, Any],
    segment_seconds: str,
    ladder: Sequence[Mapping[str, Any]],
    audio: str | None,
    segments: Sequence[Mapping[str, Any]],
    outputs: Mapping[str, Any],
    link: LinkFn,
) -> dict[str, Any]:
    """The whole manifest; ``segments`` are entries from :func:`build_segment_entry`."""
    return {
        "version": MANIFEST_VERSION,
        "source": {
            "cid": link(str(source["cid"])),
            "frames": int(source["frames"]),
            "fps": str(source["fps"]),
            "width": int(source["width"]),
            "height": int(source["height"]),
            "duration": float(source.get("duration", 0.0)),
            "bytes": int(source.get("bytes", 0)),
        },
        "segment_seconds": segment_seconds,
        "ladder": [dict(rung) for rung in ladder],
        "audio": link(audio) if audio else None,
        "segments": (
            sorted(segments, key=lambda s: int(s["index"]))
            if all(isinstance(s, Mapping) for s in segments)
            else list(segments)  # links to pages, already in order
        ),
        "outputs": {
            "mp4": {rung: link(cid) for rung, cid in sorted(dict(outputs["mp4"]).items())},
            **{
                key: link(str(value)) if value else None
                for key, value in sorted(outputs.items())
                if key != "mp4"
            },
        },
    }


def expand_segments(manifest: Mapping[str, Any], store: DagStore) -> list[Any]:
    """Every segment entry in order, following page links when the manifest has them
    (:func:`kinoit.documents.read_pages`)."""
    items = manifest["segments"]
    if all(isinstance(item, Mapping) for item in items):
        return list(items)
    return list(read_pages(store, items, "manifest.segments", Mapping))


def to_dag_json_value(value: Any, is_link: Callable[[Any], bool] = lambda v: False) -> Any:
    """The dag-json data model view: links become ``{"/": cid}``, bytes
    ``{"/": {"bytes": base64}}``."""
    if is_link(value):
        return {"/": str(value)}
    if isinstance(value, bytes):
        return {"/": {"bytes": base64.b64encode(value).decode().rstrip("=")}}
    if isinstance(value, Mapping):
        return {str(k): to_dag_json_value(v, is_link) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_dag_json_value(v, is_link) for v in value]
    return value


def dumps_dag_json(value: Any, is_link: Callable[[Any], bool] = lambda v: False) -> str:
    """Pretty dag-json text of a decoded DAG-CBOR value (keys sorted)."""
    return json.dumps(to_dag_json_value(value, is_link), indent=2, sort_keys=True) + "\n"
