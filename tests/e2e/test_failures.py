"""What goes wrong, end to end: failing tasks, lost workers, cancel, the job queue."""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.e2e.conftest import JOB_TIMEOUT, Dev, Receiver, ReferenceRun, functions_with

pytestmark = [pytest.mark.redis, pytest.mark.ffmpeg]


def non_source_pins(dev: Dev, source: str) -> list[str]:
    return [p.cid for p in dev.store().pin_ls() if p.cid != source]


def run_to_failure(dev: Dev, receiver: Receiver, source: str) -> tuple[dict[str, Any], Any]:
    """Submit ``source``; wait for its job.failed webhook; check nothing is left leased
    or pinned; return the webhook's data and the job."""
    job_id = dev.submit(source, callback_url=receiver.url)
    hook = receiver.wait_for(job_id, {"job.failed", "job.completed"})
    assert hook.payload["type"] == "job.failed", hook.payload
    job = dev.job(job_id)
    assert job["state"] == "failed" and job["tasks"]["leased"] == 0
    assert non_source_pins(dev, source) == []
    return dict(hook.payload["data"]), job


@pytest.mark.parametrize(
    ("stage", "direct"), [("transcode", "6"), ("thumbnail", "0")]
)  # a direct transcode (the default), or the per-segment path with its thumbnail tasks
def test_task_that_always_fails_fails_the_job_with_the_reason(
    dev_factory: Callable[..., Dev], receiver: Receiver, clips: dict[str, Path], stage: str,
    direct: str,
) -> None:  # fmt: skip
    dev = dev_factory(
        KINOIT_FAILPOINTS=f"stage.{stage}=error", KINOIT_MAX_ATTEMPTS="2",
        KINOIT_TRANSCODE_RANGE_SECONDS=direct,
    )  # fmt: skip
    data, job = run_to_failure(dev, receiver, dev.add(clips["short0"]))
    assert "injected failure" in data["reason"]
    assert data["failed_tasks"][0]["stage"] == stage
    assert "injected failure" in job["error"]
    assert job["stages"][stage]["retries"] >= 1  # retried before giving up


def test_source_that_is_not_a_video_fails_without_retries(
    dev_factory: Callable[..., Dev], receiver: Receiver, tmp_path: Path
) -> None:
    dev = dev_factory(workers=1)
    text = tmp_path / "notes.txt"
    text.write_text("this is not a video\n" * 100)
    data, job = run_to_failure(dev, receiver, dev.add(text))
    assert "NotAVideo" in data["reason"]
    assert job["stages"]["split"]["retries"] == 0


def test_a_really_wrong_rendition_is_rerun_once_then_fails_the_job(
    dev_factory: Callable[..., Dev], receiver: Receiver, clips: dict[str, Path], tmp_path: Path
) -> None:
    # transcode (the wrapper in tests/e2e/functions) really stores a negative picture for
    # the segment starting at frame 0, on the first run and on the re-run: the real
    # checksum must catch both
    functions = functions_with(tmp_path, "transcode-segment")
    dev = dev_factory(KINOIT_FUNCTIONS_DIR=str(functions), CORRUPT_START_FRAME="0")
    data, job = run_to_failure(dev, receiver, dev.add(clips["short1"]))
    assert data["reason"].startswith("verification failed: segment 0: "), data["reason"]
    assert data["failed_tasks"][0]["task"] == "checksum.0.r2"
    assert job["error"] == data["reason"]
    # one transcode and one checksum, each run twice (first run and the re-run)
    assert job["stages"]["transcode"]["total"] == 2 and job["stages"]["checksum"]["total"] == 2
    assert "merge" not in job["stages"]


@pytest.mark.parametrize(("kind", "test"), [("frozen", "time"), ("heavy noise", "fidelity")])
def test_a_frozen_or_noisy_rendition_fails_the_job_naming_the_test(
    dev_factory: Callable[..., Dev], receiver: Receiver, clips: dict[str, Path], tmp_path: Path,
    kind: str, test: str,
) -> None:  # fmt: skip
    # the wrapper writes the segment's renditions frozen on their first frame, or under
    # heavy noise, on both runs: the verdict must say which test caught it
    functions = functions_with(tmp_path, "transcode-segment")
    dev = dev_factory(
        KINOIT_FUNCTIONS_DIR=str(functions), CORRUPT_START_FRAME="0", CORRUPT_KIND=kind
    )
    data, job = run_to_failure(dev, receiver, dev.add(clips["short1"]))
    assert data["reason"].startswith("verification failed: segment 0: "), data["reason"]
    assert f": {test}: " in data["reason"], data["reason"]
    assert data["failed_tasks"][0]["task"] == "checksum.0.r2"
    assert "merge" not in job["stages"]


