"""GET /metrics after a real job through `kinoit dev`: real ffmpeg, callbacks and webhooks."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Dev, Receiver

pytestmark = [pytest.mark.redis, pytest.mark.ffmpeg]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(dev: Dev) -> Samples:
    """Every sample of the orchestrate metrics page, keyed by name and sorted labels."""
    response = dev.call("GET", "/metrics", token=None)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_count_a_real_job(
    dev_factory: Callable[..., Dev], receiver: Receiver, clips: dict[str, Path]
) -> None:
    dev = dev_factory()
    before = scrape(dev)
    assert before.get(("kinoit_jobs", (("state", "completed"),)), 0) == 0

    job_id = dev.submit(dev.add(clips["main"]), callback_url=receiver.url)
    receiver.wait_for(job_id, {"job.completed", "job.failed"})
    job = dev.wait_state(job_id, {"completed", "failed"})
    assert job["state"] == "completed", job

    after = scrape(dev)
    assert after[("kinoit_jobs", (("state", "completed"),))] == 1
    assert after[("kinoit_queue_depth", ())] == 0
    # The main clip is 2 one-second segments and the test ladder has two rungs; it is
    # transcoded directly: the planning split and the audio task, one range task for
    # both segments (which also makes their thumbnails: no thumbnail task runs), per
    # segment one checksum, one merge per rung, the media part and the final merge.
    expected = {"split": 2, "transcode": 1, "checksum": 2, "merge": 4}
    assert (("kinoit_tasks_finished_total", (("stage", "thumbnail"), ("state", "done")))
            not in after)  # fmt: skip
    for stage, count in expected.items():
        done = (("stage", stage), ("state", "done"))
        assert after[("kinoit_tasks_finished_total", done)] == count, stage
        assert after[("kinoit_task_duration_seconds_count", (("stage", stage),))] == count
        assert after[("kinoit_task_duration_seconds_sum", (("stage", stage),))] > 0
        infinite = (("le", "+Inf"), ("stage", stage))
        assert after[("kinoit_task_duration_seconds_bucket", infinite)] == count
    assert after.get(("kinoit_verification_failures_total", ()), 0) == 0
    # Webhooks are delivered in the background and counted right after the receiver
    # answers: poll until the count catches up with what the receiver holds.
    received = len(receiver.of(job_id))
    assert received >= 3  # accepted, started, completed
    ok_key = ("kinoit_webhook_deliveries_total", (("result", "ok"),))
    deadline = time.monotonic() + 10
    while scrape(dev).get(ok_key, 0) < received and time.monotonic() < deadline:
        time.sleep(0.2)
    assert scrape(dev).get(ok_key, 0) == received
    assert scrape(dev).get(("kinoit_webhook_deliveries_total", (("result", "failed"),)), 0) == 0
