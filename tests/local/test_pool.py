"""The local worker pool: workers forked from one preloaded parent, replaced when they
die, stopped with it (real processes, a real redis-server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from kinoit.local.pool import STOP_GRACE_SECONDS

pytestmark = pytest.mark.redis


def _workers(url: str) -> dict[int, str]:
    from rq import Worker

    connection = redis.Redis.from_url(url)
    try:
        return {int(w.pid): str(w.name) for w in Worker.all(connection=connection)}
    finally:
        connection.close()


def _wait(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too: its parent has not reaped it yet
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


@pytest.fixture
def pool(redis_url: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kinoit.local.pool", redis_url, "--workers", "2",
         "--prefix", "test-pool", "--log-dir", str(tmp_path / "logs")],
    )  # fmt: skip
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def test_the_pool_forks_its_workers_and_replaces_one_that_dies(
    pool: subprocess.Popen[bytes], redis_url: str, tmp_path: Path
) -> None:
    _wait("two workers", lambda: len(_workers(redis_url)) == 2)
    workers = _workers(redis_url)
    assert set(workers) == _children(pool.pid)  # forked by the pool itself
    assert all(name.startswith("test-pool-") for name in workers.values())
    assert {p.name for p in (tmp_path / "logs").iterdir()} == {"worker-0.log", "worker-1.log"}

    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    _wait("a replacement", lambda: len(_children(pool.pid) - {victim}) == 2)
    fresh = _children(pool.pid) - set(workers)
    assert len(fresh) == 1 and victim not in _children(pool.pid)

    pool.send_signal(signal.SIGTERM)  # idle workers stop at once
    assert pool.wait(timeout=STOP_GRACE_SECONDS + 5) == 0
    assert not any(_alive(p) for p in {*workers, *fresh})


def test_a_worker_dies_with_a_killed_pool(pool: subprocess.Popen[bytes], redis_url: str) -> None:
    _wait("two workers", lambda: len(_children(pool.pid)) == 2)
    children = _children(pool.pid)
    pool.kill()
    pool.wait(timeout=10)
    _wait("the workers gone", lambda: not any(_alive(p) for p in children), timeout=10)


def test_the_pool_stops_when_the_process_that_started_it_dies(
    redis_url: str, tmp_path: Path
) -> None:
    starter = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys, time\n"
         f"p = subprocess.Popen([sys.executable, '-m', 'kinoit.local.pool', {redis_url!r},"
         f" '--workers', '1', '--log-dir', {str(tmp_path)!r}])\n"
         "print(p.pid, flush=True)\n"
         "time.sleep(120)\n"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert starter.stdout is not None
        pool = int(starter.stdout.readline())
        _wait("a worker", lambda: len(_children(pool)) == 1)
        worker = next(iter(_children(pool)))
        starter.kill()  # no stop(), no atexit: as a crashed `kinoit run` would end
        starter.wait(timeout=10)
        _wait("the pool gone", lambda: not _alive(pool), timeout=STOP_GRACE_SECONDS + 10)
        _wait("its worker gone", lambda: not _alive(worker), timeout=10)
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait(timeout=10)


# A `kinoit run` in one process: the stack forks its pool while it has one thread, and
# the supervisor's restart (from its thread) starts a new interpreter instead.
_STACK_SCRIPT = """
import json, os, signal, sys, time
from kinoit.config import load_settings
from kinoit.local.dev import DevStack
from kinoit.local.pool import ForkedPool

home, redis_url = sys.argv[1], sys.argv[2]
settings = load_settings({"KINOIT_HOME": home, "KINOIT_REDIS_URL": redis_url})
signal.signal(signal.SIGTERM, lambda *_: None)  # as kinoit dev installs one of its own
with DevStack(settings=settings, workers=1, port=0) as stack:
    pool = stack._procs[0]
    socket = os.fstat(stack._server.fileno()).st_ino
    print(json.dumps({
        "forked": isinstance(pool, ForkedPool), "pool": pool.pid, "socket": socket,
        "cmdline": open(f"/proc/{pool.pid}/cmdline").read() == open("/proc/self/cmdline").read(),
    }), flush=True)
    sys.stdin.readline()  # the test has looked at the pool and killed it
    deadline = time.monotonic() + 30
    while stack._procs[0] is pool and time.monotonic() < deadline:
        time.sleep(0.1)
    print(json.dumps({"restarted": type(stack._procs[0]).__name__, "pid": stack._procs[0].pid}),
          flush=True)
    sys.stdin.readline()
