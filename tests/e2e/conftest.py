"""End-to-end fixtures: `kinoit dev` as a subprocess on a free port with a temp
KINOIT_HOME, a local webhook receiver, and tiny clips with sound.

Everything is driven over HTTP exactly as a client would; nothing in the product
is patched. Failures and stalls are switched on through named failpoints
(KINOIT_FAILPOINTS, see kinoit.failpoints); a wrong rendition comes from a wrapper
handler under tests/e2e/functions, served instead of the real one through
KINOIT_FUNCTIONS_DIR (:func:`functions_with`).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import free_port, wait_for_port

API_TOKEN = "e2e-api-token"
WEBHOOK_SECRET = "whsec_ZTJlLXdlYmhvb2stc2VjcmV0LWJ5dGVzLTEyMzQ="
STAGE_SECRET = "e2e-stage-signing-secret"
TINY_LADDER = {
    "name": "tiny",
    "rungs": [
        {"name": "90p", "codec": "h264", "height": 90, "crf": 30, "preset": "ultrafast"},
        {"name": "48p", "codec": "h264", "height": 48, "crf": 32, "preset": "ultrafast"},
    ],
}
# Generous: the suite shares two cores with everything else.
JOB_TIMEOUT = 240.0


@dataclass
class Webhook:
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """A local HTTP server recording every webhook it receives."""

    url: str
    received: queue.Queue[Webhook] = field(default_factory=queue.Queue)
    seen: list[Webhook] = field(default_factory=list)

    def wait_for(self, job_id: str, types: set[str], timeout: float = JOB_TIMEOUT) -> Webhook:
        """The first webhook of ``job_id`` whose type is in ``types`` (earlier ones kept)."""
        for hook in self.seen:
            if hook.payload["data"]["job_id"] == job_id and hook.payload["type"] in types:
                return hook
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                got = [(h.payload["type"], h.payload["data"]["job_id"]) for h in self.seen]
                raise TimeoutError(f"no {types} webhook for {job_id}; got {got}")
            try:
                hook = self.received.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(hook)
            if hook.payload["data"]["job_id"] == job_id and hook.payload["type"] in types:
                return hook

    def of(self, job_id: str) -> list[Webhook]:
        """Every webhook received so far for ``job_id``."""
        while True:
            try:
                self.seen.append(self.received.get_nowait())
            except queue.Empty:
                break
        return [h for h in self.seen if h.payload["data"]["job_id"] == job_id]


@contextlib.contextmanager
def serve_receiver() -> Iterator[Receiver]:
    """A webhook receiver on a free loopback port."""
    hooks: queue.Queue[Webhook] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if len(body) != length:
                return  # the sender died mid-request (a crash test): nothing was delivered
            hooks.put(Webhook({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_port}/hooks", hooks)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver for one test."""
    with serve_receiver() as r:
        yield r


