"""The job engine: Redis-backed jobs, tasks, leases, retries, progress and reuse.

Knows nothing about ffmpeg or HTTP routes. Typical use by orchestrate::

    engine = JobEngine(redis_client, EngineConfig.from_settings(settings))
    job_id = engine.create_job(spec)                  # queued, FIFO
    for started in engine.promote():                  # <= max_active_jobs running
        engine.add_tasks(started, "split", [("split", {"source": cid})])
        for d in engine.lease_next(started, 1):       # leased -> dispatch
            post_async(d, callback_token(secret, d.job_id, d.task_id, d.attempt))
    done = engine.complete(job_id, task_id, attempt, result)   # callback
    if done.all_done: ...                             # exactly once -> next phase / merge
    for d in engine.sweep().dispatches: ...           # periodic tick: expired leases
"""

from kinoit.jobs.cache import ResultCache, cache_digest, canonical_json
from kinoit.jobs.engine import EngineConfig, JobEngine, connect, translate_redis_errors
from kinoit.jobs.ids import is_job_id, job_id_time, new_job_id
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
from kinoit.jobs.tokens import callback_secret, callback_token, verify_callback_token

__all__ = [
    "CancelReport",
    "Completion",
    "Dispatch",
    "EngineConfig",
    "EngineGauges",
    "Event",
    "FailOutcome",
    "JobEngine",
    "JobPage",
    "JobRecord",
    "JobState",
    "ResultCache",
    "StageCounts",
    "SweepReport",
    "TaskInfo",
    "TaskState",
    "cache_digest",
    "callback_secret",
    "callback_token",
    "canonical_json",
    "check_stage",
    "check_task_id",
    "connect",
    "is_job_id",
    "job_id_time",
    "new_job_id",
    "translate_redis_errors",
    "verify_callback_token",
]
