"""What every stage shares: request field checks and fetching inputs from the store
(the scratch directory that is always removed is :mod:`kinoit.stages.scratch`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kinoit.errors import InvalidParameter


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
