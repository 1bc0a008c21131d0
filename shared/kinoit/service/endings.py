"""What a job owes when it ends, recorded in the step that ends it, so that a crash
at any later step of the end loses nothing.

Ending a job is several writes: the engine's transition (completed, failed,
cancelled), the end webhook into the delivery queue, and the release of the
pins the job held. A process that dies between them used to leave the webhook
unsent and the pins held for good. Now:

1. every engine script that ends a job (finish, stop, fail, the lease sweep)
   adds it to ``kinoit:jobs:ending`` in the same atomic step as the transition;
   :meth:`Endings.owe`, called just before, also records what the settling needs
   and the state cannot tell (an output root to let go, the failed task to report);
2. the end is then *settled* — the webhook queued at most once per job
   (:meth:`Endings.queue_webhook`, a check-and-write transaction on the job's
   ``end`` record, so a re-run keeps the first message and its ``webhook-id``),
   the holds released (idempotent) — and the job is struck off
   (:meth:`Endings.settled`);
3. the tick settles every job still on the list whose end began more than
   ``SETTLE_GRACE_SECONDS`` ago and that has ended: what a crashed process left.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis

from kinoit.jobs import keys as job_keys
from kinoit.jobs import translate_redis_errors

# Owed ends (job id -> when the end began) and each job's end record: "webhook" (the
# end message id once queued), "manifest" (an output root held before the
# transition), "failed_task" (JSON).
ENDING_KEY = job_keys.JOBS_ENDING_KEY
END_KEY = job_keys.JOB_END_KEY
# The end record only guards against a second end webhook; a week outlives any retry.
END_RETENTION_SECONDS = 7 * 24 * 3600
# An end that began this recently may still be running in its own process.
SETTLE_GRACE_SECONDS = 5.0
# Jobs settled per tick at most (the rest wait for the next tick).
SETTLE_BATCH = 100


def _text(raw: Any) -> str:
    if raw is None:
        return ""
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class Endings:
    """The list of job ends still owed and the at-most-once end webhook."""

    def __init__(self, connection: redis.Redis, clock: Callable[[], float] = time.time) -> None:
        self.redis = connection
        self.clock = clock

    @translate_redis_errors
    def owe(
        self,
        job_id: str,
        manifest: str | None = None,
        failed_task: Mapping[str, Any] | None = None,
    ) -> None:
        """Record that ``job_id`` is ending (before the transition is made)."""
        end_key = END_KEY.format(job_id=job_id)
        fields: dict[Any, Any] = {}
        if manifest:
            fields["manifest"] = manifest
        if failed_task is not None:
            fields["failed_task"] = json.dumps(dict(failed_task), separators=(",", ":"))
        pipe = self.redis.pipeline(transaction=True)
        pipe.zadd(ENDING_KEY, {job_id: self.clock()}, nx=True)
        if fields:
            pipe.hset(end_key, mapping=fields)
            pipe.expire(end_key, END_RETENTION_SECONDS)
        pipe.execute()

    @translate_redis_errors
    def record(self, job_id: str) -> dict[str, str]:
        """The job's end record (empty when none)."""
        raw = self.redis.hgetall(END_KEY.format(job_id=job_id))
        return {_text(k): _text(v) for k, v in raw.items()}

    def failed_task(self, job_id: str) -> dict[str, Any] | None:
        """The failed task recorded when the failure was owed, if any."""
        text = self.record(job_id).get("failed_task")
        value = json.loads(text) if text else None
        return value if isinstance(value, dict) else None

    @translate_redis_errors
    def queue_webhook(self, job_id: str, url: str, body: str, event_type: str, msg_id: str) -> str:
        """Put the end webhook in the delivery queue unless one was queued for this job
        already; the id of the one queued (this one or the first)."""
        end_key = END_KEY.format(job_id=job_id)
        msg_key = job_keys.WEBHOOK_MSG_KEY.format(msg_id=msg_id)
        now = self.clock()

        pipe: Any
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(end_key)
                    existing = _text(pipe.hget(end_key, "webhook"))
                    if existing:
                        pipe.unwatch()
                        return existing
                    pipe.multi()
                    pipe.hset(end_key, "webhook", msg_id)
                    pipe.expire(end_key, END_RETENTION_SECONDS)
                    fields: dict[Any, Any] = {
                        "url": url, "body": body, "type": event_type, "job_id": job_id,
                        "attempts": 0,
                    }  # fmt: skip
                    pipe.hset(msg_key, mapping=fields)
                    pipe.zadd(job_keys.WEBHOOK_DUE_KEY, {msg_id: now})
                    pipe.execute()
                    return msg_id
                except redis.WatchError:  # another process wrote the record: read it again
                    continue

    @translate_redis_errors
    def settled(self, job_id: str) -> None:
        """Strike ``job_id`` off the list of owed ends."""
        self.redis.zrem(ENDING_KEY, job_id)

    @translate_redis_errors
    def due(self, limit: int = SETTLE_BATCH) -> list[str]:
        """Jobs whose end began more than the grace period ago and is not settled."""
        cutoff = self.clock() - SETTLE_GRACE_SECONDS
        raw = self.redis.zrangebyscore(ENDING_KEY, "-inf", cutoff, start=0, num=limit)
        return [_text(x) for x in raw]

    @translate_redis_errors
    def owed(self) -> list[str]:
        """Every job whose end is not settled yet (for tests and inspection)."""
        return [_text(x) for x in self.redis.zrange(ENDING_KEY, 0, -1)]
