"""Per-job pin holds against real Redis and a real embedded store."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from kinoit.service.holds import PinHolds
from kinoit.store import EmbeddedStore

pytestmark = pytest.mark.redis


@pytest.fixture
def holds(tmp_path: Path, redis_url: str) -> PinHolds:
    return PinHolds(redis.Redis.from_url(redis_url), EmbeddedStore(tmp_path, durable=False))


def pinned(holds: PinHolds) -> set[str]:
    return {p.cid for p in holds.store.pin_ls()}


def test_a_cid_stays_pinned_until_its_last_holder_releases(holds: PinHolds) -> None:
    cid = holds.store.add_bytes(b"segment index", pin=False)
    holds.hold("job-a", cid, "a")
    holds.hold("job-b", cid, "b")
    assert holds.release("job-a") == 0
    assert pinned(holds) == {cid} and holds.held("job-a") == set()
    assert holds.release("job-b") == 1
    assert pinned(holds) == set()


def test_releasing_twice_is_harmless(holds: PinHolds) -> None:
    cid = holds.store.add_bytes(b"plan", pin=False)
    holds.hold("job-a", cid, "a")
    assert holds.release("job-a") == 1
    assert holds.release("job-a") == 0 and pinned(holds) == set()


def test_an_output_hold_is_not_released_with_the_intermediates(holds: PinHolds) -> None:
    manifest = holds.store.add_bytes(b"manifest", pin=False)
    holds.hold("job-a", manifest, "out-a", until_job_ends=False)
    holds.hold("job-b", manifest, "out-b", until_job_ends=False)
    holds.release("job-a")
    assert pinned(holds) == {manifest}
    # a job cancelled while merging lets go of its output, another job still keeps it
    assert holds.let_go("job-b", manifest) is False
    assert pinned(holds) == {manifest}


def test_a_hold_taken_during_the_last_release_keeps_the_pin(
    holds: PinHolds, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = holds.store.add_bytes(b"shared segments", pin=False)
    holds.hold("job-a", cid, "a")
    real_pin_rm = holds.store.pin_rm

    def pin_rm_racing_a_new_hold(target: str) -> None:
        holds.hold("job-b", target, "b")  # job B pins between A's count and A's unpin
        real_pin_rm(target)

    monkeypatch.setattr(holds.store, "pin_rm", pin_rm_racing_a_new_hold)
    assert holds.release("job-a") == 0
    assert pinned(holds) == {cid}


def expiry(holds: PinHolds, cid: str) -> float | None:
    (pin,) = [p for p in holds.store.pin_ls() if p.cid == cid]
    return pin.expires_at


def test_a_shared_pin_lasts_as_long_as_its_longest_holder(holds: PinHolds) -> None:
    manifest = holds.store.add_bytes(b"outputs", pin=False)
    now = holds.clock()
    holds.hold("job-a", manifest, "a", until_job_ends=False, expire_in=100)
    assert expiry(holds, manifest) == pytest.approx(now + 100, abs=5)
    holds.hold("job-b", manifest, "b", until_job_ends=False, expire_in=1000)
    assert expiry(holds, manifest) == pytest.approx(now + 1000, abs=5)
    # a shorter expiry asked later does not shorten it
    holds.hold("job-c", manifest, "c", until_job_ends=False, expire_in=10)
    assert expiry(holds, manifest) == pytest.approx(now + 1000, abs=5)
    holds.hold("job-d", manifest, "d", until_job_ends=False)
    assert expiry(holds, manifest) is None
    holds.hold("job-e", manifest, "e", until_job_ends=False, expire_in=10)
    assert expiry(holds, manifest) is None
