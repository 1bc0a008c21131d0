"""Fixtures of the job-engine tests: a JobEngine on a flushed real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from kinoit.jobs import EngineConfig, JobEngine

# A fixed, readable "now" for tests that pass time explicitly.
T0 = 1_800_000_000.0


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A redis-py client on the flushed test database."""
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


@pytest.fixture
def engine(client: redis.Redis) -> JobEngine:
    """An engine with small, explicit limits: 3 attempts, 1 s backoff base, 10 s leases."""
    config = EngineConfig(
        max_active_jobs=1, max_attempts=3, lease_seconds=10.0, backoff_base=1.0, backoff_cap=8.0
    )
    return JobEngine(client, config, clock=lambda: T0)
