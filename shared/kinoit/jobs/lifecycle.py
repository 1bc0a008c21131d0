"""Job-level transitions: a job enters the FIFO, starts, completes, fails or is
cancelled, and product events go to its stream. Each multi-key transition is one
Lua script (:mod:`kinoit.jobs.scripts`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import redis

from kinoit.errors import Conflict, NotFound
from kinoit.jobs import keys
from kinoit.jobs.connection import translate_redis_errors
from kinoit.jobs.decode import decode_reply, encode_json, text
from kinoit.jobs.ids import new_job_id
from kinoit.jobs.models import CancelReport, JobRecord, TaskInfo
from kinoit.jobs.reader import JobReader
from kinoit.jobs.states import JobState, TaskState

# The per-job key templates, for the scripts that visit many jobs (sweep, promote).
JOB_KEY_TEMPLATES = json.dumps(keys.job_key_templates(), separators=(",", ":"))


class JobLifecycle(JobReader):
    """The job transitions of :class:`~kinoit.jobs.engine.JobEngine`."""

    SCRIPTS: ClassVar[tuple[str, ...]] = ("stop", "finish", "promote")

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
            "spec": encode_json(dict(spec), "spec"),
            "metadata": encode_json(dict(metadata or {}), "metadata"),
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
    def promote(self, now: float | None = None) -> list[str]:
        """Move the oldest queued jobs to running while fewer than max_active_jobs run.

        Atomic: concurrent callers never start more than the limit. Returns the
        ids of the jobs started by this call (the caller starts their first stage).
        """
        now = self.clock() if now is None else now
        res = self.script["promote"](
            keys=[keys.JOBS_QUEUE_KEY, keys.JOBS_RUNNING_KEY],
            args=[
                self.config.max_active_jobs,
                repr(now),
                self.config.events_maxlen,
                JOB_KEY_TEMPLATES,
            ],
        )
        return [text(x) for x in res]

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
        res = self.script["finish"](
            keys=[
                *keys.job_keys(job_id),
                keys.JOBS_RUNNING_KEY,
                keys.STATS_KEY,
                keys.JOBS_ENDING_KEY,
            ],
            args=[
                repr(now),
                manifest or "",
                encode_json(dict(outputs), "outputs") if outputs is not None else "",
                self.config.events_maxlen,
                job_id,
                self.config.retention_seconds,
                self.config.finished_events,
            ],
        )
        self._check_stop_status(job_id, decode_reply(res), "complete")
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

    @translate_redis_errors
    def emit(self, job_id: str, type: str, **fields: str | int | float) -> str:
        """Append a product event (e.g. ``task.verified``, ``job.merge``) to the job stream."""
        return self._event(job_id, type, {k: str(v) for k, v in fields.items()})

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
        return "" if pipe is not None else text(res)

    def _stop_job(
        self, job_id: str, state: JobState, reason: str, now: float | None
    ) -> CancelReport:
        now = self.clock() if now is None else now
        res = self.script["stop"](
            keys=keys.job_stop_keys(job_id),
            args=[
                state.value,
                reason[:2000],
                repr(now),
                self.config.events_maxlen,
                job_id,
                self.config.retention_seconds,
            ],
        )
        reply = decode_reply(res)
        self._check_stop_status(job_id, reply, state.value)
        released = [
            TaskInfo(
                job_id=job_id,
                task_id=str(task["task"]),
                stage=str(task["stage"]),
                state=TaskState.PENDING,
                attempt=int(task["attempt"]),
            )
            for task in reply["released"] or []
        ]
        return CancelReport(
            job_id=job_id, previous_state=JobState(reply["previous_state"]), released=released
        )

    @staticmethod
    def _check_stop_status(job_id: str, reply: Mapping[str, Any], verb: str) -> None:
        if reply["status"] == "missing":
            raise NotFound(f"no job {job_id!r}")
        if reply["status"] == "conflict":
            raise Conflict(f"cannot {verb} job {job_id}: it is {reply['state']}")
