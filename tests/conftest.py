"""Fixtures shared by every test: real peers started on loopback and stopped after.

- ``kinoit_home``: a fresh ``KINOIT_HOME`` (and empty secrets dir) per test.
- ``redis_server``: a private ``redis-server`` on a free loopback port (session);
  ``redis_url`` hands each test a flushed database.
- ``kubo``: a real ``ipfs daemon`` on a temp repo, offline, loopback ports (session).

Tests skip with a reason when a binary is missing, but ``scripts/install``
installs all of them, so CI runs them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def find_binary(name: str) -> str | None:
    """A binary on PATH or in Go's bin directory."""
    found = shutil.which(name)
    if found:
        return found
    gopath = Path(os.environ.get("GOPATH", Path.home() / "go"))
    candidate = gopath / "bin" / name
    return str(candidate) if candidate.exists() else None


@pytest.fixture
def kinoit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh KINOIT_HOME and secrets dir; no KINOIT_* leaks in from outside."""
    for key in list(os.environ):
        if key.startswith("KINOIT_"):
            monkeypatch.delenv(key)
    home = tmp_path / "kinoit-home"
    secrets = tmp_path / "secrets"
    home.mkdir()
    secrets.mkdir()
    monkeypatch.setenv("KINOIT_HOME", str(home))
    monkeypatch.setenv("KINOIT_SECRETS_DIR", str(secrets))
    return home


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server for the whole session."""
    binary = find_binary("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed (scripts/install installs it)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc=proc)
        yield RedisServer(port, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A flushed Redis database for one test."""
    import redis

    url = redis_server.url(0)
    client = redis.Redis.from_url(url)
    client.flushall()
    client.close()
    return url


@dataclass
class Kubo:
    binary: str
    repo: Path
    api_port: int
    gateway_port: int

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def cli(self, *args: str, input: bytes | None = None) -> bytes:
        """Run the ipfs CLI against this daemon's repo and return stdout."""
        env = dict(os.environ, IPFS_PATH=str(self.repo))
        result = subprocess.run(
            [self.binary, *args],
            input=input,
            capture_output=True,
            env=env,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"ipfs {' '.join(args)} failed: {result.stderr.decode()}")
        return result.stdout


@pytest.fixture(scope="session")
def kubo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubo]:
    """A real Kubo daemon: temp repo, offline, loopback API and gateway."""
    binary = find_binary("ipfs")
    if binary is None:
        pytest.skip("Kubo (ipfs) not installed (scripts/install installs it)")
    repo = tmp_path_factory.mktemp("kubo-repo")
    env = dict(os.environ, IPFS_PATH=str(repo))
    subprocess.run(
        [binary, "init", "--profile=test", "--empty-repo"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    api_port, gateway_port = free_port(), free_port()
    for key, value in (
        ("Addresses.API", f"/ip4/127.0.0.1/tcp/{api_port}"),
        ("Addresses.Gateway", f"/ip4/127.0.0.1/tcp/{gateway_port}"),
    ):
        subprocess.run([binary, "config", key, value], env=env, check=True, capture_output=True)
    subprocess.run(
        [binary, "config", "--json", "Bootstrap", "[]"], env=env, check=True, capture_output=True
    )
    proc = subprocess.Popen(
        [binary, "daemon", "--offline"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(api_port, timeout=60, proc=proc)
        yield Kubo(binary, repo, api_port, gateway_port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
