"""Content-addressed reuse of stage results (like Pachyderm's skipped datums).

A stage run on the same input CID with the same parameters produces the same
output CIDs, so its result is stored under sha256(stage, input CID, canonical
params JSON) and the product checks it before dispatching.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from kinoit.errors import InvalidParameter
from kinoit.jobs import keys
from kinoit.jobs.connection import translate_redis_errors


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, no NaN: equal params give equal bytes."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidParameter("params", f"not JSON-serialisable: {exc}") from None


def cache_digest(stage: str, input_cid: str, params: Mapping[str, Any]) -> str:
    """Hex sha256 naming one (stage, input, params) computation."""
    material = "\n".join((stage, input_cid, canonical_json(dict(params))))
    return hashlib.sha256(material.encode()).hexdigest()


class ResultCache:
    """Stage results keyed by :func:`cache_digest`; kept forever unless ``ttl_seconds``."""

    def __init__(self, connection: redis.Redis, ttl_seconds: int | None = None) -> None:
        if ttl_seconds is not None and ttl_seconds <= 0:
            raise InvalidParameter("ttl_seconds", f"must be > 0, got {ttl_seconds}")
        self.redis = connection
        self.ttl_seconds = ttl_seconds

    @translate_redis_errors
    def get(self, stage: str, input_cid: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The stored result, or None when this computation was never recorded."""
        raw = self.redis.get(keys.CACHE_KEY.format(digest=cache_digest(stage, input_cid, params)))
        if raw is None:
            return None
        value = json.loads(raw)
        return value if isinstance(value, dict) else None

    @translate_redis_errors
    def get_many(
        self, lookups: Sequence[tuple[str, str, Mapping[str, Any]]]
    ) -> list[dict[str, Any] | None]:
        """:meth:`get` for many ``(stage, input_cid, params)`` in one round trip."""
        if not lookups:
            return []
        names = [keys.CACHE_KEY.format(digest=cache_digest(*lookup)) for lookup in lookups]
        out: list[dict[str, Any] | None] = []
        for raw in self.redis.mget(names):
            value = json.loads(raw) if raw is not None else None
            out.append(value if isinstance(value, dict) else None)
        return out

    @translate_redis_errors
    def put(
        self,
        stage: str,
        input_cid: str,
        params: Mapping[str, Any],
        result: Mapping[str, Any],
    ) -> None:
        """Record a result (overwrites: results of the same inputs are identical)."""
        key = keys.CACHE_KEY.format(digest=cache_digest(stage, input_cid, params))
        self.redis.set(key, canonical_json(dict(result)), ex=self.ttl_seconds)

    @translate_redis_errors
    def forget(self, stage: str, input_cid: str, params: Mapping[str, Any]) -> bool:
        """Drop one entry (e.g. its CIDs were garbage-collected); True if it existed."""
        key = keys.CACHE_KEY.format(digest=cache_digest(stage, input_cid, params))
        return bool(self.redis.delete(key))
