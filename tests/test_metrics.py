"""Metrics stored in Redis render as valid Prometheus text, the same from any replica."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import redis
from kinoit.errors import InvalidParameter, StateUnavailable
from kinoit.metrics import (
    CONTENT_TYPE,
    DURATION_BUCKETS,
    MetricsRecorder,
    Snapshot,
    render_metrics,
)
from prometheus_client.parser import text_string_to_metric_families
from redis.backoff import NoBackoff
from redis.retry import Retry

pytestmark = pytest.mark.redis


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    try:
        yield connection
    finally:
        connection.close()


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by name and sorted labels (parsed by prometheus_client)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def families(text: bytes) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text.decode())}


def test_empty_redis_renders_every_family_with_zeroes(client: redis.Redis) -> None:
    text = render_metrics(client)
    assert families(text) == {
        "kinoit_jobs": "gauge",
        "kinoit_tasks": "gauge",
        "kinoit_queue_depth": "gauge",
        "kinoit_job_transitions": "counter",
        "kinoit_tasks_finished": "counter",
        "kinoit_task_duration_seconds": "histogram",
        "kinoit_task_retries": "counter",
        "kinoit_verification_failures": "counter",
        "kinoit_webhook_deliveries": "counter",
    }
    values = samples(text)
    assert values[("kinoit_queue_depth", ())] == 0
    assert values[("kinoit_verification_failures_total", ())] == 0
    assert values[("kinoit_webhook_deliveries_total", (("result", "failed"),))] == 0


def test_counters_are_shared_by_every_recorder_on_the_same_redis(
    client: redis.Redis, redis_url: str
) -> None:
    # Two orchestrate replicas, each with its own connection and recorder.
    other = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        first, second = MetricsRecorder(client), MetricsRecorder(other)
        first.job_transition("queued")
        second.job_transition("queued")
        second.job_transition("running")
        first.task_retried("transcode")
        second.task_retried("transcode")
        first.verification_failed()
        first.webhook_delivered(ok=True)
        second.webhook_delivered(ok=True)
        second.webhook_delivered(ok=False)
        # Whichever replica answers the scrape renders the same numbers.
        assert render_metrics(client) == render_metrics(other)
    finally:
        other.close()
    values = samples(render_metrics(client))
    assert values[("kinoit_job_transitions_total", (("state", "queued"),))] == 2
    assert values[("kinoit_job_transitions_total", (("state", "running"),))] == 1
    assert values[("kinoit_task_retries_total", (("stage", "transcode"),))] == 2
    assert values[("kinoit_verification_failures_total", ())] == 1
    assert values[("kinoit_webhook_deliveries_total", (("result", "ok"),))] == 2
    assert values[("kinoit_webhook_deliveries_total", (("result", "failed"),))] == 1


def test_duration_histogram_is_cumulative_per_stage(client: redis.Redis) -> None:
    recorder = MetricsRecorder(client)
    for seconds in (0.03, 0.7, 0.7, 4.0):
        recorder.task_finished("transcode", "done", seconds)
    recorder.task_finished("transcode", "failed", 7200.0)  # beyond the last bound
    recorder.task_finished("merge", "done", 900.0)
    values = samples(render_metrics(client))

    def bucket(stage: str, le: str) -> float:
        return values[("kinoit_task_duration_seconds_bucket", (("le", le), ("stage", stage)))]

    assert bucket("transcode", "0.05") == 1
    assert bucket("transcode", "0.5") == 1
    assert bucket("transcode", "1.0") == 3
    assert bucket("transcode", "5.0") == 4
    assert bucket("transcode", "3600.0") == 4
    assert bucket("transcode", "+Inf") == 5
    assert values[("kinoit_task_duration_seconds_count", (("stage", "transcode"),))] == 5
    total = values[("kinoit_task_duration_seconds_sum", (("stage", "transcode"),))]
    assert math.isclose(total, 0.03 + 0.7 + 0.7 + 4.0 + 7200.0)
    assert bucket("merge", "600.0") == 0
    assert bucket("merge", "1800.0") == 1
    # Every stage carries every bound, so histogram_quantile works on any of them.
    les = {
        dict(labels)["le"]
        for (name, labels) in values
        if name == "kinoit_task_duration_seconds_bucket" and dict(labels)["stage"] == "merge"
    }
    assert len(les) == len(DURATION_BUCKETS) + 1
    assert values[("kinoit_tasks_finished_total", (("stage", "transcode"), ("state", "done")))] == 4
    failed = ("kinoit_tasks_finished_total", (("stage", "transcode"), ("state", "failed")))
    assert values[failed] == 1


def test_snapshot_gauges_are_rendered(client: redis.Redis) -> None:
    snapshot = Snapshot(
        jobs={"queued": 3, "running": 1},
        tasks={("transcode", "leased"): 12, ("transcode", "pending"): 40},
        queue_depth=3,
    )
    values = samples(render_metrics(client, snapshot))
    assert values[("kinoit_jobs", (("state", "queued"),))] == 3
    assert values[("kinoit_jobs", (("state", "running"),))] == 1
    assert values[("kinoit_tasks", (("stage", "transcode"), ("state", "leased")))] == 12
    assert values[("kinoit_tasks", (("stage", "transcode"), ("state", "pending")))] == 40
    assert values[("kinoit_queue_depth", ())] == 3


def test_caller_pipeline_records_only_when_executed(client: redis.Redis) -> None:
    recorder = MetricsRecorder(client)
    with client.pipeline(transaction=True) as pipe:
        recorder.task_finished("split", "done", 12.5, pipe=pipe)
        recorder.job_transition("running", pipe=pipe)
        before = samples(render_metrics(client))
        assert ("kinoit_task_duration_seconds_count", (("stage", "split"),)) not in before
        pipe.execute()
    after = samples(render_metrics(client))
    assert after[("kinoit_task_duration_seconds_count", (("stage", "split"),))] == 1
    assert after[("kinoit_job_transitions_total", (("state", "running"),))] == 1


def test_prefix_separates_deployments(client: redis.Redis) -> None:
    MetricsRecorder(client, prefix="a:metrics").verification_failed()
    assert (
        samples(render_metrics(client, prefix="b:metrics"))[
            ("kinoit_verification_failures_total", ())
        ]
        == 0
    )
    assert (
        samples(render_metrics(client, prefix="a:metrics"))[
            ("kinoit_verification_failures_total", ())
        ]
        == 1
    )


@pytest.mark.parametrize("stage", ["", "Transcode", 'x"}', "a" * 41, "stage with space"])
def test_bad_label_values_are_refused(client: redis.Redis, stage: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        MetricsRecorder(client).task_retried(stage)
    assert info.value.field == "stage"
    with pytest.raises(InvalidParameter):
        render_metrics(client, Snapshot(tasks={(stage, "leased"): 1}))


@pytest.mark.parametrize("seconds", [-1.0, math.nan, math.inf])
def test_bad_durations_are_refused(client: redis.Redis, seconds: float) -> None:
    with pytest.raises(InvalidParameter) as info:
        MetricsRecorder(client).task_finished("split", "done", seconds)
    assert info.value.field == "seconds"
    assert client.keys("kinoit:metrics:*") == []


def test_unreachable_redis_is_state_unavailable() -> None:
    dead = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    with pytest.raises(StateUnavailable):
        MetricsRecorder(dead).verification_failed()
    with pytest.raises(StateUnavailable):
        render_metrics(dead)


def test_content_type_is_the_classic_text_format() -> None:
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")


def test_webhook_attempts_are_counted_by_the_delivery_pass(client: redis.Redis) -> None:
    """deliver_pending records every attempt, so the dashboard's webhook panel moves."""
    from kinoit import webhooks

    secret = "whsec_dGVzdC13ZWJob29rLXNlY3JldC0xMjM0NTY="
    answers = {"http://receiver.test/ok": 204, "http://receiver.test/down": 503}

    def send(target: webhooks.CallbackTarget, body: bytes, headers: object, timeout: float) -> int:
        return answers[target.url]

    def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    for url in answers:
        webhooks.enqueue_webhook(client, url, "job.completed", "job-1", {}, now=100.0)
    report = webhooks.deliver_pending(
        client, secret, send=send, resolve=resolve, allow_private=True, now=100.0
    )
    assert (len(report.delivered), len(report.retried)) == (1, 1)
    values = samples(render_metrics(client))
    assert values[("kinoit_webhook_deliveries_total", (("result", "ok"),))] == 1
    assert values[("kinoit_webhook_deliveries_total", (("result", "failed"),))] == 1
