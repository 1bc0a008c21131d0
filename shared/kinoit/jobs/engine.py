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

import functools
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast

import redis

from kinoit.config import Settings
from kinoit.errors import Conflict, InvalidParameter, NotFound, StateUnavailable
from kinoit.jobs import keys, scripts
from kinoit.jobs.ids import is_job_id, new_job_id
from kinoit.jobs.models import (
    CancelReport,
    Completion,
    Dispatch,
    EngineGauges,
    Event,
    FailOutcome,
    JobPage,
    JobRecord,
    StageCounts,
    SweepReport,
    TaskInfo,
)
from kinoit.jobs.states import JobState, TaskState, check_stage, check_task_id

P = ParamSpec("P")
R = TypeVar("R")

# First retry waits this long; each further attempt doubles it.
DEFAULT_BACKOFF_BASE_SECONDS = 2.0
# No retry waits longer than this, however many attempts came before.
DEFAULT_BACKOFF_CAP_SECONDS = 60.0
# A stream longer than this is trimmed (approximately); watchers also poll counts.
DEFAULT_EVENTS_MAXLEN = 100_000
# A completed job's stream keeps only its last this many events (the per-task history
# of a long job would otherwise outweigh everything else it leaves in Redis).
DEFAULT_FINISHED_EVENTS = 1000
# Task hashes and streams of finished jobs are kept this long for inspection/cleanup.
DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600
# Tasks written per Lua call when adding or leasing in bulk (keeps each call < ~10 ms).
DEFAULT_BATCH_SIZE = 1000
# Lua batches sent per pipeline round trip when adding tasks.
_PIPELINE_CALLS = 8
# Largest number of expired leases (and of due retries) one sweep handles per job.
DEFAULT_SWEEP_LIMIT = 1000


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


