"""Settings: the one place that reads the environment.

Every variable is prefixed ``KINOIT_``; every default is named once here with
the reason for it. Secrets are files in ``$KINOIT_SECRETS_DIR``, never
environment variables (OpenFaaS mounts them as files).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kinoit.errors import InvalidParameter
from kinoit.failpoints import VARIABLE as FAILPOINTS_VARIABLE
from kinoit.failpoints import Action, parse_failpoints

# Where the embedded store, private redis and logs live when nothing else is said.
DEFAULT_HOME = "~/.kinoit"
# OpenFaaS mounts function secrets here.
DEFAULT_SECRETS_DIR = "/var/openfaas/secrets"
# The OpenFaaS gateway's in-cluster address.
DEFAULT_GATEWAY_URL = "http://gateway.openfaas:8080"
# The seed's primary node renders one job at a time from the top of the queue.
DEFAULT_MAX_ACTIVE_JOBS = 1
# A task is dispatched at most this many times before the job fails.
DEFAULT_MAX_ATTEMPTS = 3
# A leased task not completed within this many seconds is considered lost.
DEFAULT_LEASE_SECONDS = 120.0
# Larger frames than 8K are almost certainly a mistake or an attack.
DEFAULT_MAX_DIMENSION = 8192
# Six hours of video is far beyond any real job for a single submission.
DEFAULT_MAX_DURATION_SECONDS = 6 * 3600.0
# One ffmpeg invocation on one segment or stage should never take longer.
DEFAULT_FFMPEG_TIMEOUT_SECONDS = 3600.0
# Request bodies are small JSON documents; 1 MiB is generous.
DEFAULT_MAX_BODY_BYTES = 1 << 20
# A source uploaded through POST /sources (in pieces of at most the body cap): 4 GiB
# holds an hour of 1080p at 8 Mbit/s.
DEFAULT_MAX_UPLOAD_BYTES = 4 << 30
# Kubo / Cluster HTTP calls: connect fast, allow slow large transfers.
DEFAULT_HTTP_TIMEOUT_SECONDS = 60.0
# Transient upstream failures are retried this many times with backoff.
DEFAULT_HTTP_RETRIES = 3
# Tasks in flight per job: enough to keep a few workers busy, few enough that a
# task does not wait in the async queue long enough for its lease to expire.
DEFAULT_DISPATCH_WINDOW = 16
# With KINOIT_WORKERS (how many stage calls the deployment runs at once: queue-workers
# x their max in-flight), the window is this many tasks per worker: one running and
# one queued behind it, so no worker idles between a callback and the next dispatch,
# and a queued task waits about one task's time (far inside the lease).
DISPATCH_TASKS_PER_WORKER = 2
# Sweep leases, start queued jobs and deliver webhooks this often in every orchestrate
# process, so nothing waits for the cron-connector's once-a-minute tick (0 disables).
DEFAULT_TICK_SECONDS = 2.0
# A source longer than this is split by several tasks, one per range of about this
# many seconds of whole segments, each decoding from the keyframe before its range
# (docs/benchmarks.md, "Scaling projection"); 0 splits every source in one task.
DEFAULT_SPLIT_RANGE_SECONDS = 60.0
# A source the direct transcode can seek exactly (MP4/MOV or Matroska, constant rate,
# or variable rate from timestamp 0: kinoit.media.direct_vfr) is transcoded from the
# source itself, one task per range of about this many seconds of whole segments: one
# decode per range gives every rung, the reference signatures and the thumbnails
# (docs/benchmarks.md, "Pipeline cost"); 0 keeps the split into segments and the
# per-segment transcode for every source.
DEFAULT_TRANSCODE_RANGE_SECONDS = 6.0


def _env_int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidParameter(name, f"expected an integer, got {raw!r}") from None
    if value < minimum:
        raise InvalidParameter(name, f"must be >= {minimum}, got {value}")
    return value


def _env_float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidParameter(name, f"expected a number, got {raw!r}") from None
    if not value >= minimum:  # also rejects NaN
        raise InvalidParameter(name, f"must be >= {minimum}, got {raw}")
    return value


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise InvalidParameter(name, f"expected true/false, got {raw!r}")


def _env_str(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    return raw.strip() or None if raw is not None else None


def _env_path(env: Mapping[str, str], name: str) -> Path | None:
    raw = _env_str(env, name)
    return Path(raw).expanduser() if raw else None


@dataclass(frozen=True)
class Settings:
    """Every configurable value of kinoit, immutable once built."""

    home: Path
    secrets_dir: Path
    redis_url: str | None = None
    ipfs_api: str | None = None
    cluster_api: str | None = None
    gateway_url: str = DEFAULT_GATEWAY_URL
    public_url: str | None = None
    max_active_jobs: int = DEFAULT_MAX_ACTIVE_JOBS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    max_dimension: int = DEFAULT_MAX_DIMENSION
    max_duration_seconds: float = DEFAULT_MAX_DURATION_SECONDS
    ffmpeg_timeout_seconds: float = DEFAULT_FFMPEG_TIMEOUT_SECONDS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    http_timeout_seconds: float = DEFAULT_HTTP_TIMEOUT_SECONDS
    http_retries: int = DEFAULT_HTTP_RETRIES
    allow_private_callbacks: bool = False
    dispatch_window: int = DEFAULT_DISPATCH_WINDOW
    # True when KINOIT_DISPATCH_WINDOW was given (a `kinoit run` then keeps it as it is)
    dispatch_window_set: bool = False
    # stage calls the deployment runs at once (0: not configured)
    workers: int = 0
    tick_seconds: float = DEFAULT_TICK_SECONDS
    split_range_seconds: float = DEFAULT_SPLIT_RANGE_SECONDS
    transcode_range_seconds: float = DEFAULT_TRANSCODE_RANGE_SECONDS
    # None: the functions/ folder of the checkout kinoit is installed from.
    functions_dir: Path | None = None
    # None: an owner-only folder in the system temp dir (kinoit.stages.scratch).
    scratch_dir: Path | None = None
    # Armed only by test harnesses (kinoit.failpoints); empty in production.
    failpoints: Mapping[str, Action] = field(default_factory=dict)

    @property
    def store_dir(self) -> Path:
        """Root of the embedded blockstore."""
        return self.home / "store"

    def secret(self, name: str) -> str | None:
        """Read a secret file (stripped), or None when it does not exist."""
        path = self.secrets_dir / name
        try:
            return path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None


def default_settings() -> Settings:
    """Every default, reading no environment: what a library call that is given no
    settings uses (the media functions; the stages and the CLI pass theirs)."""
    return load_settings({})


def default_dispatch_window(workers: int) -> int:
    """The dispatch window when KINOIT_DISPATCH_WINDOW is not set: what the configured
    workers can run (:data:`DISPATCH_TASKS_PER_WORKER` each), else the fixed default."""
    return DISPATCH_TASKS_PER_WORKER * workers if workers else DEFAULT_DISPATCH_WINDOW


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from ``env`` (default: the process environment)."""
    env = os.environ if env is None else env
    home = Path(env.get("KINOIT_HOME") or DEFAULT_HOME).expanduser()
    workers = _env_int(env, "KINOIT_WORKERS", 0, 0)
    return Settings(
        home=home,
        secrets_dir=Path(env.get("KINOIT_SECRETS_DIR") or DEFAULT_SECRETS_DIR).expanduser(),
        redis_url=_env_str(env, "KINOIT_REDIS_URL"),
        ipfs_api=_env_str(env, "KINOIT_IPFS_API"),
        cluster_api=_env_str(env, "KINOIT_CLUSTER_API"),
        gateway_url=_env_str(env, "KINOIT_GATEWAY_URL") or DEFAULT_GATEWAY_URL,
        public_url=_env_str(env, "KINOIT_PUBLIC_URL"),
        max_active_jobs=_env_int(env, "KINOIT_MAX_ACTIVE_JOBS", DEFAULT_MAX_ACTIVE_JOBS, 1),
        max_attempts=_env_int(env, "KINOIT_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, 1),
        lease_seconds=_env_float(env, "KINOIT_LEASE_SECONDS", DEFAULT_LEASE_SECONDS, 0.1),
        max_dimension=_env_int(env, "KINOIT_MAX_DIMENSION", DEFAULT_MAX_DIMENSION, 16),
        max_duration_seconds=_env_float(
            env, "KINOIT_MAX_DURATION_SECONDS", DEFAULT_MAX_DURATION_SECONDS, 0.1
        ),
        ffmpeg_timeout_seconds=_env_float(
            env, "KINOIT_FFMPEG_TIMEOUT_SECONDS", DEFAULT_FFMPEG_TIMEOUT_SECONDS, 1.0
        ),
        max_body_bytes=_env_int(env, "KINOIT_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, 1024),
        max_upload_bytes=_env_int(env, "KINOIT_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES, 1),
        http_timeout_seconds=_env_float(
            env, "KINOIT_HTTP_TIMEOUT_SECONDS", DEFAULT_HTTP_TIMEOUT_SECONDS, 0.1
        ),
        http_retries=_env_int(env, "KINOIT_HTTP_RETRIES", DEFAULT_HTTP_RETRIES, 0),
        allow_private_callbacks=_env_bool(env, "KINOIT_ALLOW_PRIVATE_CALLBACKS", False),
        dispatch_window=_env_int(
            env, "KINOIT_DISPATCH_WINDOW", default_dispatch_window(workers), 1
        ),
        dispatch_window_set="KINOIT_DISPATCH_WINDOW" in env,
        workers=workers,
        tick_seconds=_env_float(env, "KINOIT_TICK_SECONDS", DEFAULT_TICK_SECONDS, 0.0),
        split_range_seconds=_env_float(
            env, "KINOIT_SPLIT_RANGE_SECONDS", DEFAULT_SPLIT_RANGE_SECONDS, 0.0
        ),
        transcode_range_seconds=_env_float(
            env, "KINOIT_TRANSCODE_RANGE_SECONDS", DEFAULT_TRANSCODE_RANGE_SECONDS, 0.0
        ),
        functions_dir=_env_path(env, "KINOIT_FUNCTIONS_DIR"),
        scratch_dir=_env_path(env, "KINOIT_SCRATCH_DIR"),
        failpoints=parse_failpoints(env.get(FAILPOINTS_VARIABLE, "")),
    )
