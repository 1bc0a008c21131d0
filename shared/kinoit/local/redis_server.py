"""A private redis-server under ``$KINOIT_HOME`` for the embedded default.

Every kinoit process pointed at the same home shares it: the first one starts it
and records its URL; the others find it answering there and reuse it. Each
registers as a user; the last one to stop shuts it down.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from kinoit.errors import StateUnavailable
from kinoit.stages.scratch import pid_alive

# How long a fresh redis-server may take to accept connections.
START_TIMEOUT_SECONDS = 15.0


# Set of "<pid>" of the processes using the private redis; the last one out stops it.
USERS_KEY = "kinoit:private-redis:users"


@dataclass
class PrivateRedis:
    """A redis URL shared by every kinoit process of one KINOIT_HOME.

    :func:`ensure_private_redis` registers the calling process as a user;
    :meth:`stop` unregisters it and shuts the server down only when no live user
    is left, so a `kinoit run` that ends never pulls Redis from under a
    `kinoit dev` (or another run) on the same home.
    """

    url: str
    process: subprocess.Popen[bytes] | None = None

    def register(self) -> None:
        """Count this process as a user."""
        redis.Redis.from_url(self.url).sadd(USERS_KEY, str(os.getpid()))

    def live_users(self, client: redis.Redis) -> list[int]:
        """Registered processes still running (dead ones are dropped)."""
        alive = []
        for raw in client.smembers(USERS_KEY):
            pid = int(raw)
            if pid_alive(pid):
                alive.append(pid)
            else:
                client.srem(USERS_KEY, raw)
        return alive

    def stop(self) -> None:
        """Unregister; shut the server down if no live user remains."""
        client = redis.Redis.from_url(self.url, socket_timeout=5)
        try:
            client.srem(USERS_KEY, str(os.getpid()))
            if self.live_users(client):
                self.process = None  # others still use it (it outlives us if ours)
                return
            client.shutdown(nosave=True)
        except redis.RedisError:
            pass  # already gone, or shutting down
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_private_redis(home: Path) -> PrivateRedis:
    """Reuse the redis-server of ``home`` when it runs, otherwise start one."""
    workdir = home / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    url_file = workdir / "url"
    if url_file.exists():
        url = url_file.read_text().strip()
        if url and _answers(url):
            shared = PrivateRedis(url)
            shared.register()
            return shared
    binary = shutil.which("redis-server")
    if binary is None:
        raise StateUnavailable("redis-server is not installed and KINOIT_REDIS_URL is not set")
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    log = (workdir / "redis.log").open("ab")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(workdir),
            "--appendonly",
            "yes",
            "--save",
            "",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not _answers(url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise StateUnavailable(f"private redis-server did not start; see {workdir}/redis.log")
        time.sleep(0.05)
    url_file.write_text(url + "\n")
    started = PrivateRedis(url, process)
    started.register()
    return started
