"""A private redis-server under ``$KINOIT_HOME`` for the embedded default.

Every kinoit process pointed at the same home shares it: the first one starts it
and records its URL (and pid); the others find it answering there and reuse it.
Starting happens under a lock on the home and always on the recorded port, so a
home never has two servers over one AOF directory, and a restarted server (AOF
reloaded) is where every client already looks. ``kinoit dev`` supervises it
(:meth:`PrivateRedis.revive`). Each process registers as a user; the last one to
stop shuts it down.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from kinoit.errors import StateUnavailable
from kinoit.stages.scratch import pid_alive

# How long a fresh redis-server may take to accept connections (loading its AOF).
START_TIMEOUT_SECONDS = 15.0
# Files in $KINOIT_HOME/redis: the server's URL, its pid, the lock of the home.
URL_FILE = "url"
PID_FILE = "pid"
LOCK_FILE = "lock"


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
    # revive()'s liveness ping: one kept connection (a fresh client every half second
    # cost a connect and a handshake each time)
    _ping: redis.Redis | None = field(default=None, repr=False, compare=False)
    _ping_url: str = field(default="", repr=False, compare=False)

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
        if self._ping is not None:
            self._ping.close()
            self._ping = None
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

    def revive(self, home: Path) -> bool:
        """Start the home's server again if it stopped answering: on the same port,
        its AOF reloaded, under the home's lock (so a CLI command at the same moment
        cannot start a second one). True when this call started it."""
        if self._answers():
            return False
        if self.process is not None:
            self.process.poll()  # reap it if it died
        fresh = ensure_private_redis(home)
        if fresh.process is None:  # someone else had started it meanwhile
            return False
        self.url, self.process = fresh.url, fresh.process
        return True

    def _answers(self) -> bool:
        """Whether the server at ``url`` answers a PING, on the kept connection."""
        if self._ping is None or self._ping_url != self.url:
            if self._ping is not None:
                self._ping.close()
            self._ping, self._ping_url = redis.Redis.from_url(self.url, socket_timeout=1), self.url
        try:
            return bool(self._ping.ping())
        except redis.RedisError:
            self._ping.close()  # reconnect on the next call
            return False


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _home_lock(workdir: Path) -> Iterator[None]:
    """One process at a time decides whether this home's server runs (and starts it)."""
    fd = os.open(workdir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def recorded_url(home: Path) -> str | None:
    """The URL this home's private redis-server was started on (None before the first)."""
    url_file = home / "redis" / URL_FILE
    try:
        return url_file.read_text().strip() or None
    except FileNotFoundError:
        return None


def _wait_answering(url: str, pid: int | None, deadline: float) -> bool:
    """Wait until ``url`` answers while ``pid`` (a server loading its AOF) lives."""
    while time.monotonic() < deadline:
        if _answers(url):
            return True
        if pid is None or not pid_alive(pid):
            return False
        time.sleep(0.05)
    return False


def ensure_private_redis(home: Path) -> PrivateRedis:
    """This home's redis-server: reused when it runs, else started — always on the port
    recorded for the home (so every client's URL stays right and the AOF in the
    home is reloaded), and under a lock, so there is never a second server on the
    same AOF directory."""
    workdir = home / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    with _home_lock(workdir):
        url = recorded_url(home)
        pid = _recorded_pid(workdir)
        if url and _wait_answering(url, pid, time.monotonic() + START_TIMEOUT_SECONDS):
            shared = PrivateRedis(url)
            shared.register()
            return shared
        started = _start(workdir, url)
    started.register()
    return started


def _recorded_pid(workdir: Path) -> int | None:
    try:
        return int((workdir / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _start(workdir: Path, url: str | None) -> PrivateRedis:
    """Start redis-server in ``workdir`` on the port of ``url`` (a free one the first
    time) and record its URL and pid. Call with the home lock held."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise StateUnavailable("redis-server is not installed and KINOIT_REDIS_URL is not set")
    port = int(urllib.parse.urlsplit(url).port or 0) if url else _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    log = (workdir / "redis.log").open("ab")
    process = subprocess.Popen(
        [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
            "--appendonly", "yes", "--save", "",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    (workdir / PID_FILE).write_text(f"{process.pid}\n")
    (workdir / URL_FILE).write_text(url + "\n")
    if not _wait_answering(url, process.pid, time.monotonic() + START_TIMEOUT_SECONDS):
        process.kill()
        process.wait(timeout=5)
        raise StateUnavailable(
            f"private redis-server did not start on port {port} (in use?); see {workdir}/redis.log"
        )
    return PrivateRedis(url, process)
