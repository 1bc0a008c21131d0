"""Plain records the job engine returns: no Redis, no I/O, JSON-friendly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kinoit.jobs.states import JobState, TaskState


@dataclass(frozen=True)
class StageCounts:
    """Task counters of one stage (or of the whole job under the name ``"*"``).

    ``retrying`` is a gauge: tasks not yet done whose current attempt is > 1.
    ``retries`` is cumulative: how many re-dispatches the stage needed.
    """

    total: int = 0
    done: int = 0
    failed: int = 0
    leased: int = 0
    retrying: int = 0
    retries: int = 0

    @property
    def pending(self) -> int:
        """Tasks neither done, failed nor leased."""
        return max(0, self.total - self.done - self.failed - self.leased)

    def to_dict(self) -> dict[str, int]:
        """JSON view used by ``GET /jobs/{id}``."""
        return {
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "retrying": self.retrying,
            "leased": self.leased,
            "pending": self.pending,
            "retries": self.retries,
        }


@dataclass(frozen=True)
class JobRecord:
    """A job as stored in Redis.

    Timings are unix seconds (floats), ``None`` until reached. ``outputs`` is
    whatever the product stored with :meth:`JobEngine.complete_job` (e.g. the MP4
    and HLS CIDs).
    """

    job_id: str
    state: JobState
    spec: Mapping[str, Any]
    metadata: Mapping[str, Any]
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    manifest: str | None = None
    outputs: Mapping[str, Any] = field(default_factory=dict)
    counts: Mapping[str, StageCounts] = field(default_factory=dict)

    @property
    def total(self) -> StageCounts:
        """Counters over every stage."""
        return self.counts.get("*", StageCounts())

    def to_dict(self) -> dict[str, Any]:
        """JSON view used by ``GET /jobs/{id}`` (stages exclude the ``"*"`` total)."""
        return {
            "job_id": self.job_id,
            "state": self.state.value,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "manifest": self.manifest,
            "outputs": dict(self.outputs),
            "metadata": dict(self.metadata),
            "stages": {k: v.to_dict() for k, v in self.counts.items() if k != "*"},
            "tasks": self.total.to_dict(),
        }


@dataclass(frozen=True)
class JobPage:
    """One page of :meth:`JobEngine.list_jobs`; ``next_cursor`` is None on the last page."""

    jobs: list[JobRecord]
    next_cursor: int | None


@dataclass(frozen=True)
class TaskInfo:
    """One task's current state (``result`` once done, ``reason`` once failed)."""

    job_id: str
    task_id: str
    stage: str
    state: TaskState
    attempt: int
    result: Mapping[str, Any] | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Dispatch:
    """A task the caller must (re-)send now: it is already leased for ``attempt``.

    ``payload`` is what was given to :meth:`JobEngine.add_tasks` (``{}`` when
    none was stored; derive it from ``task_id`` then). ``cached``: when the payload
    names a result-cache digest under ``"cache"`` and the lease came from
    :meth:`JobEngine.complete_step`, that entry's raw value (``""`` when absent),
    read in the same round trip; otherwise None (not looked up).
    """

    job_id: str
    task_id: str
    stage: str
    attempt: int
    lease_deadline: float
    payload: Mapping[str, Any] = field(default_factory=dict)
    cached: str | None = None


@dataclass(frozen=True)
class Completion:
    """Outcome of :meth:`JobEngine.complete`.

    - ``accepted``: this call moved the task to done (and counted it).
    - ``duplicate``: the task was already done; nothing changed.
    - ``ignored``: refused without change (``reason`` says why: unknown task,
      job not running, attempt from the future, task failed for good...).
    - ``stage_done``: this completion finished its stage (true exactly once per stage).
    - ``all_done``: this completion finished every task the job has so far
      (true exactly once per task set: trigger merge on it).
    - ``done``/``total`` (whole job) and ``stage_done_count``/``stage_total``:
      counters right after this completion (for progress); 0 when not accepted.
    """

    job_id: str
    task_id: str
    stage: str
    attempt: int
    accepted: bool
    duplicate: bool = False
    ignored: bool = False
    reason: str | None = None
    stage_done: bool = False
    all_done: bool = False
    done: int = 0
    total: int = 0
    stage_done_count: int = 0
    stage_total: int = 0


@dataclass(frozen=True)
class FailOutcome:
    """Outcome of :meth:`JobEngine.fail`.

    - ``retry_at`` set: the task is pending again for ``next_attempt``; a
      :meth:`JobEngine.sweep` at or after that time re-dispatches it.
    - ``job_failed``: attempts are exhausted; the job failed (``reason``).
    - ``ignored``: a stale report (older attempt, task already done, job over).
    """

    job_id: str
    task_id: str
    attempt: int
    ignored: bool = False
    next_attempt: int | None = None
    retry_at: float | None = None
    job_failed: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class SweepReport:
    """What one :meth:`JobEngine.sweep` did.

    ``dispatches`` are tasks now leased again (attempt already incremented)
    that the caller must re-send; ``expired`` counts leases that ran out;
    ``failed_jobs`` lists jobs failed because a task ran out of attempts.
    """

    dispatches: list[Dispatch]
    expired: int = 0
    failed_jobs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CancelReport:
    """Outcome of :meth:`JobEngine.cancel`.

    ``released`` are the tasks that were leased (in flight) when the job was
    cancelled; their late callbacks will be ignored. ``previous_state`` is the
    state before cancelling. Use :meth:`JobEngine.iter_results` for the CIDs
    of finished tasks to unpin.
    """

    job_id: str
    previous_state: JobState
    released: list[TaskInfo]


@dataclass(frozen=True)
class Event:
    """One entry of a job's progress stream.

    ``type`` is e.g. ``job.accepted``, ``job.started``, ``task.leased``,
    ``task.done``, ``task.failed``, ``task.retry``, ``task.expired``,
    ``job.completed``, ``job.failed``, ``job.cancelled`` or any type the
    product emits itself (``task.verified``, ``job.merge``...).
    """

    id: str
    type: str
    fields: Mapping[str, str]

    @property
    def timestamp(self) -> float:
        """Unix seconds, from the stream entry id."""
        return int(self.id.split("-", 1)[0]) / 1000.0


@dataclass(frozen=True)
class EngineGauges:
    """Point-in-time numbers for /metrics, computable by any replica.

    ``jobs`` maps a job state to a count: queued and running are current,
    completed/failed/cancelled are cumulative since the Redis data was created.
    ``tasks`` maps (stage, state) to the count over running jobs, with state in
    total/done/failed/leased/pending/retrying. ``task_events`` are cumulative
    counters (duplicate, retried, expired, failed, rerun, and accepted_jobs).
    """

    jobs: Mapping[str, int]
    queue_depth: int
    running: int
    leases: int
    retries_waiting: int
    tasks: Mapping[tuple[str, str], int]
    task_events: Mapping[str, int]