@dataclass
class Dev:
    """A running `kinoit dev` and a client for it."""

    process: subprocess.Popen[bytes]
    url: str
    home: Path
    env: dict[str, str]

    @property
    def orchestrate(self) -> str:
        return f"{self.url}/function/orchestrate"

    def call(
        self, method: str, path: str = "", token: str | None = API_TOKEN, **kwargs: Any
    ) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(
            method, self.orchestrate + path, headers=headers, timeout=30, **kwargs
        )

    def submit(self, source: str, **fields: Any) -> str:
        body = {"source": source, "ladder": TINY_LADDER, **fields}
        response = self.call("POST", json=body)
        assert response.status_code == 202, response.text
        return str(response.json()["job_id"])

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.call("GET", f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_state(
        self, job_id: str, states: set[str], timeout: float = JOB_TIMEOUT
    ) -> dict[str, Any]:
        """Poll the job until its state is one of ``states``."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["state"] in states:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']}: {job}")
            time.sleep(0.2)

    def store(self) -> Any:
        from kinoit.store import EmbeddedStore

        return EmbeddedStore(self.home / "store")

    def add(self, path: Path, pin: bool = True) -> str:
        """Add a file to the stack's store, as `kinoit add` would."""
        return str(self.store().add(path, pin=pin))

    def redis_url(self) -> str:
        return (self.home / "redis" / "url").read_text().strip()


def _write_secrets(secrets: Path) -> None:
    secrets.mkdir(parents=True, exist_ok=True)
    (secrets / "kinoit-api-token").write_text(API_TOKEN + "\n")
    (secrets / "kinoit-webhook-secret").write_text(WEBHOOK_SECRET + "\n")
    (secrets / "kinoit-stage-secret").write_text(STAGE_SECRET + "\n")


REPO = Path(__file__).resolve().parents[2]
TEST_FUNCTIONS = Path(__file__).resolve().parent / "functions"


def functions_with(root: Path, *names: str) -> Path:
    """A functions folder under ``root``: the repository's functions, except those
    in ``names``, which come from tests/e2e/functions (wrapper handlers)."""
    folder = root / "functions"
    folder.mkdir()
    for real in sorted((REPO / "functions").iterdir()):
        if (real / "handler.py").is_file():
            source = TEST_FUNCTIONS / real.name if real.name in names else real
            (folder / real.name).symlink_to(source, target_is_directory=True)
    missing = set(names) - {p.name for p in folder.iterdir()}
    assert not missing, f"no such functions: {sorted(missing)}"
    return folder


def start_dev(root: Path, workers: int = 2, **env: str) -> Dev:
    """Start `kinoit dev` on a free port with a fresh home under ``root``."""
    home, secrets = root / "home", root / "secrets"
    _write_secrets(secrets)
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KINOIT_")}
    full_env.update(
        {
            "KINOIT_HOME": str(home),
            "KINOIT_SECRETS_DIR": str(secrets),
            "KINOIT_DISPATCH_WINDOW": "4",
            **env,
        }
    )
    log = (root / "dev.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "kinoit.cli", "dev", "--port", str(port),
         "--workers", str(workers)],
        env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    dev = Dev(process, f"http://127.0.0.1:{port}", home, full_env)
    try:
        wait_for_port(port, timeout=60, proc=process)
    except BaseException:
        stop_dev(dev)
        raise
    return dev


def stop_dev(dev: Dev) -> None:
    """SIGTERM, then SIGKILL the whole process group if it does not stop."""
    if dev.process.poll() is None:
        dev.process.send_signal(signal.SIGTERM)
        try:
            dev.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(dev.process.pid, signal.SIGKILL)
            dev.process.wait(timeout=10)


@pytest.fixture
def dev_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Dev]]:
    """Start `kinoit dev` subprocesses; keyword arguments become environment variables."""
    started: list[Dev] = []

    def start(workers: int = 2, **env: str) -> Dev:
        dev = start_dev(tmp_path_factory.mktemp("dev"), workers, **env)
        started.append(dev)
        return dev

    yield start
    for dev in started:
        stop_dev(dev)


@dataclass
class ReferenceRun:
    """One undisturbed job of the main clip, with everything a client saw."""

    source: str
    job: dict[str, Any]
    hooks: list[Webhook]
    out: Path


@pytest.fixture(scope="session")
def reference_run(
    tmp_path_factory: pytest.TempPathFactory, clips: dict[str, Path]
) -> Iterator[ReferenceRun]:
    """Run the main clip once through a fresh `kinoit dev`, export its outputs."""
    from kinoit.local.run import export_outputs

    root = tmp_path_factory.mktemp("reference")
    with serve_receiver() as receiver:
        dev = start_dev(root)
        try:
            source = dev.add(clips["main"])
            job_id = dev.submit(source, callback_url=receiver.url, metadata={"title": "e2e"})
            receiver.wait_for(job_id, {"job.completed", "job.failed"})
            job = dev.wait_state(job_id, {"completed", "failed", "cancelled"})
            out = root / "out"
            if job["state"] == "completed":
                export_outputs(dev.store(), job["manifest"], out)
            yield ReferenceRun(source, job, receiver.of(job_id), out)
        finally:
            stop_dev(dev)


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny clips with sound: 2 s at 25 fps, 160x90; three distinct 1 s ones for the queue test."""
    from kinoit.media.synth import make_clip

    root = tmp_path_factory.mktemp("clips")
    out = {"main": make_clip(root / "main.mp4", seconds=2, width=160, height=90, audio=True)}
    for n in range(3):
        out[f"short{n}"] = make_clip(
            root / f"short{n}.mp4", seconds=1, width=96 + 16 * n, height=64, audio=True
        )
    return out


@pytest.fixture(scope="module")
def long_gop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s with sound, B-frames and keyframes off the 1-s boundaries (a keyframe every
    47 frames): a source that is transcoded directly, or split lossless in ranges."""
    path = tmp_path_factory.mktemp("long-gop") / "long-gop.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi",
         "-i", "testsrc2=size=160x90:rate=25,noise=alls=8:allf=t",
         "-f", "lavfi", "-i", "sine=f=440:sample_rate=48000", "-t", "6",
         "-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-g", "47",
         "-c:a", "aac", "-shortest", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path
