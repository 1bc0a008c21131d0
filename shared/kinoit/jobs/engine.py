"""The job engine: job records, the job FIFO, tasks with leases, retries and progress.

Everything lives in Redis (see :mod:`kinoit.jobs.keys`); every transition that
touches more than one key is one Lua script (:mod:`kinoit.jobs.scripts`), so
any number of orchestrate replicas may call the engine concurrently.

Callback rules (decided here, relied on by the product):

- ``complete`` accepts the result of the current attempt *or of an older
  attempt* of a task that is not done yet: stages are deterministic and
  content-addressed, so a late result of attempt 1 is as good as attempt 2's
  and finishing early saves work. The later attempt's callback is then a
  duplicate. A callback naming an attempt that was never dispatched is ignored.
- A done task never counts twice; ``Completion.stage_done`` and
  ``Completion.all_done`` are true on exactly one completion each (per task
  set: tasks added later to a finished stage make it finish again later).
  Add every task of a phase before leasing any of them.
- ``fail`` only counts for the current, leased attempt (older reports are stale).
- Expired leases and failed attempts go back to pending with attempt + 1 and
  are due after ``backoff_base * 2**(attempt-1)`` seconds (capped); ``sweep``
  re-leases due tasks atomically and returns them as :class:`Dispatch` records,
  so two replicas sweeping at once never dispatch the same task twice.
- A task out of attempts fails the job: every lease is released and the job
  slot is freed, so a failed job leaves no task leased.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from kinoit.errors import Conflict
from kinoit.jobs import keys
from kinoit.jobs.config import EngineConfig
from kinoit.jobs.connection import connect, translate_redis_errors
from kinoit.jobs.decode import (
    decode_completion,
    decode_dispatches,
    decode_leased,
    decode_reply,
    encode_json,
    text,
)
from kinoit.jobs.effects import Effect, encode_effects
from kinoit.jobs.lifecycle import JOB_KEY_TEMPLATES, JobLifecycle
from kinoit.jobs.models import (
    Completion,
    Dispatch,
    FailOutcome,
    SweepReport,
)
from kinoit.jobs.states import check_stage, check_task_id

__all__ = ["EngineConfig", "JobEngine", "connect", "translate_redis_errors"]

# Lua batches sent per pipeline round trip when adding tasks.
_PIPELINE_CALLS = 8


class JobEngine(JobLifecycle):
    """Jobs, tasks, leases and progress in one Redis; safe to share between replicas.

    ``connection`` is a ``redis.Redis`` (either ``decode_responses`` setting);
    ``clock`` returns unix seconds and is used whenever ``now`` is omitted.
    Every method raises :class:`kinoit.errors.StateUnavailable` when Redis is down.
    Job transitions are :class:`~kinoit.jobs.lifecycle.JobLifecycle`'s, reads
    :class:`~kinoit.jobs.reader.JobReader`'s; this class adds the task transitions.
    """

    SCRIPTS: ClassVar[tuple[str, ...]] = (
        "add_tasks",
        "lease",
        "lease_next",
        "complete",
        "complete_step",
        "fail",
        "sweep",
    )

    @translate_redis_errors
    def add_tasks(
        self,
        job_id: str,
        stage: str,
        tasks: Iterable[tuple[str, Mapping[str, Any] | None]],
    ) -> int:
        """Register tasks (``(task_id, payload)``) of ``stage`` as pending; return how many are new.

        Idempotent: a task id already present is left as it is. Payloads are
        stored only when non-empty (keep them small; derive what you can from
        the task id). Written in batches of ``config.batch_size`` per Lua call,
        pipelined. Conflict when the job already ended.
        """
        check_stage(stage)
        self._require(job_id)
        jkeys = keys.job_keys(job_id)
        batch: list[str] = []
        pipe = self.redis.pipeline(transaction=False)
        calls = 0
        results: list[int] = []
        for task_id, payload in tasks:
            check_task_id(task_id)
            batch.append(task_id)
            batch.append(encode_json(dict(payload), "payload") if payload else "")
            if len(batch) >= 2 * self.config.batch_size:
                self.script["add_tasks"](keys=jkeys, args=[stage, *batch], client=pipe)
                calls += 1
                batch = []
                if calls % _PIPELINE_CALLS == 0:
                    # bounded client memory however many tasks come in
                    results += [int(x) for x in pipe.execute()]
        if batch:
            self.script["add_tasks"](keys=jkeys, args=[stage, *batch], client=pipe)
            calls += 1
        results += [int(x) for x in pipe.execute()] if calls else []
        if any(r < 0 for r in results):
            raise Conflict(f"job {job_id} has ended; no tasks can be added")
        return sum(results)

    @translate_redis_errors
    def lease(
        self,
        job_id: str,
        task_id: str,
        attempt: int = 1,
        lease_seconds: float | None = None,
        now: float | None = None,
    ) -> Dispatch | None:
        """Lease one pending task for ``attempt`` before dispatching it.

        Returns the :class:`Dispatch` (with the payload), or None when the task
        is not pending for that attempt, is waiting for a retry, or the job is
        not running.
        """
        leased = self.lease_many(job_id, [(task_id, attempt)], lease_seconds, now)
        return leased[0] if leased else None

    @translate_redis_errors
    def lease_many(
        self,
        job_id: str,
        tasks: Sequence[tuple[str, int]],
        lease_seconds: float | None = None,
        now: float | None = None,
    ) -> list[Dispatch]:
        """Lease many ``(task_id, attempt)`` at once (batched); returns those leased."""
        now = self.clock() if now is None else now
        deadline = now + (self.config.lease_seconds if lease_seconds is None else lease_seconds)
        jkeys = keys.job_keys(job_id)
        pipe = self.redis.pipeline(transaction=False)
        chunks = [
            tasks[i : i + self.config.batch_size]
            for i in range(0, len(tasks), self.config.batch_size)
        ]
        for chunk in chunks:
            args: list[Any] = [repr(deadline), self.config.events_maxlen]
            for task_id, attempt in chunk:
                args += [task_id, int(attempt)]
            self.script["lease"](keys=jkeys, args=args, client=pipe)
        leased: list[tuple[str, str, int]] = []
        for chunk, res in zip(chunks, pipe.execute() if chunks else [], strict=True):
            for (task_id, attempt), stage in zip(chunk, res, strict=True):
                if stage:
                    leased.append((task_id, text(stage), int(attempt)))
        return self._dispatches(job_id, leased, deadline)

    @translate_redis_errors
    def lease_next(
        self,
        job_id: str,
        limit: int,
        lease_seconds: float | None = None,
        now: float | None = None,
    ) -> list[Dispatch]:
        """Lease up to ``limit`` never-dispatched tasks in the order they were added.

        This is the fan-out primitive: call it once with a large limit, or keep
        a window of in-flight tasks by calling it again as completions arrive
        (a lease should not expire while the task waits in the async queue).
        """
        now = self.clock() if now is None else now
        deadline = now + (self.config.lease_seconds if lease_seconds is None else lease_seconds)
        jkeys = keys.job_keys(job_id)
        leased: list[tuple[str, str, int]] = []
        remaining = limit
        while remaining > 0:
            n = min(remaining, self.config.batch_size)
            res = self.script["lease_next"](
                keys=jkeys, args=[repr(deadline), self.config.events_maxlen, n]
            )
            got = decode_leased(text(res) if res else "")
            leased += got
            remaining -= n
            if len(got) < n:
                break
        return self._dispatches(job_id, leased, deadline)

    @translate_redis_errors
    def complete(
        self, job_id: str, task_id: str, attempt: int, result: Mapping[str, Any]
    ) -> Completion:
        """Record a task's result: atomic, idempotent, exactly-once stage/job completion.

        See the module docstring for which attempts are accepted.
        """
        res = self.script["complete"](
            keys=[*keys.job_keys(job_id), keys.STATS_KEY],
            args=[
                task_id,
                int(attempt),
                encode_json(dict(result), "result"),
                self.config.events_maxlen,
            ],
        )
        return decode_completion(job_id, task_id, decode_reply(res))

    @translate_redis_errors
    def complete_step(
        self,
        job_id: str,
        task_id: str,
        attempt: int,
        result: Mapping[str, Any],
        followups: Iterable[tuple[str, Sequence[tuple[str, Mapping[str, Any] | None]]]] = (),
        effects: Iterable[Effect] = (),
        lease: int = 0,
        lease_seconds: float | None = None,
        now: float | None = None,
        followups_first: bool = False,
        settled: Iterable[tuple[str, Sequence[tuple[str, Mapping[str, Any]]]]] = (),
    ) -> tuple[Completion, list[Dispatch]]:
        """:meth:`complete`, the follow-ups it causes and the next leases in one round trip.

        Atomic, in this order, and only when the result is accepted: add ``followups``
        (``(stage, [(task_id, payload), ...])``, idempotent like :meth:`add_tasks`)
        before recording the result, so ``all_done`` counts them (with
        ``followups_first`` ahead of every task not yet dispatched, so they are leased
        next; else after them); record it exactly
        as :meth:`complete` does; apply ``effects`` (:mod:`kinoit.jobs.effects`, such
        as metric counters or a result-cache entry); lease up to ``lease`` next tasks like
        :meth:`lease_next`, reading the result-cache entry a leased task's payload
        names under ``"cache"`` (a digest) into :attr:`Dispatch.cached`. A refused
        result (duplicate, stale, job ended) adds, applies and leases nothing. Keep
        ``followups`` small (one callback's worth); use :meth:`add_tasks` for a fan-out.
        ``settled`` (``(stage, [(task_id, result), ...])``): tasks this result also does
        (a range transcode's other segments), recorded done at attempt 1 before it, each
        only if the job has no such task yet.
        """
        now = self.clock() if now is None else now
        deadline = now + (self.config.lease_seconds if lease_seconds is None else lease_seconds)
        args: list[Any] = [
            task_id,
            int(attempt),
            encode_json(dict(result), "result"),
            self.config.events_maxlen,
            repr(deadline),
            max(0, int(lease)),
            keys.CACHE_KEY.format(digest=""),
        ]
        groups: list[list[Any]] = []
        for stage, tasks in followups:
            check_stage(stage)
            flat: list[str] = []
            for tid, payload in tasks:
                check_task_id(tid)
                flat += [tid, encode_json(dict(payload), "payload") if payload else ""]
            groups.append([stage, flat])
        args.append(json.dumps(groups, separators=(",", ":")))
        args.append(encode_effects(effects))
        args.append("1" if followups_first else "0")
        done_groups: list[list[Any]] = []
        for stage, results in settled:
            check_stage(stage)
            flat = []
            for tid, body in results:
                check_task_id(tid)
                flat += [tid, encode_json(dict(body), "result")]
            done_groups.append([stage, flat])
        args.append(json.dumps(done_groups, separators=(",", ":")))
        reply = decode_reply(
            self.script["complete_step"](keys=[*keys.job_keys(job_id), keys.STATS_KEY], args=args)
        )
        completion = decode_completion(job_id, task_id, reply)
        if not completion.accepted:
            return completion, []
        leased = decode_leased(reply["leased"])
        # (an empty Lua table comes back as {}: no payloads, nothing cached; false: not
        # looked up)
        payloads, cached = reply["payloads"] or [], reply["cached"] or []
        hits = [None if hit is False else str(hit) for hit in cached]
        return completion, decode_dispatches(job_id, leased, deadline, payloads, hits)

    @translate_redis_errors
    def fail(
        self,
        job_id: str,
        task_id: str,
        attempt: int,
        reason: str,
        now: float | None = None,
    ) -> FailOutcome:
        """Report a failed attempt: retry later (attempt + 1, backoff) or fail the job.

        Only the current leased attempt counts; stale reports are ignored.
        """
        now = self.clock() if now is None else now
        res = self.script["fail"](
            keys=keys.job_stop_keys(job_id),
            args=[
                task_id,
                int(attempt),
                reason[:2000],
                repr(now),
                self.config.events_maxlen,
                self.config.max_attempts,
                self.config.backoff_base,
                self.config.backoff_cap,
                self.config.retention_seconds,
                job_id,
            ],
        )
        reply = decode_reply(res)
        if reply["status"] == "retry":
            return FailOutcome(
                job_id=job_id,
                task_id=task_id,
                attempt=int(attempt),
                next_attempt=int(reply["next_attempt"]),
                retry_at=float(reply["retry_at"]),
                reason=reason,
            )
        job_failed = reply["status"] == "job_failed"
        return FailOutcome(
            job_id=job_id,
            task_id=task_id,
            attempt=attempt,
            job_failed=job_failed,
            ignored=not job_failed,
            reason=str(reply["reason"]),
        )

    @translate_redis_errors
    def sweep(self, now: float | None = None, lease_seconds: float | None = None) -> SweepReport:
        """Expire overdue leases and re-lease due retries across every running job.

        Safe to run concurrently from many replicas (one Lua script): each due
        task is returned to exactly one caller, already leased for its new
        attempt; the caller re-dispatches the returned records. A task past
        ``max_attempts`` fails its job instead.
        """
        now = self.clock() if now is None else now
        deadline = now + (self.config.lease_seconds if lease_seconds is None else lease_seconds)
        res = self.script["sweep"](
            keys=[keys.JOBS_RUNNING_KEY, keys.STATS_KEY, keys.JOBS_QUEUE_KEY, keys.JOBS_ENDING_KEY],
            args=[
                repr(now),
                repr(deadline),
                self.config.events_maxlen,
                self.config.max_attempts,
                self.config.backoff_base,
                self.config.backoff_cap,
                self.config.sweep_limit,
                JOB_KEY_TEMPLATES,
                self.config.retention_seconds,
            ],
        )
        reply = decode_reply(res)
        expired, failed = int(reply["expired"]), [str(x) for x in reply["failed"] or []]
        by_job: dict[str, list[tuple[str, str, int]]] = {}
        for leased in reply["dispatches"] or []:
            by_job.setdefault(str(leased["job"]), []).append(
                (str(leased["task"]), str(leased["stage"]), int(leased["attempt"]))
            )
        dispatches: list[Dispatch] = []
        for job_id, leased in by_job.items():
            dispatches += self._dispatches(job_id, leased, deadline)
        return SweepReport(dispatches=dispatches, expired=expired, failed_jobs=failed)

    def _dispatches(
        self, job_id: str, leased: list[tuple[str, str, int]], deadline: float
    ) -> list[Dispatch]:
        if not leased:
            return []
        payload_key = keys.JOB_PAYLOADS_KEY.format(job_id=job_id)
        payloads: list[Any] = []
        step = self.config.batch_size
        for i in range(0, len(leased), step):
            payloads += self.redis.hmget(payload_key, [t for t, _, _ in leased[i : i + step]])
        return decode_dispatches(job_id, leased, deadline, payloads)
