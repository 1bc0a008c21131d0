"""The engine's boundary to Redis: connecting, and translating Redis failures into
:class:`~kinoit.errors.StateUnavailable` (retryable, 503)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import redis

from kinoit.errors import InvalidParameter, StateUnavailable

P = ParamSpec("P")
R = TypeVar("R")


def translate_redis_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn redis connection/timeouts into StateUnavailable (the engine's boundary)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StateUnavailable(f"Redis unreachable: {exc}") from exc
        except redis.ResponseError as exc:
            text = str(exc)
            if text.startswith(("LOADING", "BUSY", "MISCONF", "READONLY", "MASTERDOWN")):
                raise StateUnavailable(f"Redis unavailable: {text}") from exc
            raise

    return wrapper


def connect(url: str) -> redis.Redis:
    """A Redis client for ``url`` checked with PING; StateUnavailable when unreachable."""
    try:
        client: redis.Redis = redis.Redis.from_url(url, socket_connect_timeout=5)
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StateUnavailable(f"Redis unreachable at {url}: {exc}") from exc
    except ValueError as exc:
        raise InvalidParameter("KINOIT_REDIS_URL", str(exc)) from exc
    return client
