"""Per-job holds on pinned DAGs: a store pin is per CID, so jobs count their holds.

Two jobs over the same source produce the same segment index and merge plan
CIDs, and two identical jobs the same manifest. A pin is one record per CID
(Kubo, Cluster and the embedded store alike), so if each job pinned and
unpinned on its own, the first job to end would unpin what the other still
needs, and a job asking for outputs that expire would shorten another job's
outputs. Here every CID has a Redis hash of the jobs holding it (job id ->
expiry, 0 for never): the pin lasts as long as its longest holder, a job's
release unpins a CID only when it was the last holder, and re-checks after
unpinning so a hold taken meanwhile keeps its pin.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis

from kinoit.errors import NotFound
from kinoit.jobs import translate_redis_errors
from kinoit.jobs.decode import text
from kinoit.jobs.keys import CID_HOLDERS_KEY, JOB_HOLDS_KEY

# Intermediate holds only matter while a job runs; the records outlive any job.
HOLD_RETENTION_SECONDS = 7 * 24 * 3600
# A hold whose pin changed under it is re-checked at most this many times.
PIN_SETTLE_ROUNDS = 3


def pin_expiry(holders: Mapping[Any, Any]) -> float | None:
    """When the pin may expire: never if any holder keeps it forever, else the latest (pure)."""
    times = [float(text(v)) for v in holders.values()]
    if not times or any(t <= 0 for t in times):
        return None
    return max(times)


class PinHolds:
    """Pins shared by jobs: pinned while at least one job holds them."""

    def __init__(
        self, redis_client: redis.Redis, store: Any, clock: Callable[[], float] = time.time
    ) -> None:
        self.redis = redis_client
        self.store = store
        self.clock = clock

    @translate_redis_errors
    def hold(
        self,
        job_id: str,
        cid: str,
        name: str,
        *,
        until_job_ends: bool = True,
        expire_in: float | None = None,
    ) -> None:
        """Pin ``cid`` for ``job_id`` (for ``expire_in`` seconds when given). With
        ``until_job_ends`` the hold is released by :meth:`release`; otherwise (a job's
        outputs) it stays until :meth:`let_go` or its expiry."""
        holders = CID_HOLDERS_KEY.format(cid=cid)
        expires_at = self.clock() + expire_in if expire_in else 0.0
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(holders, job_id, repr(expires_at))
        if until_job_ends:
            job_key = JOB_HOLDS_KEY.format(job_id=job_id)
            pipe.sadd(job_key, cid)
            pipe.expire(job_key, HOLD_RETENTION_SECONDS)
            pipe.expire(holders, HOLD_RETENTION_SECONDS)
        else:
            pipe.persist(holders)  # outputs are kept: the record must not expire first
        pipe.hgetall(holders)
        expiry = pin_expiry(pipe.execute()[-1])
        # Registered first, pinned second: a concurrent last release re-checks the
        # holders after its unpin and re-pins if this hold arrived in between; a
        # concurrent hold with another expiry is settled by re-reading.
        for _ in range(PIN_SETTLE_ROUNDS):
            remaining = None if expiry is None else max(1.0, expiry - self.clock())
            self.store.pin_add(cid, name=name, expire_in=remaining)
            settled = pin_expiry(self.redis.hgetall(holders))
            if settled == expiry:
                return
            expiry = settled

    @translate_redis_errors
    def let_go(self, job_id: str, cid: str) -> bool:
        """Drop ``job_id``'s hold on ``cid``; unpin it if no job holds it any more.
        True when the CID was unpinned. (Other holders keep the pin as it is: at
        worst it lasts longer than they need.)"""
        holders = CID_HOLDERS_KEY.format(cid=cid)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(holders, job_id)
        pipe.hlen(holders)
        _, remaining = pipe.execute()
        if int(remaining) > 0:
            return False
        with contextlib.suppress(NotFound):
            self.store.pin_rm(cid)
        now_held = self.redis.hgetall(holders)
        if now_held:
            # another job took a hold between our count and our unpin: pin it again
            expiry = pin_expiry(now_held)
            remaining = None if expiry is None else max(1.0, expiry - self.clock())
            self.store.pin_add(cid, expire_in=remaining)
            return False
        return True

    @translate_redis_errors
    def release(self, job_id: str) -> int:
        """Drop every intermediate hold of ``job_id``; return how many CIDs were unpinned."""
        job_key = JOB_HOLDS_KEY.format(job_id=job_id)
        unpinned = sum(self.let_go(job_id, text(raw)) for raw in self.redis.smembers(job_key))
        self.redis.delete(job_key)
        return unpinned

    @translate_redis_errors
    def held(self, job_id: str) -> set[str]:
        """The intermediate CIDs ``job_id`` holds."""
        return {text(raw) for raw in self.redis.smembers(JOB_HOLDS_KEY.format(job_id=job_id))}
