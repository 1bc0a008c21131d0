"""A crash at each step of a job's end, for real: `kinoit dev` (which runs
orchestrate) is ended by a ``crash`` failpoint (``os._exit``) in the middle of the
end, restarted without it on the same home and Redis, and must then finish the
end: exactly one end webhook (one ``webhook-id``), no hold or intermediate pin
left, the same manifest as an undisturbed run."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kinoit.failpoints import CRASH_EXIT_STATUS
from kinoit.service.endings import ENDING_KEY

from tests.e2e.conftest import (
    JOB_TIMEOUT,
    Dev,
    Receiver,
    ReferenceRun,
    serve_receiver,
    start_dev,
    stop_dev,
)

pytestmark = [pytest.mark.redis, pytest.mark.ffmpeg, pytest.mark.slow]
END_TYPES = {"job.completed", "job.failed", "job.cancelled"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve_receiver() as r:
        yield r


def wait_for_crash(dev: Dev, timeout: float = JOB_TIMEOUT) -> None:
    """Wait until the dev process ended by the crash point; then clear its process group
    (its workers, orphaned by ``os._exit``)."""
    status = dev.process.wait(timeout=timeout)
    assert status == CRASH_EXIT_STATUS, f"kinoit dev exited with {status}, not by the crash"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(dev.process.pid, signal.SIGKILL)


def end_hooks(receiver: Receiver, job_id: str, settle_seconds: float = 3.0) -> list[Any]:
    """Every end webhook of ``job_id`` received, after waiting a little for duplicates."""
    time.sleep(settle_seconds)  # a duplicate would come within a delivery tick or two
    return [h for h in receiver.of(job_id) if h.payload["type"] in END_TYPES]


def assert_nothing_held(dev: Dev, redis_url: str, job_id: str, keep: set[str]) -> None:
    """Once the restarted tick has settled the owed end (the webhook may have gone out
    before: it was queued before the crash), nothing of the job is held."""
    client = redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 60
        while client.zcard(ENDING_KEY):
            assert time.monotonic() < deadline, "the owed end was never settled"
            time.sleep(0.2)
        assert not client.exists(f"kinoit:job:{job_id}:pins")
    finally:
        client.close()
    assert {p.cid for p in dev.store().pin_ls()} == keep


@pytest.mark.parametrize("step", ["job_end.owed", "job_end.ended", "job_end.webhook_queued"])
def test_a_crash_at_each_step_of_a_completion_loses_no_webhook_and_leaks_no_pin(
    tmp_path: Path,
    redis_url: str,
    receiver: Receiver,
    clips: dict[str, Path],
    reference_run: ReferenceRun,
    step: str,
) -> None:
    env = {"KINOIT_REDIS_URL": redis_url}
    first = start_dev(tmp_path, **env, KINOIT_FAILPOINTS=f"{step}=crash")
    try:
        source = first.add(clips["main"])
        job_id = first.submit(source, callback_url=receiver.url, metadata={"title": "e2e"})
        wait_for_crash(first)
    finally:
        stop_dev(first)
    second = start_dev(tmp_path, **env)
    try:
        hook = receiver.wait_for(job_id, END_TYPES)
        job = second.wait_state(job_id, {"completed", "failed", "cancelled"})
        assert job["state"] == "completed" and hook.payload["type"] == "job.completed"
        assert job["manifest"] == reference_run.job["manifest"]
        hooks = end_hooks(receiver, job_id)
        assert {h.headers["webhook-id"] for h in hooks} == {hook.headers["webhook-id"]}
        assert_nothing_held(second, redis_url, job_id, {source, job["manifest"]})
    finally:
        stop_dev(second)


def test_a_crash_in_a_cancel_is_finished_by_the_next_start_and_a_second_delete(
    tmp_path: Path, redis_url: str, receiver: Receiver, clips: dict[str, Path]
) -> None:
    import requests

    env = {"KINOIT_REDIS_URL": redis_url}
    first = start_dev(
        tmp_path, **env, KINOIT_FAILPOINTS="job_end.ended=crash;stage.transcode=sleep(3)"
    )
    try:
        source = first.add(clips["short2"])
        job_id = first.submit(source, callback_url=receiver.url)
        deadline = time.monotonic() + JOB_TIMEOUT
        while first.job(job_id)["stages"].get("transcode", {}).get("leased", 0) == 0:
            assert time.monotonic() < deadline, "transcode never started"
            time.sleep(0.1)
        with pytest.raises(requests.ConnectionError):
            first.call("DELETE", f"/jobs/{job_id}")  # the process dies answering it
        wait_for_crash(first)
    finally:
        stop_dev(first)
    second = start_dev(tmp_path, **env)
    try:
        assert second.job(job_id)["state"] == "cancelled"
        assert second.call("DELETE", f"/jobs/{job_id}").status_code == 409
        hook = receiver.wait_for(job_id, END_TYPES)
        assert hook.payload["type"] == "job.cancelled"
        hooks = end_hooks(receiver, job_id)
        assert {h.headers["webhook-id"] for h in hooks} == {hook.headers["webhook-id"]}
        assert_nothing_held(second, redis_url, job_id, {source})
    finally:
        stop_dev(second)