def _kill_worker_running(
    dev: Dev, function: str, timeout: float = JOB_TIMEOUT, *, body_has: bytes = b""
) -> int:
    """SIGKILL the RQ worker process that is running ``function`` (with ``body_has`` in
    its request body); return its pid."""
    from rq import Worker

    connection = redis.Redis.from_url(dev.redis_url())
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for worker in Worker.all(connection=connection):
                job = worker.get_current_job()
                call = job.args[0] if job is not None and job.args else {}
                if call.get("function") == function and body_has in call.get("body", b""):
                    os.kill(worker.pid, signal.SIGKILL)
                    return int(worker.pid)
            time.sleep(0.1)
    finally:
        connection.close()
    raise TimeoutError(f"no worker ever ran {function}")


def _wait_until_workers_idle(dev: Dev, timeout: float = JOB_TIMEOUT) -> None:
    """Wait until the async queue is empty and no RQ worker is running a call."""
    from rq import Queue, Worker

    connection = redis.Redis.from_url(dev.redis_url())
    deadline = time.monotonic() + timeout
    try:
        while True:
            busy = [w for w in Worker.all(connection=connection) if w.get_current_job()]
            if not busy and all(len(q) == 0 for q in Queue.all(connection=connection)):
                return
            assert time.monotonic() < deadline, "the workers never went idle"
            time.sleep(0.1)
    finally:
        connection.close()


@pytest.mark.slow
def test_killed_worker_task_is_retried_and_the_manifest_is_unchanged(
    dev_factory: Callable[..., Dev], clips: dict[str, Path], reference_run: ReferenceRun
) -> None:
    dev = dev_factory(
        KINOIT_FAILPOINTS="stage.transcode=sleep(3)",
        KINOIT_LEASE_SECONDS="20",
        KINOIT_DISPATCH_WINDOW="2",
    )
    source = dev.add(clips["main"])
    job_id = dev.submit(source)
    _kill_worker_running(dev, "transcode-segment")
    job = dev.wait_state(job_id, {"completed", "failed"})
    assert job["state"] == "completed", job.get("error")
    assert job["stages"]["transcode"]["retries"] >= 1
    assert job["manifest"] == reference_run.job["manifest"]


def test_cancel_stops_the_job_and_releases_everything(
    dev_factory: Callable[..., Dev], receiver: Receiver, clips: dict[str, Path]
) -> None:
    dev = dev_factory(KINOIT_FAILPOINTS="stage.transcode=sleep(2)")
    source = dev.add(clips["short2"])
    job_id = dev.submit(source, callback_url=receiver.url)
    deadline = time.monotonic() + JOB_TIMEOUT
    while dev.job(job_id)["stages"].get("transcode", {}).get("leased", 0) == 0:
        assert time.monotonic() < deadline, "transcode never started"
        time.sleep(0.1)
    response = dev.call("DELETE", f"/jobs/{job_id}")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    assert response.json()["released"] >= 1
    receiver.wait_for(job_id, {"job.cancelled"})
    at_cancel = dev.job(job_id)["stages"]
    # the tasks already running finish and call back late: nothing more is counted or sent
    _wait_until_workers_idle(dev)
    job = dev.job(job_id)
    assert job["state"] == "cancelled" and job["tasks"]["leased"] == 0
    assert job["stages"] == at_cancel
    assert dev.call("DELETE", f"/jobs/{job_id}").status_code == 409
    assert non_source_pins(dev, source) == []


@pytest.mark.slow
def test_three_jobs_queue_and_run_one_at_a_time_in_order(
    dev_factory: Callable[..., Dev], clips: dict[str, Path]
) -> None:
    dev = dev_factory()
    sources = [dev.add(clips[f"short{n}"]) for n in range(3)]
    ids = [dev.submit(source) for source in sources]
    states = [dev.job(j)["state"] for j in ids]
    assert states[0] == "running" and states[1:] == ["queued", "queued"]
    jobs = [dev.wait_state(j, {"completed", "failed"}) for j in ids]
    assert [j["state"] for j in jobs] == ["completed"] * 3
    for earlier, later in itertools.pairwise(jobs):
        assert earlier["finished_at"] <= later["started_at"]
    listed = dev.call("GET", "/jobs").json()["jobs"]
    assert [j["job_id"] for j in listed] == list(reversed(ids))
