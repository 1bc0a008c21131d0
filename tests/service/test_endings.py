"""A job's end interrupted at each of its steps is finished by the tick: one end
webhook (the same message however often the end is re-run), no hold left behind,
the same manifest. The interruption here is a failpoint raising in the middle of
the end (real Redis, real store); tests/e2e/test_job_end_crash.py kills the
process for real."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import redis
from kinoit.jobs import keys
from kinoit.service.endings import ENDING_KEY, SETTLE_GRACE_SECONDS
from kinoit.service.holds import JOB_HOLDS_KEY

from tests.service.conftest import Harness

STEPS = ["job_end.owed", "job_end.ended", "job_end.webhook_queued"]


def end_webhooks(client: redis.Redis, job_id: str) -> list[tuple[str, str]]:
    """(message id, type) of every queued end webhook of ``job_id``."""
    found = []
    for raw in client.zrange(keys.WEBHOOK_DUE_KEY, 0, -1):
        msg_id = raw.decode()
        body = json.loads(client.hget(keys.WEBHOOK_MSG_KEY.format(msg_id=msg_id), "body") or b"{}")
        if body["data"]["job_id"] == job_id and body["type"] in {
            "job.completed", "job.failed", "job.cancelled"
        }:  # fmt: skip
            found.append((msg_id, body["type"]))
    return found


def interrupt(harness: Harness, step: str) -> None:
    """Arm ``step`` to raise (as a crash there would stop the end), in this pipeline."""
    from kinoit.failpoints import parse_failpoints

    harness.pipeline.end.points = parse_failpoints(f"{step}=error")


def later(harness: Harness) -> None:
    """Let the owed ends be past their grace period (another process's crash)."""
    endings = harness.pipeline.end.endings
    endings.clock = lambda: 1e12 + SETTLE_GRACE_SECONDS


def settle_by_tick(harness: Harness) -> None:
    harness.pipeline.end.points = {}
    later(harness)
    harness.pipeline.tick(deliver=False)
    harness.pipeline.tick(deliver=False)  # twice: nothing more happens


@pytest.mark.redis
@pytest.mark.parametrize("step", STEPS)
def test_completion_interrupted_at_each_step_is_finished_by_the_tick(
    harness_factory: Callable[..., Harness], step: str
) -> None:
    reference = harness_factory()
    reference_id = reference.submit(callback_url="http://127.0.0.1:9/hook")
    reference.drain()
    manifest = reference.job(reference_id)["manifest"]
    harness = reference
    client = redis.Redis.from_url(harness.service.settings.redis_url or "")
    client.flushall()  # a fresh state, the same store (the same CIDs)
    job_id = harness.submit(callback_url="http://127.0.0.1:9/hook")
    interrupt(harness, step)
    harness.drain()
    if step == "job_end.owed":  # before the transition: the job is still running
        assert harness.job(job_id)["state"] == "running"
        harness.pipeline._stuck[job_id] = -1e12  # looked stuck long ago
    settle_by_tick(harness)
    job = harness.job(job_id)
    assert job["state"] == "completed" and job["manifest"] == manifest
    assert [t for _, t in end_webhooks(client, job_id)] == ["job.completed"]
    assert not client.exists(JOB_HOLDS_KEY.format(job_id=job_id))
    assert client.zcard(ENDING_KEY) == 0
    assert [p.cid for p in harness.store.pin_ls()] == [manifest]
    client.close()


@pytest.mark.redis
@pytest.mark.parametrize("step", STEPS[1:])
def test_cancel_interrupted_is_finished_by_the_tick_or_a_second_delete(
    harness: Harness, step: str
) -> None:
    client = redis.Redis.from_url(harness.service.settings.redis_url or "")
    job_id = harness.submit(callback_url="http://127.0.0.1:9/hook")
    harness.answer(harness.calls.pop(0))  # split: the segment index is held
    assert client.exists(JOB_HOLDS_KEY.format(job_id=job_id))
    interrupt(harness, step)
    status, _ = harness.request("DELETE", f"/jobs/{job_id}")
    assert status == 500 and harness.job(job_id)["state"] == "cancelled"
    harness.pipeline.end.points = {}
    assert harness.request("DELETE", f"/jobs/{job_id}")[0] == 409  # ...and finishes the end
    assert [t for _, t in end_webhooks(client, job_id)] == ["job.cancelled"]
    assert not client.exists(JOB_HOLDS_KEY.format(job_id=job_id))
    assert not harness.store.pin_ls() and client.zcard(ENDING_KEY) == 0
    client.close()


@pytest.mark.redis
@pytest.mark.parametrize("step", STEPS[1:])
def test_failure_interrupted_is_finished_by_the_tick_with_its_reason(
    harness_factory: Callable[..., Harness], step: str
) -> None:
    harness = harness_factory(KINOIT_MAX_ATTEMPTS="1")
    client = redis.Redis.from_url(harness.service.settings.redis_url or "")
    job_id = harness.submit(callback_url="http://127.0.0.1:9/hook")
    harness.answer(harness.calls.pop(0))
    interrupt(harness, step)
    body = {"error": "NotAVideo", "message": "segment 0 is text"}
    harness.answer(harness.calls.pop(0), 400, body)
    assert harness.job(job_id)["state"] == "failed"
    settle_by_tick(harness)
    ((msg_id, kind),) = end_webhooks(client, job_id)
    assert kind == "job.failed"
    payload = json.loads(client.hget(keys.WEBHOOK_MSG_KEY.format(msg_id=msg_id), "body") or b"")
    assert "segment 0 is text" in payload["data"]["reason"]
    assert payload["data"]["failed_tasks"][0]["reason"].endswith("segment 0 is text")
    assert not client.exists(JOB_HOLDS_KEY.format(job_id=job_id))
    assert not harness.store.pin_ls() and client.zcard(ENDING_KEY) == 0
    client.close()


@pytest.mark.redis
def test_settling_again_keeps_the_one_end_message(harness: Harness) -> None:
    client = redis.Redis.from_url(harness.service.settings.redis_url or "")
    job_id = harness.submit(callback_url="http://127.0.0.1:9/hook")
    harness.drain()
    first = end_webhooks(client, job_id)
    for _ in range(3):
        assert harness.pipeline.end.settle(job_id)
    assert end_webhooks(client, job_id) == first and len(first) == 1
    client.close()


@pytest.mark.redis
def test_a_job_the_sweep_fails_is_owed_in_the_same_step_and_settled_by_a_later_tick(
    harness_factory: Callable[..., Harness],
) -> None:
    """The lease sweep fails a job inside its Lua script: the end is recorded as owed by
    that very script, so a crash before the process sends job.failed loses nothing."""
    import time

    harness = harness_factory(KINOIT_MAX_ATTEMPTS="1")
    client = redis.Redis.from_url(harness.service.settings.redis_url or "")
    job_id = harness.submit(callback_url="http://127.0.0.1:9/hook")
    harness.answer(harness.calls.pop(0))  # split done: its index is held
    report = harness.engine.sweep(now=time.time() + 10_000)  # every lease expired
    assert report.failed_jobs == [job_id]  # ... and here the process "crashes"
    assert harness.job(job_id)["state"] == "failed"
    assert client.zscore(ENDING_KEY, job_id) is not None
    assert end_webhooks(client, job_id) == []
    settle_by_tick(harness)
    assert [t for _, t in end_webhooks(client, job_id)] == ["job.failed"]
    assert not client.exists(JOB_HOLDS_KEY.format(job_id=job_id))
    assert not harness.store.pin_ls() and client.zcard(ENDING_KEY) == 0
    client.close()


@pytest.mark.redis
@pytest.mark.parametrize("how", ["complete", "fail", "cancel"])
def test_every_engine_transition_that_ends_a_job_records_it_as_owed(
    harness: Harness, how: str
) -> None:
    engine = harness.engine
    job_id = engine.create_job({"source": "x"}, {})
    engine.promote()
    if how == "complete":
        engine.complete_job(job_id, manifest=None)
    elif how == "fail":
        engine.fail_job(job_id, "broken")
    else:
        engine.cancel(job_id)
    client = redis.Redis.from_url(harness.service.settings.redis_url or "")
    assert client.zscore(ENDING_KEY, job_id) is not None
    client.close()
