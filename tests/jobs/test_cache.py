"""The content-addressed result cache on a real Redis."""

from __future__ import annotations

import pytest
import redis
from kinoit.errors import InvalidParameter
from kinoit.jobs import ResultCache, cache_digest

pytestmark = pytest.mark.redis


def test_digest_is_canonical_over_param_order() -> None:
    a = cache_digest("transcode", "bafyX", {"height": 720, "crf": 23})
    b = cache_digest("transcode", "bafyX", {"crf": 23, "height": 720})
    assert a == b and len(a) == 64
    assert a != cache_digest("transcode", "bafyX", {"crf": 24, "height": 720})
    assert a != cache_digest("thumbnail", "bafyX", {"crf": 23, "height": 720})
    assert a != cache_digest("transcode", "bafyY", {"crf": 23, "height": 720})


def test_put_then_get_returns_result(client: redis.Redis) -> None:
    cache = ResultCache(client)
    params = {"height": 720}
    assert cache.get("transcode", "bafyX", params) is None
    cache.put("transcode", "bafyX", params, {"cid": "bafyOut"})
    assert cache.get("transcode", "bafyX", {"height": 720}) == {"cid": "bafyOut"}
    assert cache.get("transcode", "bafyX", {"height": 480}) is None
    assert client.ttl(next(iter(client.scan_iter("kinoit:cache:*")))) == -1  # no expiry
    assert cache.forget("transcode", "bafyX", params)
    assert cache.get("transcode", "bafyX", params) is None


def test_ttl_bounds_entries(client: redis.Redis) -> None:
    ResultCache(client, ttl_seconds=100).put("thumbnail", "bafyX", {}, {"cid": "bafyT"})
    key = next(iter(client.scan_iter("kinoit:cache:*")))
    assert 0 < client.ttl(key) <= 100
    with pytest.raises(InvalidParameter):
        ResultCache(client, ttl_seconds=0)


def test_non_json_params_are_invalid(client: redis.Redis) -> None:
    with pytest.raises(InvalidParameter):
        ResultCache(client).get("transcode", "bafyX", {"x": float("nan")})
