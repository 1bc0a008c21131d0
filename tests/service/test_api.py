"""orchestrate's HTTP surface: auth, validation naming the field, caps, callback tokens."""

from __future__ import annotations

import pytest

from tests.service.conftest import LADDER, Harness

pytestmark = pytest.mark.redis


def test_missing_token_is_401(harness: Harness) -> None:
    status, body = harness.request("POST", "/", {"source": "x"}, token=None)
    assert status == 401 and body["error"] == "Unauthorized"


def test_wrong_token_is_401(harness: Harness) -> None:
    assert harness.request("GET", "/jobs", token="nope")[0] == 401


def test_metrics_and_healthz_need_no_token(harness: Harness) -> None:
    assert harness.request("GET", "/healthz", token=None)[0] == 200
    status, text = harness.request("GET", "/metrics", token=None)
    assert status == 200 and "kinoit_" in text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ladder": LADDER}, "source"),
        ({"source": "not-a-cid", "ladder": LADDER}, "source"),
        ({"source": "@S", "profile": "nope"}, "profile"),
        ({"source": "@S", "profile": "/etc/passwd"}, "profile"),
        ({"source": "@S", "ladder": {"rungs": []}}, "ladder.rungs"),
        ({"source": "@S", "ladder": LADDER, "profile": "default"}, "ladder"),
        ({"source": "@S", "ladder": LADDER, "segment_seconds": 0.1}, "segment_seconds"),
        ({"source": "@S", "ladder": LADDER, "segment_seconds": "x"}, "segment_seconds"),
        ({"source": "@S", "ladder": LADDER, "callback_url": "ftp://x/"}, "callback_url"),
        ({"source": "@S", "ladder": LADDER, "metadata": [1]}, "metadata"),
        ({"source": "@S", "ladder": LADDER, "metadata": {"a": "x" * 5000}}, "metadata"),
        ({"source": "@S", "ladder": LADDER, "colour": "red"}, "colour"),
    ],
)
def test_bad_submission_is_400_naming_the_field(
    harness: Harness, body: dict[str, object], field: str
) -> None:
    if body.get("source") == "@S":
        body["source"] = harness.store.add_bytes(b"src", pin=False)
    status, reply = harness.request("POST", "/", body)
    assert status == 400, reply
    assert reply["field"] == field


def test_ssrf_callback_is_refused(harness_factory) -> None:  # type: ignore[no-untyped-def]
    harness = harness_factory(KINOIT_ALLOW_PRIVATE_CALLBACKS="false")
    source = harness.store.add_bytes(b"src", pin=False)
    for url in ("http://127.0.0.1:8080/hook", "http://169.254.169.254/latest", "http://10.0.0.1/"):
        body = {"source": source, "ladder": LADDER, "callback_url": url}
        status, reply = harness.request("POST", "/", body)
        assert status == 403, (url, reply)
    assert harness.request("GET", "/jobs")[1]["jobs"] == []


def test_oversized_body_is_413(harness_factory) -> None:  # type: ignore[no-untyped-def]
    harness = harness_factory(KINOIT_MAX_BODY_BYTES="2048")
    status, _ = harness.request("POST", "/", b"{" + b" " * 4096 + b"}")
    assert status == 413


def test_not_json_is_400(harness: Harness) -> None:
    status, reply = harness.request("POST", "/", b"{not json")
    assert status == 400 and reply["field"] == "body"


def test_submit_answers_202_with_a_status_url(harness: Harness) -> None:
    source = harness.store.add_bytes(b"src", pin=False)
    status, reply = harness.request("POST", "/", {"source": source, "ladder": LADDER})
    assert status == 202
    assert reply["status_url"].endswith(f"/function/orchestrate/jobs/{reply['job_id']}")
    status, job = harness.request("GET", f"/jobs/{reply['job_id']}")
    assert status == 200 and job["state"] == "running" and job["source"] == source


def test_unknown_job_is_404(harness: Harness) -> None:
    assert harness.request("GET", "/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV")[0] == 404
    assert harness.request("GET", "/jobs/../../etc")[0] == 404
    assert harness.request("GET", "/nowhere")[0] == 404


def test_forged_callback_token_is_403(harness: Harness) -> None:
    harness.submit()
    call = harness.calls.pop(0)
    call.token = "A" * 43
    status, _ = harness.answer(call)
    assert status == 403
    # a real token for another attempt is refused too
    real = harness.pipeline.secret
    from kinoit.jobs import callback_token

    call.token = callback_token(real, call.job_id, call.task_id, call.attempt + 1)
    assert harness.answer(call)[0] == 403
    assert harness.job(call.job_id)["stages"]["split"]["done"] == 0


def test_callback_without_status_header_is_400(harness: Harness) -> None:
    harness.submit()
    call = harness.calls.pop(0)
    path = f"/callback/{call.job_id}/{call.task_id}/{call.attempt}?token={call.token}"
    status, reply = harness.request("POST", path, {"a": 1}, token=None)
    assert status == 400 and reply["field"] == "X-Function-Status"


def test_list_jobs_newest_first(harness: Harness) -> None:
    first = harness.submit()
    second = harness.submit(metadata={"n": 2})
    status, body = harness.request("GET", "/jobs?limit=10")
    assert status == 200
    assert [j["job_id"] for j in body["jobs"]] == [second, first]
    assert harness.request("GET", "/jobs?limit=x")[0] == 400


def test_task_duration_comes_from_the_queue_worker_header(harness: Harness) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    harness.submit()
    call = harness.calls.pop(0)
    path = f"/callback/{call.job_id}/{call.task_id}/{call.attempt}?token={call.token}"
    body = harness.result_for(call)
    status, _ = harness.request(
        "POST", path, body, token=None, x_function_status="200", x_duration_seconds="7.5"
    )
    assert status == 200
    _, text = harness.request("GET", "/metrics", token=None)
    sums = {
        s.labels.get("stage"): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "kinoit_task_duration_seconds_sum"
    }
    assert sums["split"] == pytest.approx(7.5, abs=0.5)
