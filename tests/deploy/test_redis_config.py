"""The chart's redis.conf on a real redis-server: AOF on, nothing evicted, data kept."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.conftest import find_binary, free_port
from tests.deploy.conftest import find, render

pytestmark = pytest.mark.redis


def chart_redis_conf(helm: str) -> str:
    docs = render(helm, "--set", "secrets.create=false")
    return str(find(docs, "ConfigMap", "kinoit-redis")["data"]["redis.conf"])


@pytest.fixture
def redis_binary() -> str:
    binary = find_binary("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed (scripts/install installs it)")
    return binary


@contextmanager
def running(binary: str, conf: Path) -> Iterator[redis.Redis]:
    """A redis-server on ``conf``, stopped with SIGTERM on exit."""
    proc = subprocess.Popen([binary, str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    port = int(re.search(r"^port (\d+)$", conf.read_text(), re.M).group(1))  # type: ignore[union-attr]
    client = redis.Redis(port=port, socket_connect_timeout=1)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert proc.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    try:
        yield client
    finally:
        client.close()
        proc.terminate()  # SIGTERM: redis fsyncs the AOF and exits
        proc.wait(timeout=15)


def test_chart_redis_keeps_job_state_across_restarts(
    helm: str, redis_binary: str, tmp_path: Path
) -> None:
    port = free_port()
    text = chart_redis_conf(helm)
    text = text.replace("dir /data", f"dir {tmp_path}").replace("port 6379", f"port {port}")
    conf = tmp_path / "redis.conf"
    conf.write_text(text + "bind 127.0.0.1\n")

    with running(redis_binary, conf) as client:
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("maxmemory")["maxmemory"] == str(2**30)
        client.hset("kinoit:job:1", mapping={"state": "running"})
    assert any(tmp_path.rglob("*.aof")), "no append-only file written"
    with running(redis_binary, conf) as client:
        assert client.hget("kinoit:job:1", "state") == b"running"