@dataclass(frozen=True)
class EngineConfig:
    """Tunables of the engine; :meth:`from_settings` maps the KINOIT_* settings."""

    max_active_jobs: int = 1
    max_attempts: int = 3
    lease_seconds: float = 120.0
    backoff_base: float = DEFAULT_BACKOFF_BASE_SECONDS
    backoff_cap: float = DEFAULT_BACKOFF_CAP_SECONDS
    events_maxlen: int = DEFAULT_EVENTS_MAXLEN
    retention_seconds: int = DEFAULT_RETENTION_SECONDS
    batch_size: int = DEFAULT_BATCH_SIZE
    sweep_limit: int = DEFAULT_SWEEP_LIMIT
    finished_events: int = DEFAULT_FINISHED_EVENTS

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> EngineConfig:
        """Config from the settings (max_active_jobs, max_attempts, lease_seconds)."""
        base = cls(
            max_active_jobs=settings.max_active_jobs,
            max_attempts=settings.max_attempts,
            lease_seconds=settings.lease_seconds,
        )
        return cls(**{**base.__dict__, **overrides})

    def backoff(self, attempt: int) -> float:
        """Delay before re-dispatching after ``attempt`` failed (same formula as the Lua)."""
        return float(min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _json(value: Any, name: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidParameter(name, f"not JSON-serialisable: {exc}") from None


def _parse_task(raw: str) -> tuple[TaskState, int, str, str]:
    head, stage, rest = raw.split("|", 2)
    return TaskState.from_letter(head[0]), int(head[1:]), stage, rest


def _counts(flat: Sequence[Any]) -> dict[str, StageCounts]:
    acc: dict[str, dict[str, int]] = {}
    for i in range(0, len(flat) - 1, 2):
        stage, _, name = _s(flat[i]).rpartition(":")
        acc.setdefault(stage, {})[name] = int(_s(flat[i + 1]))
    fields = set(StageCounts.__dataclass_fields__)
    # The stored "*" counters (done, total) exist for all_done in Lua; the job-wide
    # view is the sum of the stages, which also covers the stage-only counters.
    acc.pop("*", None)
    out = {
        stage: StageCounts(**{k: v for k, v in vals.items() if k in fields})
        for stage, vals in acc.items()
    }
    if out:
        out["*"] = StageCounts(
            **{f: sum(getattr(c, f) for c in out.values()) for f in sorted(fields)}
        )
    return out


class JobEngine:
    """Jobs, tasks, leases and progress in one Redis; safe to share between replicas.

    ``connection`` is a ``redis.Redis`` (either ``decode_responses`` setting);
    ``clock`` returns unix seconds and is used whenever ``now`` is omitted.
    Every method raises :class:`kinoit.errors.StateUnavailable` when Redis is down.
    """

    def __init__(
        self,
        connection: redis.Redis,
        config: EngineConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = connection
        self.config = config or EngineConfig()
        self.clock = clock
        reg = connection.register_script
        self._add = reg(scripts.ADD_TASKS)
        self._lease = reg(scripts.LEASE)
        self._lease_next = reg(scripts.LEASE_NEXT)
        self._complete = reg(scripts.COMPLETE)
        self._step = reg(scripts.COMPLETE_STEP)
        self._fail = reg(scripts.FAIL)
        self._sweep = reg(scripts.SWEEP)
        self._rerun = reg(scripts.RERUN)
        self._stop = reg(scripts.STOP)
        self._finish = reg(scripts.FINISH)
        self._promote = reg(scripts.PROMOTE)

    # ------------------------------------------------------------------ jobs
    @translate_redis_errors
    def create_job(
        self,
        spec: Mapping[str, Any],
        metadata: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> str:
        """Record a new job in state queued at the back of the FIFO; return its id."""
        now = self.clock() if now is None else now
        job_id = new_job_id(now)
        fields: dict[Any, Any] = {
            "state": JobState.QUEUED.value,
            "spec": _json(dict(spec), "spec"),
            "metadata": _json(dict(metadata or {}), "metadata"),
            "created_at": repr(now),
        }
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(keys.job_key(job_id), mapping=fields)
        pipe.zadd(keys.JOBS_ALL_KEY, {job_id: int(now * 1000)})
        pipe.rpush(keys.JOBS_QUEUE_KEY, job_id)
        pipe.hincrby(keys.STATS_KEY, "jobs:accepted", 1)
        self._event(job_id, "job.accepted", {}, pipe)
        pipe.execute()
        return job_id

    @translate_redis_errors
    def get_job(self, job_id: str) -> JobRecord:
        """The job record with its per-stage counts; NotFound for an unknown id."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.job_key(job_id))
        pipe.hgetall(keys.JOB_COUNTS_KEY.format(job_id=job_id))
        raw, counts = pipe.execute()
        if not raw or not is_job_id(job_id):
            raise NotFound(f"no job {job_id!r}")
        return self._record(job_id, raw, counts)

    @translate_redis_errors
    def list_jobs(self, limit: int = 50, cursor: int = 0) -> JobPage:
        """Jobs newest first; pass ``next_cursor`` of one page to get the next."""
        if not 1 <= limit <= 1000:
            raise InvalidParameter("limit", f"must be between 1 and 1000, got {limit}")
        if cursor < 0:
            raise InvalidParameter("cursor", f"must be >= 0, got {cursor}")
        ids = [_s(x) for x in self.redis.zrevrange(keys.JOBS_ALL_KEY, cursor, cursor + limit)]
        more = len(ids) > limit
        ids = ids[:limit]
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(keys.job_key(job_id))
            pipe.hgetall(keys.JOB_COUNTS_KEY.format(job_id=job_id))
        res = pipe.execute()
        jobs = [
            self._record(job_id, res[2 * i], res[2 * i + 1])
            for i, job_id in enumerate(ids)
            if res[2 * i]
        ]
        return JobPage(jobs=jobs, next_cursor=cursor + limit if more else None)

    @translate_redis_errors
    def promote(self, now: float | None = None) -> list[str]:
        """Move the oldest queued jobs to running while fewer than max_active_jobs run.

        Atomic: concurrent callers never start more than the limit. Returns the
        ids of the jobs started by this call (the caller starts their first stage).
        """
        now = self.clock() if now is None else now
        res = self._promote(
            keys=[keys.JOBS_QUEUE_KEY, keys.JOBS_RUNNING_KEY],
            args=[self.config.max_active_jobs, repr(now), self.config.events_maxlen, keys.PREFIX],
        )
        return [_s(x) for x in res]

    @translate_redis_errors
    def set_outputs(
        self, job_id: str, outputs: Mapping[str, Any] | None = None, manifest: str | None = None
    ) -> None:
        """Store output CIDs and/or the manifest CID on the job (any state)."""
        fields: dict[Any, Any] = {}
        if outputs is not None:
            fields["outputs"] = _json(dict(outputs), "outputs")
        if manifest is not None:
            fields["manifest"] = manifest
        if fields:
            self._require(job_id)
            self.redis.hset(keys.job_key(job_id), mapping=fields)

    @translate_redis_errors
    def complete_job(
        self,
        job_id: str,
        manifest: str | None = None,
        outputs: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> JobRecord:
        """Mark a running job completed (after merge), freeing its slot.

        The job's results stay; its stream keeps its last ``config.finished_events``
        events (0: all) and its payloads are dropped (an ended job dispatches nothing).
        Conflict when the job is not running (e.g. cancelled during merge).
        """
        now = self.clock() if now is None else now
        res = self._finish(
            keys=[*keys.job_keys(job_id), keys.JOBS_RUNNING_KEY, keys.STATS_KEY],
            args=[
                repr(now),
                manifest or "",
                _json(dict(outputs), "outputs") if outputs is not None else "",
                self.config.events_maxlen,
                job_id,
                self.config.retention_seconds,
                self.config.finished_events,
            ],
        )
        self._check_stop_status(job_id, res, "complete")
        return self.get_job(job_id)

    @translate_redis_errors
    def fail_job(self, job_id: str, reason: str, now: float | None = None) -> CancelReport:
        """Fail a queued or running job with ``reason``; releases every lease.

        Conflict when the job is already completed, failed or cancelled.
        """
        return self._stop_job(job_id, JobState.FAILED, reason, now)

    @translate_redis_errors
    def cancel(self, job_id: str, now: float | None = None) -> CancelReport:
        """Cancel a queued or running job: no more dispatch, every lease released.

        Late callbacks are ignored afterwards. The report lists the tasks that
        were in flight; :meth:`iter_results` yields finished results to unpin.
        Conflict when the job already ended.
        """
        return self._stop_job(job_id, JobState.CANCELLED, "cancelled", now)

    # ----------------------------------------------------------------- tasks
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
            batch.append(_json(dict(payload), "payload") if payload else "")
            if len(batch) >= 2 * self.config.batch_size:
                self._add(keys=jkeys, args=[stage, *batch], client=pipe)
                calls += 1
                batch = []
                if calls % _PIPELINE_CALLS == 0:
                    # bounded client memory however many tasks come in
                    results += [int(x) for x in pipe.execute()]
        if batch:
            self._add(keys=jkeys, args=[stage, *batch], client=pipe)
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
            self._lease(keys=jkeys, args=args, client=pipe)
        leased: list[tuple[str, str, int]] = []
        for chunk, res in zip(chunks, pipe.execute() if chunks else [], strict=True):
            for (task_id, attempt), stage in zip(chunk, res, strict=True):
                if stage:
                    leased.append((task_id, _s(stage), int(attempt)))
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
            res = self._lease_next(keys=jkeys, args=[repr(deadline), self.config.events_maxlen, n])
            lines = _s(res).split("\n") if res else []
            got = [(t, stage, int(a)) for t, stage, a in (line.split("|") for line in lines)]
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
        res = self._complete(
            keys=[*keys.job_keys(job_id), keys.STATS_KEY],
            args=[
                task_id,
                int(attempt),
                _json(dict(result), "result"),
                self.config.events_maxlen,
            ],
        )
        return self._completion(job_id, task_id, res)

    @translate_redis_errors
    def complete_step(
        self,
        job_id: str,
        task_id: str,
        attempt: int,
        result: Mapping[str, Any],
        followups: Iterable[tuple[str, Sequence[tuple[str, Mapping[str, Any] | None]]]] = (),
        writes: Iterable[Sequence[str | int | float]] = (),
        lease: int = 0,
        lease_seconds: float | None = None,
        now: float | None = None,
    ) -> tuple[Completion, list[Dispatch]]:
        """:meth:`complete`, the follow-ups it causes and the next leases in one round trip.

        Atomic, in this order, and only when the result is accepted: add ``followups``
        (``(stage, [(task_id, payload), ...])``, idempotent like :meth:`add_tasks`)
        before recording the result, so ``all_done`` counts them; record it exactly
        as :meth:`complete` does; run ``writes`` (Redis commands such as metric
        counters or a result-cache ``SET``); lease up to ``lease`` next tasks like
        :meth:`lease_next`, reading the result-cache entry a leased task's payload
        names under ``"cache"`` (a digest) into :attr:`Dispatch.cached`. A refused
        result (duplicate, stale, job ended) adds, writes and leases nothing. Keep
        ``followups`` small (one callback's worth); use :meth:`add_tasks` for a fan-out.
        """
        now = self.clock() if now is None else now
        deadline = now + (self.config.lease_seconds if lease_seconds is None else lease_seconds)
        args: list[Any] = [
            task_id,
            int(attempt),
            _json(dict(result), "result"),
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
                flat += [tid, _json(dict(payload), "payload") if payload else ""]
            groups.append([stage, flat])
        args.append(json.dumps(groups, separators=(",", ":")))
        args.append(_json([[str(x) for x in w] for w in writes], "writes"))
        res = self._step(keys=[*keys.job_keys(job_id), keys.STATS_KEY], args=args)
        completion = self._completion(job_id, task_id, res)
        if not completion.accepted:
            return completion, []
        lines = _s(res[9]).split("\n") if res[9] else []
        leased = [(t, stage, int(a)) for t, stage, a in (line.split("|") for line in lines)]
        dispatches = [
            Dispatch(
                job_id=job_id,
                task_id=tid,
                stage=stage,
                attempt=a,
                lease_deadline=deadline,
                payload=json.loads(raw) if raw else {},
                cached=None if hit is None else _s(hit),
            )
            for (tid, stage, a), raw, hit in zip(leased, res[10] or [], res[11] or [], strict=True)
        ]
        return completion, dispatches

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
        res = self._fail(
            keys=[
                *keys.job_keys(job_id),
                keys.JOBS_RUNNING_KEY,
                keys.STATS_KEY,
                keys.JOBS_QUEUE_KEY,
            ],
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
            ],
        )
        status = _s(res[0])
        if status == "retry":
            return FailOutcome(
                job_id=job_id,
                task_id=task_id,
                attempt=int(attempt),
                next_attempt=int(res[1]),
                retry_at=float(_s(res[2])),
                reason=reason,
            )
        if status == "job_failed":
            return FailOutcome(
                job_id=job_id, task_id=task_id, attempt=attempt, job_failed=True, reason=_s(res[1])
            )
        return FailOutcome(
            job_id=job_id, task_id=task_id, attempt=attempt, ignored=True, reason=_s(res[1])
        )

    @translate_redis_errors
    def rerun(
        self,
        job_id: str,
        task_id: str,
        reason: str,
        lease_seconds: float | None = None,
        now: float | None = None,
    ) -> Dispatch:
        """Send a done task again with attempt + 1 (e.g. its checksum did not verify).

        The task is leased at once; the caller dispatches the returned record.
        Its done count drops by one, so stage/job completion fires again when
        the re-run completes. Conflict when the task is not done or the job is
        not running.
        """
        now = self.clock() if now is None else now
        deadline = now + (self.config.lease_seconds if lease_seconds is None else lease_seconds)
        res = self._rerun(
            keys=[*keys.job_keys(job_id), keys.STATS_KEY],
            args=[task_id, reason[:2000], repr(deadline), self.config.events_maxlen],
        )
        if len(res) == 1:
            raise Conflict(f"cannot re-run task {task_id} of job {job_id}: {_s(res[0])}")
        return self._dispatches(job_id, [(task_id, _s(res[0]), int(res[1]))], deadline)[0]

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
        res = self._sweep(
            keys=[keys.JOBS_RUNNING_KEY, keys.STATS_KEY, keys.JOBS_QUEUE_KEY],
            args=[
                repr(now),
                repr(deadline),
                self.config.events_maxlen,
                self.config.max_attempts,
                self.config.backoff_base,
                self.config.backoff_cap,
                self.config.sweep_limit,
                keys.PREFIX,
                self.config.retention_seconds,
            ],
        )
        flat, expired, failed = res[0], int(res[1]), [_s(x) for x in res[2]]
        by_job: dict[str, list[tuple[str, str, int]]] = {}
        for i in range(0, len(flat), 4):
            by_job.setdefault(_s(flat[i]), []).append(
                (_s(flat[i + 1]), _s(flat[i + 2]), int(flat[i + 3]))
            )
        dispatches: list[Dispatch] = []
        for job_id, leased in by_job.items():
            dispatches += self._dispatches(job_id, leased, deadline)
        return SweepReport(dispatches=dispatches, expired=expired, failed_jobs=failed)

    @translate_redis_errors
    def task(self, job_id: str, task_id: str) -> TaskInfo:
        """One task's state; NotFound when the job or task is unknown."""
        raw = self.redis.hget(keys.JOB_TASKS_KEY.format(job_id=job_id), task_id)
        if raw is None:
            raise NotFound(f"no task {task_id!r} in job {job_id!r}")
        return self._task_info(job_id, task_id, _s(raw))

    def iter_tasks(self, job_id: str, stage: str | None = None) -> Iterator[TaskInfo]:
        """Every task of the job (optionally of one stage), in no particular order."""
        key = keys.JOB_TASKS_KEY.format(job_id=job_id)
        cursor = 0
        while True:
            # the decorator cannot reach inside a generator: translate each page's call
            cursor, page = cast(
                "tuple[int, dict[Any, Any]]",
                translate_redis_errors(self.redis.hscan)(key, cursor, count=1000),
            )
            for task_id, raw in page.items():
                info = self._task_info(job_id, _s(task_id), _s(raw))
                if stage is None or info.stage == stage:
                    yield info
            if int(cursor) == 0:
                return

    def iter_results(self, job_id: str, stage: str | None = None) -> Iterator[TaskInfo]:
        """Done tasks with their results (for merge, and for unpinning after cancel)."""
        for info in self.iter_tasks(job_id, stage):
            if info.state is TaskState.DONE:
                yield info

    def results(self, job_id: str, stage: str) -> dict[str, Mapping[str, Any]]:
        """``{task_id: result}`` of the done tasks of one stage."""
        return {t.task_id: t.result or {} for t in self.iter_results(job_id, stage)}

    @translate_redis_errors
    def leased_tasks(self, job_id: str) -> list[TaskInfo]:
        """Tasks currently leased (in flight) in the job."""
        ids = [_s(x) for x in self.redis.zrange(keys.JOB_LEASES_KEY.format(job_id=job_id), 0, -1)]
        if not ids:
            return []
        raws = self.redis.hmget(keys.JOB_TASKS_KEY.format(job_id=job_id), ids)
        return [
            self._task_info(job_id, task_id, _s(raw))
            for task_id, raw in zip(ids, raws, strict=True)
            if raw is not None
        ]

    # -------------------------------------------------------------- progress
    @translate_redis_errors
    def emit(self, job_id: str, type: str, **fields: str | int | float) -> str:
        """Append a product event (e.g. ``task.verified``, ``job.merge``) to the job stream."""
        return self._event(job_id, type, {k: str(v) for k, v in fields.items()})

    @translate_redis_errors
    def follow(
        self, job_id: str, last_id: str = "0-0", block_ms: int | None = None, count: int = 1000
    ) -> list[Event]:
        """Events after ``last_id`` (``"0-0"``: from the start; ``"$"``: only new ones).

        Waits up to ``block_ms`` for at least one when given; returns [] on timeout.
        """
        res: Any = self.redis.xread({keys.events_key(job_id): last_id}, count=count, block=block_ms)
        events: list[Event] = []
        for _stream, entries in res or []:
            for entry_id, fields in entries:
                decoded = {_s(k): _s(v) for k, v in fields.items()}
                events.append(Event(id=_s(entry_id), type=decoded.pop("type", ""), fields=decoded))
        return events

    # --------------------------------------------------------------- metrics
    @translate_redis_errors
    def gauges(self) -> EngineGauges:
        """Numbers for /metrics: jobs by state, tasks by stage/state, queue depth, leases."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.llen(keys.JOBS_QUEUE_KEY)
        pipe.smembers(keys.JOBS_RUNNING_KEY)
        pipe.hgetall(keys.STATS_KEY)
        queued, running_raw, stats_raw = pipe.execute()
        running = sorted(_s(x) for x in running_raw)
        pipe = self.redis.pipeline(transaction=False)
        for job_id in running:
            pipe.hgetall(keys.JOB_COUNTS_KEY.format(job_id=job_id))
            pipe.zcard(keys.JOB_LEASES_KEY.format(job_id=job_id))
            pipe.zcard(keys.JOB_RETRIES_KEY.format(job_id=job_id))
        res = pipe.execute() if running else []
        tasks: dict[tuple[str, str], int] = {}
        leases = retries = 0
        for i in range(len(running)):
            counts_raw, n_leases, n_retries = res[3 * i : 3 * i + 3]
            leases += int(n_leases)
            retries += int(n_retries)
            flat = [x for kv in counts_raw.items() for x in kv]
            for stage, c in _counts(flat).items():
                if stage == "*":
                    continue
                for name, value in c.to_dict().items():
                    if name != "retries":
                        tasks[(stage, name)] = tasks.get((stage, name), 0) + value
        stats = {_s(k): int(_s(v)) for k, v in stats_raw.items()}
        jobs = {
            JobState.QUEUED.value: int(queued),
            JobState.RUNNING.value: len(running),
            **{
                s.value: stats.get(f"jobs:{s.value}", 0)
                for s in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)
            },
        }
        events = {k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("tasks:")}
        events["accepted_jobs"] = stats.get("jobs:accepted", 0)
        return EngineGauges(
            jobs=jobs,
            queue_depth=int(queued),
            running=len(running),
            leases=leases,
            retries_waiting=retries,
            tasks=tasks,
            task_events=events,
        )

    # -------------------------------------------------------------- internals
    def _event(
        self,
        job_id: str,
        type: str,
        fields: Mapping[str, str],
        pipe: redis.client.Pipeline | None = None,
    ) -> str:
        target: Any = pipe if pipe is not None else self.redis
        res = target.xadd(
            keys.events_key(job_id),
            {"type": type, **fields},
            maxlen=self.config.events_maxlen,
            approximate=True,
        )
        return "" if pipe is not None else _s(res)

    def _require(self, job_id: str) -> JobState:
        state = self.redis.hget(keys.job_key(job_id), "state")
        if state is None:
            raise NotFound(f"no job {job_id!r}")
        return JobState(_s(state))

    def _stop_job(
        self, job_id: str, state: JobState, reason: str, now: float | None
    ) -> CancelReport:
        now = self.clock() if now is None else now
        res = self._stop(
            keys=[
                *keys.job_keys(job_id),
                keys.JOBS_RUNNING_KEY,
                keys.STATS_KEY,
                keys.JOBS_QUEUE_KEY,
            ],
            args=[
                state.value,
                reason[:2000],
                repr(now),
                self.config.events_maxlen,
                job_id,
                self.config.retention_seconds,
            ],
        )
        self._check_stop_status(job_id, res, state.value)
        flat = res[2]
        released = [
            TaskInfo(
                job_id=job_id,
                task_id=_s(flat[i]),
                stage=_s(flat[i + 1]),
                state=TaskState.PENDING,
                attempt=int(flat[i + 2]),
            )
            for i in range(0, len(flat), 3)
        ]
        return CancelReport(job_id=job_id, previous_state=JobState(_s(res[1])), released=released)

    @staticmethod
    def _check_stop_status(job_id: str, res: Sequence[Any], verb: str) -> None:
        status = _s(res[0])
        if status == "missing":
            raise NotFound(f"no job {job_id!r}")
        if status == "conflict":
            raise Conflict(f"cannot {verb} job {job_id}: it is {_s(res[1])}")

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
        return [
            Dispatch(
                job_id=job_id,
                task_id=task_id,
                stage=stage,
                attempt=attempt,
                lease_deadline=deadline,
                payload=json.loads(raw) if raw else {},
            )
            for (task_id, stage, attempt), raw in zip(leased, payloads, strict=True)
        ]

    @staticmethod
    def _completion(job_id: str, task_id: str, res: Sequence[Any]) -> Completion:
        status, stage, cur = _s(res[0]), _s(res[1]), int(res[2])
        if status != "accepted":
            return Completion(
                job_id=job_id,
                task_id=task_id,
                stage=stage,
                attempt=cur,
                accepted=False,
                duplicate=status == "duplicate",
                ignored=status != "duplicate",
                reason=status,
            )
        return Completion(
            job_id=job_id,
            task_id=task_id,
            stage=stage,
            attempt=cur,
            accepted=True,
            stage_done=bool(int(res[3])),
            all_done=bool(int(res[4])),
            stage_done_count=int(res[5]),
            stage_total=int(res[6]),
            done=int(res[7]),
            total=int(res[8]),
        )

    @staticmethod
    def _task_info(job_id: str, task_id: str, raw: str) -> TaskInfo:
        state, attempt, stage, rest = _parse_task(raw)
        result = json.loads(rest) if state is TaskState.DONE and rest else None
        reason = rest if state is not TaskState.DONE and rest else None
        return TaskInfo(
            job_id=job_id,
            task_id=task_id,
            stage=stage,
            state=state,
            attempt=attempt,
            result=result,
            reason=reason,
        )

    @staticmethod
    def _record(job_id: str, raw: Mapping[Any, Any], counts_raw: Mapping[Any, Any]) -> JobRecord:
        rec = {_s(k): _s(v) for k, v in raw.items()}

        def opt_float(name: str) -> float | None:
            return float(rec[name]) if rec.get(name) else None

        flat = [x for kv in counts_raw.items() for x in kv]
        return JobRecord(
            job_id=job_id,
            state=JobState(rec["state"]),
            spec=json.loads(rec.get("spec") or "{}"),
            metadata=json.loads(rec.get("metadata") or "{}"),
            created_at=float(rec.get("created_at") or 0.0),
            started_at=opt_float("started_at"),
            finished_at=opt_float("finished_at"),
            error=rec.get("error") or None,
            manifest=rec.get("manifest") or None,
            outputs=json.loads(rec.get("outputs") or "{}"),
            counts=_counts(flat),
        )