print(json.dumps({"stopped": True}), flush=True)
"""


def test_a_stack_forks_its_pool_from_its_one_thread_and_a_restart_starts_an_interpreter(
    redis_url: str, tmp_path: Path
) -> None:
    import json

    stack = subprocess.Popen(
        [sys.executable, "-c", _STACK_SCRIPT, str(tmp_path / "home"), redis_url],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert stack.stdin is not None and stack.stdout is not None
    try:
        first = json.loads(stack.stdout.readline())
        assert first["forked"] and first["cmdline"]  # the same program: no new interpreter
        pool = int(first["pool"])
        assert _children(stack.pid) >= {pool}
        _wait("a worker of the forked pool", lambda: len(_children(pool)) == 1)
        worker = next(iter(_children(pool)))
        _wait("the worker registered", lambda: worker in _workers(redis_url))
        # the gateway's listening socket stays the stack's alone
        held = {os.readlink(f) for f in Path(f"/proc/{pool}/fd").iterdir()}
        assert f"socket:[{first['socket']}]" not in held
        # nor its SIGTERM handler: the pool stops on SIGTERM as a new interpreter would
        status = dict(
            line.split(":\t", 1) for line in Path(f"/proc/{pool}/status").read_text().splitlines()
        )
        assert not int(status["SigCgt"], 16) & (1 << (signal.SIGTERM - 1))

        os.kill(pool, signal.SIGKILL)
        _wait("the killed pool's worker gone", lambda: not _alive(worker), timeout=10)
        stack.stdin.write("\n")
        stack.stdin.flush()
        second = json.loads(stack.stdout.readline())
        assert second["restarted"] == "Popen"  # the supervisor's thread may not fork
        restarted = int(second["pid"])
        assert "kinoit.local.pool" in Path(f"/proc/{restarted}/cmdline").read_text()
        _wait("a worker of the restarted pool", lambda: len(_children(restarted)) == 1)

        stack.stdin.write("\n")
        stack.stdin.flush()
        assert json.loads(stack.stdout.readline()) == {"stopped": True}
        assert stack.wait(timeout=STOP_GRACE_SECONDS + 10) == 0
        assert not _alive(restarted) and not _alive(pool)
    finally:
        if stack.poll() is None:
            stack.kill()
            stack.wait(timeout=10)


def test_a_pool_whose_starter_died_before_it_started_stops(redis_url: str, tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # a starter already dead when the pool looks for it
    pool = subprocess.Popen(
        [sys.executable, "-m", "kinoit.local.pool", redis_url, "--workers", "1",
         "--log-dir", str(tmp_path), "--parent", str(gone.pid)],
    )  # fmt: skip
    try:
        assert pool.wait(timeout=30) == 1
    finally:
        if pool.poll() is None:
            pool.kill()
            pool.wait(timeout=10)


def test_workers_that_cannot_reach_redis_are_replaced_at_most_once_a_second(
    tmp_path: Path,
) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pool = subprocess.Popen(
        [sys.executable, "-m", "kinoit.local.pool", f"redis://127.0.0.1:{port}/0",
         "--workers", "2", "--log-dir", str(tmp_path)],
    )  # fmt: skip
    try:
        started = time.monotonic()
        time.sleep(4)
        lived = time.monotonic() - started
    finally:
        pool.send_signal(signal.SIGTERM)
        pool.wait(timeout=STOP_GRACE_SECONDS + 10)
    crashes = sum(p.read_text().count("crashed") for p in tmp_path.glob("worker-*.log"))
    assert crashes >= 2  # they did fail, and were replaced
    assert crashes <= 2 * (lived + 2)  # each of the two at most once a second
