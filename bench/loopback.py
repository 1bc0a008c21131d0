"""A throwaway redis-server on loopback for the benchmarks that measure Redis itself.

No persistence (unlike kinoit's private redis, which keeps an AOF), so the
figures are Redis's own cost and not the disk's.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time

import redis

START_TIMEOUT_SECONDS = 20.0


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(workdir: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start redis-server in ``workdir``; return it and its port once it answers PING."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server not found (scripts/install installs it)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            redis.Redis(port=port).ping()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("redis-server did not start")
