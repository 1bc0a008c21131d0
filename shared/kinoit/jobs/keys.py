"""Redis key templates of the job engine, one prefix ``kinoit:``.

Every key the engine, the result cache and the webhook queue write is named
here, so an operator can find (or flush) everything kinoit owns with
``SCAN MATCH kinoit:*``. Templates take ``job_id`` (a ULID, no colons).
"""

from __future__ import annotations

PREFIX = "kinoit:"

# --- jobs -------------------------------------------------------------------
# Hash: the job record (state, spec JSON, timings, outputs, manifest, error).
JOB_KEY = PREFIX + "job:{job_id}"
# Hash: per-stage counters, fields "<stage>:total|done|failed|leased|retrying|retries"
# and the same under the pseudo-stage "*" for the whole job.
JOB_COUNTS_KEY = PREFIX + "job:{job_id}:counts"
# Hash: task_id -> compact state "<state-letter><attempt>|<stage>|<result or reason>".
JOB_TASKS_KEY = PREFIX + "job:{job_id}:tasks"
# Hash: task_id -> payload JSON (only for tasks with a non-empty payload).
JOB_PAYLOADS_KEY = PREFIX + "job:{job_id}:payloads"
# List: task ids never dispatched yet, in the order they were added.
JOB_PENDING_KEY = PREFIX + "job:{job_id}:pending"
# Sorted set: leased task_id -> lease deadline (unix seconds).
JOB_LEASES_KEY = PREFIX + "job:{job_id}:leases"
# Sorted set: task_id waiting for a retry -> time it becomes due (unix seconds).
JOB_RETRIES_KEY = PREFIX + "job:{job_id}:retries"
# Stream: every state change of the job, for `kinoit watch` and the webhook throttler
# (a completed job keeps only its last EngineConfig.finished_events entries).
JOB_EVENTS_KEY = PREFIX + "job:{job_id}:events"

# Sorted set: every job id -> creation time in ms (newest-first listing).
JOBS_ALL_KEY = PREFIX + "jobs"
# List: queued job ids, oldest first (the FIFO).
JOBS_QUEUE_KEY = PREFIX + "jobs:queued"
# Set: running job ids (at most max_active_jobs members).
JOBS_RUNNING_KEY = PREFIX + "jobs:running"
# Hash: cumulative counters for /metrics ("jobs:<state>", "tasks:<event>").
STATS_KEY = PREFIX + "stats"

# --- content-addressed result cache -----------------------------------------
# String: result JSON of (stage, input CID, params), keyed by their sha256.
CACHE_KEY = PREFIX + "cache:{digest}"

# --- webhooks ---------------------------------------------------------------
# Hash: one outgoing webhook (url, body, type, attempts, last error).
WEBHOOK_MSG_KEY = PREFIX + "webhook:{msg_id}"
# Sorted set: msg_id -> time the next delivery attempt is due.
WEBHOOK_DUE_KEY = PREFIX + "webhooks:due"
# List: ids of webhooks given up after the last attempt (capped).
WEBHOOK_DEAD_KEY = PREFIX + "webhooks:dead"
# Hash: per-job progress throttle state (last fraction, last time).
WEBHOOK_PROGRESS_KEY = PREFIX + "job:{job_id}:progress"


def job_key(job_id: str) -> str:
    """Key of the job record hash."""
    return JOB_KEY.format(job_id=job_id)


def job_keys(job_id: str) -> list[str]:
    """Every per-job key, in the order the Lua scripts expect them (KEYS[1..8])."""
    return [
        JOB_KEY.format(job_id=job_id),
        JOB_COUNTS_KEY.format(job_id=job_id),
        JOB_TASKS_KEY.format(job_id=job_id),
        JOB_PAYLOADS_KEY.format(job_id=job_id),
        JOB_PENDING_KEY.format(job_id=job_id),
        JOB_LEASES_KEY.format(job_id=job_id),
        JOB_RETRIES_KEY.format(job_id=job_id),
        JOB_EVENTS_KEY.format(job_id=job_id),
    ]


def events_key(job_id: str) -> str:
    """Key of the job's progress stream."""
    return JOB_EVENTS_KEY.format(job_id=job_id)
