"""split in ranges, end to end on `kinoit dev` with real ffmpeg: a source longer than
KINOIT_SPLIT_RANGE_SECONDS is split by a planning task, one task per range and an
audio task, and the job's outputs are the ones a single split task gives (the direct
transcode, which takes such sources by default, off: KINOIT_TRANSCODE_RANGE_SECONDS=0)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import JOB_TIMEOUT, Dev, Receiver
from tests.e2e.test_failures import _kill_worker_running, run_to_failure

pytestmark = [pytest.mark.redis, pytest.mark.ffmpeg]


@pytest.fixture(scope="module")
def one_task_job(long_gop: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The job as one split task runs it (the reference)."""
    from tests.e2e.conftest import start_dev, stop_dev

    dev = start_dev(
        tmp_path_factory.mktemp("one-split"),
        KINOIT_SPLIT_RANGE_SECONDS="0",
        KINOIT_TRANSCODE_RANGE_SECONDS="0",
    )
    try:
        job = dev.wait_state(dev.submit(dev.add(long_gop)), {"completed", "failed"})
    finally:
        stop_dev(dev)
    assert job["state"] == "completed", job.get("error")
    assert job["stages"]["split"]["done"] == 1
    return job


def test_a_job_split_in_ranges_has_the_one_split_jobs_outputs(
    dev_factory: Callable[..., Dev], long_gop: Path, one_task_job: dict[str, Any]
) -> None:
    dev = dev_factory(KINOIT_SPLIT_RANGE_SECONDS="2", KINOIT_TRANSCODE_RANGE_SECONDS="0")
    job = dev.wait_state(dev.submit(dev.add(long_gop)), {"completed", "failed"})
    assert job["state"] == "completed", job.get("error")
    # the plan, three ranges of two segments, the audio
    assert job["stages"]["split"]["done"] == 5
    assert job["outputs"]["directory"] == one_task_job["outputs"]["directory"]
    assert job["manifest"] == one_task_job["manifest"]


@pytest.mark.slow
def test_a_killed_range_task_is_retried_and_the_outputs_are_unchanged(
    dev_factory: Callable[..., Dev], long_gop: Path, one_task_job: dict[str, Any]
) -> None:
    dev = dev_factory(
        KINOIT_SPLIT_RANGE_SECONDS="2",
        KINOIT_TRANSCODE_RANGE_SECONDS="0",
        KINOIT_FAILPOINTS="stage.split.range=sleep(3)",
        KINOIT_LEASE_SECONDS="20",
    )
    job_id = dev.submit(dev.add(long_gop))
    deadline = time.monotonic() + JOB_TIMEOUT
    while dev.job(job_id)["stages"]["split"]["done"] < 1:  # the plan is in: ranges run
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # a range task's worker, not the planning task's: that one may still be marking its
    # call done after its callback counted it
    _kill_worker_running(dev, "split", body_has=b'"range"')
    job = dev.wait_state(job_id, {"completed", "failed"})
    assert job["state"] == "completed", job.get("error")
    assert job["stages"]["split"]["retries"] >= 1
    assert job["outputs"]["directory"] == one_task_job["outputs"]["directory"]


def test_a_failing_range_fails_the_job_with_nothing_leased(
    dev_factory: Callable[..., Dev], receiver: Receiver, long_gop: Path
) -> None:
    dev = dev_factory(
        KINOIT_SPLIT_RANGE_SECONDS="2",
        KINOIT_TRANSCODE_RANGE_SECONDS="0",
        KINOIT_FAILPOINTS="stage.split.range=error",
        KINOIT_MAX_ATTEMPTS="2",
    )
    data, job = run_to_failure(dev, receiver, dev.add(long_gop))
    assert "injected failure" in data["reason"]
    failed = data["failed_tasks"][0]
    assert failed["stage"] == "split" and failed["task"].startswith("split.")
    assert job["stages"]["split"]["retries"] >= 1
