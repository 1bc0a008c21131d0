"""Redis key templates of the job engine, one prefix ``kinoit:``.

Every key the engine, the result cache, the webhook queue, the pin holds and
the metrics write is named here, so an operator can find (or flush) everything kinoit owns with
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

# --- pins held for jobs (kinoit.service.holds) ------------------------------
# Set of the intermediate CIDs one job holds (released when the job ends).
JOB_HOLDS_KEY = PREFIX + "job:{job_id}:pins"
# Hash: job id -> UNIX time its hold on this CID expires ("0": never).
CID_HOLDERS_KEY = PREFIX + "pin:{cid}:holders"
# Sorted set: job id -> when its end began, until that end is settled (service.endings).
JOBS_ENDING_KEY = PREFIX + "jobs:ending"
# Hash per job: the end webhook's message id, an output root to let go, the failed task.
JOB_END_KEY = PREFIX + "job:{job_id}:end"

# --- metrics (kinoit.metrics) -----------------------------------------------
# Every counter of /metrics lives under this prefix (kinoit.metrics.MetricKeys).
METRICS_PREFIX = PREFIX + "metrics"


def job_key(job_id: str) -> str:
    """Key of the job record hash."""
    return JOB_KEY.format(job_id=job_id)


# The per-job keys, in the order the Lua scripts expect them (KEYS[1..8]).
PER_JOB_KEYS = (
    JOB_KEY, JOB_COUNTS_KEY, JOB_TASKS_KEY, JOB_PAYLOADS_KEY,
    JOB_PENDING_KEY, JOB_LEASES_KEY, JOB_RETRIES_KEY, JOB_EVENTS_KEY,
)  # fmt: skip


def job_keys(job_id: str) -> list[str]:
    """Every per-job key, in the order the Lua scripts expect them (KEYS[1..8])."""
    return [template.format(job_id=job_id) for template in PER_JOB_KEYS]


def job_stop_keys(job_id: str) -> list[str]:
    """The keys of the scripts that may end a job (fail, stop): the per-job keys, then
    the running set, the stats hash, the queue and the owed ends (KEYS[9..12])."""
    return [*job_keys(job_id), JOBS_RUNNING_KEY, STATS_KEY, JOBS_QUEUE_KEY, JOBS_ENDING_KEY]


def job_key_templates() -> list[list[str]]:
    """The per-job keys of :func:`job_keys` as ``[before, after]`` the job id, for the
    Lua scripts that build the keys of many jobs themselves (sweep, promote)."""
    return [list(template.split("{job_id}", 1)) for template in PER_JOB_KEYS]


def events_key(job_id: str) -> str:
    """Key of the job's progress stream."""
    return JOB_EVENTS_KEY.format(job_id=job_id)
