"""What orchestrate accepts as a stage's result (pure checks, no I/O).

A callback with a valid token but a body of the wrong shape (a field missing, a
CID that is not one, a rendition name that could become a path) fails that task
with a reason naming the field, rather than a KeyError deep in the pipeline.
Only the fields the pipeline reads are checked; extra ones are kept as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from kinoit.errors import InvalidParameter, KinoitError
from kinoit.names import check_name


def _cid(result: Mapping[str, Any], field: str, optional: bool = False, label: str = "") -> None:
    from kinoit.store.cid import CID

    value = result.get(field)
    if value is None and optional:
        return
    where = f"result.{label or field}"
    if not isinstance(value, str) or not value:
        raise InvalidParameter(where, "expected a CID string")
    try:
        CID.parse(value)
    except KinoitError as exc:
        raise InvalidParameter(where, exc.message) from None


def _mapping(result: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    value = result.get(field)
    if not isinstance(value, dict):
        raise InvalidParameter(f"result.{field}", "expected a JSON object")
    return value


def _cid_map(result: Mapping[str, Any], field: str) -> None:
    """A non-empty ``{rung name: CID}`` mapping."""
    value = _mapping(result, field)
    if not value:
        raise InvalidParameter(f"result.{field}", "expected at least one entry")
    for name in value:
        check_name(name, f"result.{field}")
        _cid(value, name, label=f"{field}.{name}")


def _positive_int(source: Mapping[str, Any], field: str) -> None:
    value = source.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
        raise InvalidParameter(f"result.source.{field}", "expected a positive integer")


def _check_plan(result: Mapping[str, Any]) -> None:
    """A first split task's plan of ranges (what the range tasks' requests are made of)."""
    ranges = result.get("ranges")
    if not isinstance(ranges, list) or not ranges or not all(isinstance(r, dict) for r in ranges):
        raise InvalidParameter("result.ranges", "expected a list of ranges")
    for field in ("segments", "segment_frames"):
        _positive_int(result, field)
    _positive_int(_mapping(result, "source"), "frames")
    if not isinstance(result.get("pix_fmt"), str):
        raise InvalidParameter("result.pix_fmt", "expected a pixel format name")


def _check_range(result: Mapping[str, Any]) -> None:
    """A direct transcode's result: per segment its renditions, signature, thumbnail."""
    _cid(result, "source")
    segments = result.get("segments")
    if not isinstance(segments, list) or not segments:
        raise InvalidParameter("result.segments", "expected a list of segments")
    for seg in segments:
        if not isinstance(seg, dict):
            raise InvalidParameter("result.segments", "expected objects")
        _cid_map(seg, "renditions")
        _cid(seg, "signature")
        _cid(seg, "thumbnail")
        _mapping(seg, "frames")


def check_result(stage: str, result: Mapping[str, Any]) -> None:
    """InvalidParameter (field ``result.<name>``) unless ``result`` has the shape the
    pipeline reads for ``stage``."""
    if stage == "split":
        _cid(result, "index")
        _cid(result, "audio", optional=True)
        source = _mapping(result, "source")
        for field in ("width", "height"):
            _positive_int(source, field)
        try:
            fps = Fraction(str(source.get("fps")))
        except (ValueError, ZeroDivisionError):
            fps = Fraction(0)
        if fps <= 0:
            raise InvalidParameter("result.source.fps", "expected a positive frame rate")
        if result.get("ranges") is not None:
            _check_plan(result)
        if result.get("direct") is not None:
            _check_plan({**result, "ranges": result["direct"]})
    elif stage == "transcode" and result.get("range") is not None:
        _check_range(result)
    elif stage == "transcode":
        _cid(result, "segment")
        _cid_map(result, "renditions")
        start = result.get("start_frame", 0)
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise InvalidParameter("result.start_frame", "expected an integer >= 0")
    elif stage == "thumbnail":
        _cid(result, "segment")
        _cid(result, "thumbnail")
    elif stage == "checksum":
        _cid(result, "segment")
        _cid_map(result, "renditions")
        if not isinstance(result.get("ok"), bool):
            raise InvalidParameter("result.ok", "expected true or false")
    elif stage == "merge" and result.get("rung") is not None:  # one rung's merge
        _cid(result, "plan")
        _cid(result, "hls")
        _cid(result, "hls_dir")
        check_name(result["rung"], "result.rung")
        _cid_map(result, "mp4")
        if set(result["mp4"]) != {result["rung"]}:
            raise InvalidParameter("result.mp4", "expected the rung's MP4 alone")
        parts = ("mp4_bytes", "hls_dir_size", "peak", "average", "facts")
        missing = [field for field in parts if field not in result]
        if missing:
            raise InvalidParameter(f"result.{missing[0]}", "missing")
    elif stage == "merge" and result.get("part") is not None:  # the media part
        _cid(result, "plan")
        for field in ("audio_hls", "audio_dir", "thumbs_dir", "storyboard", "storyboard_vtt"):
            _cid(result, field, optional=True)
        if not isinstance(result.get("audio_renditions"), list):
            raise InvalidParameter("result.audio_renditions", "expected a list")
    elif stage == "merge":
        _cid(result, "plan")
        _cid(result, "hls")
        _cid(result, "storyboard", optional=True)
        _cid(result, "storyboard_vtt", optional=True)
        _cid(result, "directory", optional=True)  # absent from merges before it existed
        _cid_map(result, "mp4")
