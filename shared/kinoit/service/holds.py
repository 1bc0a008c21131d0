"""Per-job holds on pinned DAGs: a store pin is per CID, so jobs count their holds.

Two jobs over the same source produce the same segment index and merge plan
CIDs. A pin is one record per CID (Kubo, Cluster and the embedded store alike),
so if each job pinned and unpinned on its own, the first job to end would unpin
what the other still needs. Here every CID has a Redis set of the jobs holding
it; a job's release unpins a CID only when it was the last holder, and
re-checks after unpinning so a hold taken meanwhile keeps its pin.
"""

from __future__ import annotations

import contextlib
from typing import Any

import redis

from kinoit.errors import NotFound
from kinoit.jobs import translate_redis_errors

# Set of the intermediate CIDs one job holds (released when the job ends).
JOB_HOLDS_KEY = "kinoit:job:{job_id}:pins"
# Set of the job ids holding one CID.
CID_HOLDERS_KEY = "kinoit:pin:{cid}:holders"
# Intermediate holds only matter while a job runs; the records outlive any job.
HOLD_RETENTION_SECONDS = 7 * 24 * 3600


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class PinHolds:
    """Pins shared by jobs: pinned while at least one job holds them."""

    def __init__(self, redis_client: redis.Redis, store: Any) -> None:
        self.redis = redis_client
        self.store = store

    @translate_redis_errors
    def hold(self, job_id: str, cid: str, name: str, *, until_job_ends: bool = True) -> None:
        """Pin ``cid`` for ``job_id``. With ``until_job_ends`` the hold is released by
        :meth:`release`; otherwise (a job's outputs) it stays until :meth:`let_go`."""
        pipe = self.redis.pipeline(transaction=True)
        holders = CID_HOLDERS_KEY.format(cid=cid)
        pipe.sadd(holders, job_id)
        if until_job_ends:
            job_key = JOB_HOLDS_KEY.format(job_id=job_id)
            pipe.sadd(job_key, cid)
            pipe.expire(job_key, HOLD_RETENTION_SECONDS)
            pipe.expire(holders, HOLD_RETENTION_SECONDS)
        else:
            pipe.persist(holders)  # outputs are kept: the record must not expire
        pipe.execute()
        # Registered first, pinned second: a concurrent last release re-checks the
        # holders after its unpin and re-pins if this hold arrived in between.
        self.store.pin_add(cid, name=name)

    @translate_redis_errors
    def let_go(self, job_id: str, cid: str) -> bool:
        """Drop ``job_id``'s hold on ``cid``; unpin it if no job holds it any more.
        True when the CID was unpinned."""
        holders = CID_HOLDERS_KEY.format(cid=cid)
        pipe = self.redis.pipeline(transaction=True)
        pipe.srem(holders, job_id)
        pipe.scard(holders)
        _, remaining = pipe.execute()
        if int(remaining) > 0:
            return False
        with contextlib.suppress(NotFound):
            self.store.pin_rm(cid)
        if int(self.redis.scard(holders)) > 0:
            # another job took a hold between our count and our unpin: pin it again
            self.store.pin_add(cid)
            return False
        return True

    @translate_redis_errors
    def release(self, job_id: str) -> int:
        """Drop every intermediate hold of ``job_id``; return how many CIDs were unpinned."""
        job_key = JOB_HOLDS_KEY.format(job_id=job_id)
        unpinned = sum(self.let_go(job_id, _text(raw)) for raw in self.redis.smembers(job_key))
        self.redis.delete(job_key)
        return unpinned

    @translate_redis_errors
    def held(self, job_id: str) -> set[str]:
        """The intermediate CIDs ``job_id`` holds."""
        return {_text(raw) for raw in self.redis.smembers(JOB_HOLDS_KEY.format(job_id=job_id))}
