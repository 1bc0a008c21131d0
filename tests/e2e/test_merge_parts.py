"""merge per rung, end to end on `kinoit dev` with real ffmpeg: one merge task per
rung then the final one; a killed rung task is retried and the outputs are the same,
a failing one fails the job with its reason and leaves nothing leased or pinned."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import Dev, Receiver, ReferenceRun
from tests.e2e.test_failures import _kill_worker_running, run_to_failure

pytestmark = [pytest.mark.redis, pytest.mark.ffmpeg]


def test_the_reference_job_merged_each_rung_then_the_final(reference_run: ReferenceRun) -> None:
    job = reference_run.job
    assert job["state"] == "completed", job
    # the test ladder's two rungs, each in its own task, the media part and the final task
    assert job["stages"]["merge"]["done"] == 4 and job["stages"]["merge"]["retries"] == 0
    assert set(job["outputs"]["mp4"]) == {"90p", "48p"}


def test_a_failing_rung_merge_fails_the_job_with_nothing_leased_or_pinned(
    dev_factory: Callable[..., Dev], receiver: Receiver, clips: dict[str, Path]
) -> None:
    dev = dev_factory(KINOIT_FAILPOINTS="stage.merge.rung=error", KINOIT_MAX_ATTEMPTS="2")
    data, job = run_to_failure(dev, receiver, dev.add(clips["short0"]))
    assert "stage.merge.rung: injected failure" in data["reason"]
    failed = data["failed_tasks"][0]
    assert failed["stage"] == "merge" and failed["task"] in {"merge.90p", "merge.48p"}
    assert job["stages"]["merge"]["retries"] >= 1  # retried before giving up
    assert "merge" not in {t["task"] for t in data["failed_tasks"]}  # no final task ran


@pytest.mark.slow
def test_a_killed_rung_merge_is_retried_and_the_outputs_are_unchanged(
    dev_factory: Callable[..., Dev], clips: dict[str, Path], reference_run: ReferenceRun
) -> None:
    dev = dev_factory(KINOIT_FAILPOINTS="stage.merge.rung=sleep(3)", KINOIT_LEASE_SECONDS="20")
    job_id = dev.submit(dev.add(clips["main"]))
    _kill_worker_running(dev, "merge", body_has=b'"rung"')
    job = dev.wait_state(job_id, {"completed", "failed"})
    assert job["state"] == "completed", job.get("error")
    assert job["stages"]["merge"]["retries"] >= 1
    assert job["outputs"]["directory"] == reference_run.job["outputs"]["directory"]
    assert job["manifest"] == reference_run.job["manifest"]
