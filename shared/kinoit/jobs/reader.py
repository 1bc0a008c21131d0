"""Reading the engine's state: job records, listings, tasks, events and gauges.

Plain reads (no script); :class:`~kinoit.jobs.engine.JobEngine` adds the
transitions on top.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, cast

import redis

from kinoit.errors import InvalidParameter, NotFound
from kinoit.jobs import keys, scripts
from kinoit.jobs.config import EngineConfig
from kinoit.jobs.connection import translate_redis_errors
from kinoit.jobs.decode import decode_counts, job_record, task_info, text
from kinoit.jobs.ids import is_job_id
from kinoit.jobs.models import EngineGauges, Event, JobPage, JobRecord, TaskInfo
from kinoit.jobs.states import JobState, TaskState


class JobReader:
    """Reads of jobs, tasks and progress in one Redis (see :class:`JobEngine`).

    Subclasses name the Lua scripts they run in ``SCRIPTS``; each is registered
    once here and called as ``self.script[name]``.
    """

    SCRIPTS: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        connection: redis.Redis,
        config: EngineConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = connection
        self.config = config or EngineConfig()
        self.clock = clock
        names = {name for cls in type(self).__mro__ for name in vars(cls).get("SCRIPTS", ())}
        self.script: dict[str, Any] = {
            name: connection.register_script(scripts.source(name)) for name in sorted(names)
        }

    @translate_redis_errors
    def get_job(self, job_id: str) -> JobRecord:
        """The job record with its per-stage counts; NotFound for an unknown id."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.job_key(job_id))
        pipe.hgetall(keys.JOB_COUNTS_KEY.format(job_id=job_id))
        raw, counts = pipe.execute()
        if not raw or not is_job_id(job_id):
            raise NotFound(f"no job {job_id!r}")
        return job_record(job_id, raw, counts)

    @translate_redis_errors
    def list_jobs(self, limit: int = 50, cursor: int = 0) -> JobPage:
        """Jobs newest first; pass ``next_cursor`` of one page to get the next."""
        if not 1 <= limit <= 1000:
            raise InvalidParameter("limit", f"must be between 1 and 1000, got {limit}")
        if cursor < 0:
            raise InvalidParameter("cursor", f"must be >= 0, got {cursor}")
        ids = [text(x) for x in self.redis.zrevrange(keys.JOBS_ALL_KEY, cursor, cursor + limit)]
        more = len(ids) > limit
        ids = ids[:limit]
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(keys.job_key(job_id))
            pipe.hgetall(keys.JOB_COUNTS_KEY.format(job_id=job_id))
        res = pipe.execute()
        jobs = [
            job_record(job_id, res[2 * i], res[2 * i + 1])
            for i, job_id in enumerate(ids)
            if res[2 * i]
        ]
        return JobPage(jobs=jobs, next_cursor=cursor + limit if more else None)

    @translate_redis_errors
    def running_jobs(self) -> list[str]:
        """The ids of the running jobs (in no particular order)."""
        return [text(x) for x in self.redis.smembers(keys.JOBS_RUNNING_KEY)]

    @translate_redis_errors
    def task(self, job_id: str, task_id: str) -> TaskInfo:
        """One task's state; NotFound when the job or task is unknown."""
        raw = self.redis.hget(keys.JOB_TASKS_KEY.format(job_id=job_id), task_id)
        if raw is None:
            raise NotFound(f"no task {task_id!r} in job {job_id!r}")
        return task_info(job_id, task_id, text(raw))

    @translate_redis_errors
    def tasks(self, job_id: str, task_ids: list[str]) -> list[TaskInfo | None]:
        """The state of each of ``task_ids`` (None for an unknown one), in one round trip."""
        if not task_ids:
            return []
        raws = self.redis.hmget(keys.JOB_TASKS_KEY.format(job_id=job_id), task_ids)
        return [
            None if raw is None else task_info(job_id, task_id, text(raw))
            for task_id, raw in zip(task_ids, raws, strict=True)
        ]

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
                info = task_info(job_id, text(task_id), text(raw))
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
        ids = [text(x) for x in self.redis.zrange(keys.JOB_LEASES_KEY.format(job_id=job_id), 0, -1)]
        if not ids:
            return []
        raws = self.redis.hmget(keys.JOB_TASKS_KEY.format(job_id=job_id), ids)
        return [
            task_info(job_id, task_id, text(raw))
            for task_id, raw in zip(ids, raws, strict=True)
            if raw is not None
        ]

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
                decoded = {text(k): text(v) for k, v in fields.items()}
                events.append(
                    Event(id=text(entry_id), type=decoded.pop("type", ""), fields=decoded)
                )
        return events

    @translate_redis_errors
    def gauges(self) -> EngineGauges:
        """Numbers for /metrics: jobs by state, tasks by stage/state, queue depth, leases."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.llen(keys.JOBS_QUEUE_KEY)
        pipe.smembers(keys.JOBS_RUNNING_KEY)
        pipe.hgetall(keys.STATS_KEY)
        queued, running_raw, stats_raw = pipe.execute()
        running = sorted(text(x) for x in running_raw)
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
            for stage, c in decode_counts(flat).items():
                if stage == "*":
                    continue
                for name, value in c.to_dict().items():
                    if name != "retries":
                        tasks[(stage, name)] = tasks.get((stage, name), 0) + value
        stats = {text(k): int(text(v)) for k, v in stats_raw.items()}
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

    def _require(self, job_id: str) -> JobState:
        state = self.redis.hget(keys.job_key(job_id), "state")
        if state is None:
            raise NotFound(f"no job {job_id!r}")
        return JobState(text(state))
