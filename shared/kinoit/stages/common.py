"""What every stage shares: request field checks, fetching inputs from the store, and
how a per-segment stage starts (:func:`segment_work`; the scratch directory that is
always removed is :mod:`kinoit.stages.scratch`)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from kinoit import failpoints
from kinoit.config import Settings
from kinoit.errors import InvalidParameter
from kinoit.stages.scratch import scratch_dir


def require_count(body: Mapping[str, Any], key: str, where: str, limit: int = 2**53) -> int:
    """An integer field in [0, limit) (InvalidParameter naming ``where.key``)."""
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
        raise InvalidParameter(f"{where}.{key}", "expected an integer >= 0")
    return value


def require_rate(body: Mapping[str, Any], key: str, where: str) -> float:
    """A bit rate field: a finite, non-negative decimal string."""
    text = body.get(key)
    try:
        value = float(text) if isinstance(text, str) and len(text) < 40 else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise InvalidParameter(f"{where}.{key}", "expected bits per second as a decimal string")
    return value


def require_cid(body: Mapping[str, Any], field: str) -> str:
    """A CID field, canonicalised to CIDv1 (InvalidParameter naming the field)."""
    from kinoit.store.cid import CID

    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidParameter(field, "expected a CID string")
    try:
        return str(CID.parse(value).to_v1())
    except Exception as exc:
        raise InvalidParameter(field, f"not a valid CID: {exc}") from None


def optional_cid(body: Mapping[str, Any], field: str) -> str | None:
    """A CID field that may be absent (or null)."""
    return require_cid(body, field) if body.get(field) is not None else None


def optional_fps(body: Mapping[str, Any], field: str = "fps") -> Fraction | None:
    """A positive frame rate given as a rational ("30000/1001") or a number, or None."""
    raw = body.get(field)
    if raw is None:
        return None
    try:
        fps = Fraction(str(raw))
    except (ValueError, ZeroDivisionError):
        raise InvalidParameter(field, f"not a frame rate: {raw!r}") from None
    if fps <= 0:
        raise InvalidParameter(field, "must be positive")
    return fps


def require_mapping(body: Mapping[str, Any], field: str) -> dict[str, Any]:
    """A JSON object field."""
    value = body.get(field)
    if not isinstance(value, dict):
        raise InvalidParameter(field, "expected a JSON object")
    return value


def optional_int(body: Mapping[str, Any], field: str, default: int, minimum: int = 0) -> int:
    """An integer field with a default."""
    value = body.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidParameter(field, f"expected an integer >= {minimum}")
    return value


def fetch(store: Any, cid: str, dest: Path) -> Path:
    """Write the file ``cid`` to ``dest`` (creating its folder) and return ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    return Path(store.get_file(cid, dest))


@dataclass(frozen=True)
class SegmentWork:
    """A per-segment stage's store, scratch folder and fetched segment."""

    store: Any
    folder: Path
    segment: Path


@contextlib.contextmanager
def segment_work(stage: str, segment_cid: str, settings: Settings) -> Iterator[SegmentWork]:
    """How a per-segment stage starts: its failpoint (``stage.<stage>``), the store, a
    scratch folder that is removed afterwards, and the segment fetched into it."""
    from kinoit.store import open_store

    failpoints.hit(settings.failpoints, f"stage.{stage}")
    store = open_store(settings)
    with scratch_dir(stage, settings) as folder:
        yield SegmentWork(store, folder, fetch(store, segment_cid, folder / "segment.mkv"))
