"""The private redis-server of a KINOIT_HOME: one per home (under a lock), always
on the recorded port, brought back by `kinoit dev` with its AOF when it dies
(real redis-server processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import requests
from kinoit.local.redis_server import ensure_private_redis, recorded_url

pytestmark = pytest.mark.redis


def servers_of(home: Path) -> list[int]:
    """Pids of the redis-server processes working in ``home``'s redis directory (a
    server changes its title, but works in its ``--dir``)."""
    workdir = str((home / "redis").resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if b"redis-server" in title.split(b" ")[0] and cwd == workdir:
            found.append(int(entry.name))
    return found


def kill_and_reap(pid: int, process: subprocess.Popen[bytes] | None) -> None:
    os.kill(pid, signal.SIGKILL)
    if process is not None:
        process.wait(timeout=10)


def test_a_dead_server_is_started_again_on_the_recorded_port_with_its_data(
    tmp_path: Path,
) -> None:
    first = ensure_private_redis(tmp_path)
    client = redis.Redis.from_url(first.url)
    client.config_set("appendfsync", "always")  # the write is on disk before the reply
    client.set("kinoit:test:kept", "yes")
    assert first.process is not None
    kill_and_reap(first.process.pid, first.process)
    second = ensure_private_redis(tmp_path)
    try:
        assert second.url == first.url == recorded_url(tmp_path)
        assert redis.Redis.from_url(second.url).get("kinoit:test:kept") == b"yes"
        assert len(servers_of(tmp_path)) == 1
    finally:
        second.stop()


def test_processes_starting_at_once_share_one_server(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; "
        "from kinoit.local.redis_server import ensure_private_redis; "
        "print(ensure_private_redis(Path(sys.argv[1])).url)"
    )
    starters = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    urls = {p.communicate(timeout=60)[0].decode().strip() for p in starters}
    try:
        assert len(urls) == 1 and urls == {recorded_url(tmp_path)}
        assert len(servers_of(tmp_path)) == 1
    finally:
        for pid in servers_of(tmp_path):
            os.kill(pid, signal.SIGTERM)


def test_kinoit_dev_brings_its_redis_back_and_the_cli_uses_the_same_one(tmp_path: Path) -> None:
    from tests.e2e.conftest import API_TOKEN, start_dev, stop_dev

    dev = start_dev(tmp_path, workers=1)
    try:
        url = recorded_url(dev.home)
        assert url is not None
        client = redis.Redis.from_url(url)
        client.config_set("appendfsync", "always")
        source = dev.store().add_bytes(b"kept across the restart", pin=True)
        job_id = dev.submit(source)  # a job record written before the kill
        (pid,) = servers_of(dev.home)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:  # the dev answers again (not a 503 for good) with the job kept
            reply = requests.get(
                f"{dev.orchestrate}/jobs/{job_id}",
                headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10,
            )  # fmt: skip
            if reply.status_code == 200:
                break
            assert time.monotonic() < deadline, reply.text
            time.sleep(0.2)
        assert recorded_url(dev.home) == url
        assert len(servers_of(dev.home)) == 1
        env = {**dev.env, "KINOIT_HOME": str(dev.home)}
        listed = subprocess.run(
            [sys.executable, "-m", "kinoit.cli", "jobs"], env=env, capture_output=True,
            timeout=60,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert job_id.encode() in listed.stdout
        assert recorded_url(dev.home) == url and len(servers_of(dev.home)) == 1
    finally:
        stop_dev(dev)
