"""The embedded default in one object: redis, secrets, gateway, workers, tick.

``DevStack`` is what ``kinoit dev`` serves in the foreground and what
``kinoit run`` starts behind a job: a private redis-server (unless
``KINOIT_REDIS_URL`` is set), generated secrets, the gateway on a threaded HTTP
server, N RQ worker processes (restarted when they die) and a thread that POSTs
orchestrate's ``/tick`` every second, as the cron-connector would.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import redis
import requests
from rq import Queue
from werkzeug.serving import BaseWSGIServer, make_server

from kinoit.config import Settings, load_settings
from kinoit.errors import InvalidParameter, KinoitError
from kinoit.local.app import create_gateway_app
from kinoit.local.functions import find_functions_dir
from kinoit.local.pool import STOP_GRACE_SECONDS, ForkedPool, can_fork, fork_pool
from kinoit.local.redis_server import PrivateRedis, ensure_private_redis
from kinoit.local.worker import ASYNC_QUEUE, VERIFY_QUEUE
from kinoit.service.client import loopback_session
from kinoit.stages.signing import STAGE_SECRET_FILE

API_TOKEN_FILE = "kinoit-api-token"
WEBHOOK_SECRET_FILE = "kinoit-webhook-secret"
# The cron-connector would call /tick about this often; locally we do it ourselves,
# until the first tick has built an orchestrate that ticks on its own.
TICK_INTERVAL_SECONDS = 1.0
# How often a dead worker pool or private redis-server is noticed and started again
# (the pool itself replaces a dead worker at once). Each look PINGs redis: every
# 0.5 s that was half of an idle stack's CPU.
SUPERVISE_INTERVAL_SECONDS = 2.0


def generate_api_token() -> str:
    """A random bearer token."""
    return secrets.token_urlsafe(32)


def generate_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def ensure_dev_secrets(settings: Settings) -> Path:
    """A secrets dir holding every secret (API token, webhook secret, stage-signing
    secret): the configured one when complete, else
    ``$KINOIT_HOME/secrets`` with missing secrets generated (existing ones copied)."""
    names = (API_TOKEN_FILE, WEBHOOK_SECRET_FILE, STAGE_SECRET_FILE)
    if all(settings.secret(name) for name in names):
        return settings.secrets_dir
    target = settings.home / "secrets"
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    generators = {
        API_TOKEN_FILE: generate_api_token,
        WEBHOOK_SECRET_FILE: generate_webhook_secret,
        STAGE_SECRET_FILE: generate_api_token,  # random URL-safe text, as the token
    }
    for name in names:
        path = target / name
        if path.exists() and path.read_text().strip():
            continue
        value = settings.secret(name) or generators[name]()
        write_private(path, value + "\n")
    return target


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read, from the first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)  # an existing file keeps its old mode otherwise
        out.write(text)


@dataclass
class DevStack:
    """Everything ``kinoit dev`` runs; a context manager that stops what it started."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    quiet: bool = True
    # KINOIT_DISPATCH_WINDOW for this stack's orchestrate (None: the setting's own).
    dispatch_window: int | None = None
    settings: Settings = field(default_factory=load_settings)
    gateway_url: str = ""
    redis_url: str = ""
    secrets_dir: Path = field(default_factory=Path)
    _redis: PrivateRedis | None = None
    _server: BaseWSGIServer | None = None
    _procs: list[subprocess.Popen[bytes] | ForkedPool] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def __enter__(self) -> DevStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start redis (if needed), the gateway, the workers and the tick; on any
        failure stop what was started."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        settings = self.settings
        if self.quiet:
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        if settings.redis_url:
            self.redis_url = settings.redis_url
        else:
            self._redis = ensure_private_redis(settings.home)
            self.redis_url = self._redis.url
        self.secrets_dir = ensure_dev_secrets(settings)
        functions_dir = find_functions_dir(settings)
        connection = redis.Redis.from_url(self.redis_url)
        queue = Queue(ASYNC_QUEUE, connection=connection)
        verify = Queue(VERIFY_QUEUE, connection=connection)
        app = create_gateway_app(functions_dir, queue, settings.max_body_bytes, verify)
        try:
            self._server = make_server(self.host, self.port, app, threaded=True)
        except (OSError, SystemExit):  # werkzeug reports a busy port by exiting
            raise InvalidParameter(
                "--port", f"cannot listen on {self.host}:{self.port} (in use?)"
            ) from None
        self.port = int(self._server.server_port)
        self.gateway_url = f"http://{self.host}:{self.port}"
        # Handlers (in this process and in the workers) read their settings from the env.
        os.environ.update(self.environment(functions_dir))
        self.settings = load_settings()
        (settings.home / "logs").mkdir(parents=True, exist_ok=True)
        if self.workers > 0:
            self._procs.append(self._spawn_workers(functions_dir))
        self._thread(self._server.serve_forever, "gateway")
        self._thread(self._supervise, "supervise")
        self._thread(self._tick, "tick")

    def environment(self, functions_dir: Path) -> dict[str, str]:
        """The KINOIT_* variables every handler of this stack sees."""
        return {
            "KINOIT_HOME": str(self.settings.home),
            "KINOIT_REDIS_URL": self.redis_url,
            "KINOIT_GATEWAY_URL": self.gateway_url,
            "KINOIT_SECRETS_DIR": str(self.secrets_dir),
            "KINOIT_FUNCTIONS_DIR": str(functions_dir),
            # Local webhook receivers are the point of dev; an explicit "false" still wins.
            "KINOIT_ALLOW_PRIVATE_CALLBACKS": os.environ.get("KINOIT_ALLOW_PRIVATE_CALLBACKS")
            or "true",
            **(
                {"KINOIT_DISPATCH_WINDOW": str(self.dispatch_window)}
                if self.dispatch_window is not None
                else {}
            ),
        }

    def api_token(self) -> str:
        """The bearer token clients of this stack must send."""
        return (self.secrets_dir / API_TOKEN_FILE).read_text().strip()

    def _thread(self, target: object, name: str) -> None:
        thread = threading.Thread(target=target, name=f"kinoit-{name}", daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _spawn_workers(self, functions_dir: Path) -> subprocess.Popen[bytes] | ForkedPool:
        """The worker pool (:mod:`kinoit.local.pool`): one process that imports the
        workers' code once and forks them. Forked from this process while it runs one
        thread (the first start: what this process imported is not imported again),
        else started as a new interpreter (a restart, from the supervising thread)."""
        logs = self.settings.home / "logs"
        log = (logs / "workers.log").open("ab")
        self._logs.append(log)
        if can_fork():
            listening = [self._server.fileno()] if self._server is not None else []
            return fork_pool(
                self.redis_url, self.workers, prefix="kinoit-dev", log_dir=logs,
                functions_dir=functions_dir, log_fd=log.fileno(), close_fds=listening,
            )  # fmt: skip
        argv = [sys.executable, "-m", "kinoit.local.pool", self.redis_url]
        argv += ["--workers", str(self.workers), "--prefix", "kinoit-dev"]
        argv += ["--log-dir", str(logs), "--functions-dir", str(functions_dir)]
        argv += ["--parent", str(os.getpid())]
        return subprocess.Popen(argv, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)

    def _supervise(self) -> None:
        while not self._stop.wait(SUPERVISE_INTERVAL_SECONDS):
            for index, proc in enumerate(self._procs):  # the pool replaces its workers
                if proc.poll() is not None and not self._stop.is_set():
                    self._procs[index] = self._spawn_workers(find_functions_dir(self.settings))
            if self._redis is not None and not self._stop.is_set():
                try:
                    if self._redis.revive(self.settings.home):
                        logging.getLogger(__name__).warning(
                            "private redis-server had stopped; restarted on %s", self._redis.url
                        )
                except KinoitError as exc:  # e.g. its port taken: try again next round
                    logging.getLogger(__name__).warning("private redis-server: %s", exc)

    def _tick(self) -> None:
        url = f"{self.gateway_url}/function/orchestrate/tick"
        with loopback_session() as session:  # one kept connection, not one per tick
            while not self._stop.wait(TICK_INTERVAL_SECONDS):
                with contextlib.suppress(requests.RequestException, OSError):
                    headers = {"Authorization": f"Bearer {self.api_token()}"}
                    if session.post(url, headers=headers, timeout=30).ok and self.self_ticking:
                        return

    @property
    def self_ticking(self) -> bool:
        """Whether orchestrate, which this gateway runs in this process, ticks on its own
        (``KINOIT_TICK_SECONDS`` > 0) once a first call has built it: then the cron's
        tick would only do the same work again (docs/benchmarks.md, "Python around
        the stages")."""
        return self.settings.tick_seconds > 0

    def stop(self) -> None:
        """Stop the tick, the gateway, the workers and a private redis we started."""
        self._stop.set()
        from kinoit.service import reset_service

        reset_service()  # the in-process orchestrate stops ticking against this stack
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for proc in self._procs:
            proc.terminate()
        # A worker finishes its current call before it stops; the pool kills it after
        # its grace, and a worker dies with the pool.
        deadline = time.monotonic() + STOP_GRACE_SECONDS + 1
        for proc in self._procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._procs.clear()
        for log in self._logs:
            log.close()
        if self._redis is not None:
            self._redis.stop()
            self._redis = None
