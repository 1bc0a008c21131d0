"""GET /metrics on orchestrate after real jobs: the counters say what happened."""

from __future__ import annotations

from typing import Any

import pytest
from kinoit.metrics import CONTENT_TYPE
from kinoit.service import HttpRequest
from prometheus_client.parser import text_string_to_metric_families

from tests.service.conftest import Call, Harness

pytestmark = pytest.mark.redis

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(harness: Harness) -> Samples:
    """Scrape as Prometheus does: no credentials, text format parsed by prometheus_client."""
    text, status, headers = harness.service.handle(HttpRequest("GET", "/metrics", {}, {}, b""))
    assert status == 200
    assert headers["Content-Type"] == CONTENT_TYPE
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def finished(samples: Samples, stage: str, state: str = "done") -> float:
    key = ("kinoit_tasks_finished_total", (("stage", stage), ("state", state)))
    return samples.get(key, 0.0)


def test_completed_job_is_counted_once_per_task(harness: Harness) -> None:
    job_id = harness.submit()
    split = harness.calls.pop(0)
    harness.answer(split)
    harness.answer(split)  # the queue-worker redelivered it: counted once
    harness.drain()
    assert harness.job(job_id)["state"] == "completed"

    samples = scrape(harness)
    transitions = {
        dict(labels)["state"]: value
        for (name, labels), value in samples.items()
        if name == "kinoit_job_transitions_total"
    }
    assert transitions.get("queued") == 1 and transitions.get("running") == 1
    assert transitions.get("completed") == 1
    segments = harness.segments
    # merge: merge.90p, merge._media and the final task
    expected = {"split": 1, "transcode": segments, "thumbnail": segments,
                "checksum": segments, "merge": 3}  # fmt: skip
    for stage, count in expected.items():
        assert finished(samples, stage) == count, stage
        histogram_count = samples[("kinoit_task_duration_seconds_count", (("stage", stage),))]
        assert histogram_count == count, stage
        inf = ("kinoit_task_duration_seconds_bucket", (("le", "+Inf"), ("stage", stage)))
        assert samples[inf] == count
    # Nothing is left running once the job completed.
    assert samples[("kinoit_queue_depth", ())] == 0
    running = ("kinoit_jobs", (("state", "running"),))
    assert samples.get(running, 0.0) == 0


def test_retry_and_verification_failure_are_counted(harness: Harness) -> None:
    harness.submit()
    split = harness.calls.pop(0)
    harness.answer(split, 500, {"error": "MediaError", "message": "boom"})
    harness.request("POST", "/tick")

    def mismatch_once(call: Call) -> tuple[int, Any] | None:
        if call.task_id == "checksum.1":
            return (200, {**harness.result_for(call), "ok": False, "reason": "90p differs"})
        return None

    harness.drain(decide=mismatch_once)
    samples = scrape(harness)
    assert samples[("kinoit_task_retries_total", (("stage", "split"),))] == 1
    assert samples[("kinoit_verification_failures_total", ())] == 1
    assert finished(samples, "split", "failed") + finished(samples, "split") >= 1
