"""Tunables of the job engine, each default named once with its reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kinoit.config import Settings

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
# Largest number of expired leases (and of due retries) one sweep handles per job.
DEFAULT_SWEEP_LIMIT = 1000


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
