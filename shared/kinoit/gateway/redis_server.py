"""A private redis-server under ``$KINOIT_HOME`` for the embedded default.

Every kinoit process pointed at the same home shares it: the first one starts it
and records its URL; the others find it answering there and reuse it. Only the
process that started it stops it.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from kinoit.errors import StateUnavailable

# How long a fresh redis-server may take to accept connections.
START_TIMEOUT_SECONDS = 15.0


@dataclass
class PrivateRedis:
    """A redis URL and, when this process started the server, its process."""

    url: str
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        """Stop the server if this process started it."""
        if self.process is None:
            return
        with contextlib.suppress(redis.RedisError):
            redis.Redis.from_url(self.url).shutdown(nosave=True)
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
            return PrivateRedis(url)
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
    return PrivateRedis(url, process)
