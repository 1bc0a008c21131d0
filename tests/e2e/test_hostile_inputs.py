"""The catalogue of hostile inputs, over real HTTP through `kinoit dev` (private
callbacks disallowed): orchestrate's API, every stage (signed as orchestrate signs,
and unsigned), and the callback route. Each case must get its specific 4xx with a
JSON error naming the field (where there is one): never a 5xx, an HTML page or a
traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from kinoit.local.testing import signed_headers

from tests.e2e.conftest import (
    API_TOKEN,
    STAGE_SECRET,
    TINY_LADDER,
    Dev,
    serve_receiver,
    start_dev,
    stop_dev,
)

STAGES = ("split", "transcode-segment", "thumbnail", "checksum", "merge")
CID_FIELD = {
    "split": "source",
    "transcode-segment": "segment",
    "thumbnail": "segment",
    "checksum": "segment",
    "merge": "plan",
}
EMPTY = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
HUGE_NUMBER = b'{"source": ' + b"9" * 5000 + b"}"
DEEP = b'{"source": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
KEY = STAGE_SECRET.encode()


@dataclass
class Case:
    """One hostile request and the refusal it must get."""

    name: str
    method: str
    path: str
    status: int
    body: bytes = b""
    field: str | None = None
    error: str | None = None
    token: bool = True  # send orchestrate's bearer token
    signed: bool = False  # sign as orchestrate signs a stage request


def j(value: Any) -> bytes:
    return json.dumps(value).encode()


@pytest.fixture(scope="module")
def hostile_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    dev = start_dev(
        tmp_path_factory.mktemp("hostile"),
        workers=1,
        KINOIT_ALLOW_PRIVATE_CALLBACKS="false",
        KINOIT_MAX_ATTEMPTS="1",
        KINOIT_FAILPOINTS="stage.split=sleep(30)",
    )
    yield dev
    stop_dev(dev)


def orchestrate_cases(text_cid: str) -> list[Case]:
    submit = {"source": EMPTY, "ladder": TINY_LADDER}
    rung = dict(TINY_LADDER["rungs"][0])  # type: ignore[index]

    def ladder_with(**changes: Any) -> bytes:
        return j({"source": EMPTY, "ladder": {"name": "l", "rungs": [{**rung, **changes}]}})

    cases = [
        Case("5,000-digit number", "POST", "/", 400, HUGE_NUMBER, "body"),
        Case("JSON nested 50,000 deep", "POST", "/", 400, DEEP, "body"),
        Case("NaN", "POST", "/", 400, b'{"source": NaN}', "body"),
        Case("Infinity", "POST", "/", 400, b'{"source": "x", "segment_seconds": Infinity}', "body"),
        Case("not JSON", "POST", "/", 400, b"{nope", "body"),
        Case("a JSON array", "POST", "/", 400, b"[1, 2]", "body"),
        Case("not UTF-8", "POST", "/", 400, b'{"source": "\xff\xfe"}', "body"),
        Case("no source", "POST", "/", 400, b"{}", "source"),
        Case("source not a CID", "POST", "/", 400, j({"source": "not-a-cid"}), "source"),
        Case("source a 4,000-digit int", "POST", "/", 400, b'{"source": ' + b"7" * 4000 + b"}",
             "source"),
        Case("unknown field", "POST", "/", 400, j({**submit, "evil": 1}), "evil"),
        Case("backslash callback (parser differential)", "POST", "/", 400,
             j({**submit, "callback_url": "http://127.0.0.1:9\\@1.1.1.1/hook"}), "callback_url"),
        Case("userinfo callback", "POST", "/", 400,
             j({**submit, "callback_url": "http://a:b@hooks.example.com/"}), "callback_url"),
        Case("short-form IPv4 callback", "POST", "/", 400,
             j({**submit, "callback_url": "http://127.1/hook"}), "callback_url"),
        Case("decimal IPv4 callback", "POST", "/", 400,
             j({**submit, "callback_url": "http://2130706433/hook"}), "callback_url"),
        Case("file: callback", "POST", "/", 400, j({**submit, "callback_url": "file:///etc"}),
             "callback_url"),
        Case("loopback callback", "POST", "/", 403,
             j({**submit, "callback_url": "http://127.0.0.1:9/hook"}), error="Forbidden"),
        Case("metadata endpoint callback", "POST", "/", 403,
             j({**submit, "callback_url": "http://169.254.169.254/latest"}), error="Forbidden"),
        Case("NAT64 loopback callback", "POST", "/", 403,
             j({**submit, "callback_url": "http://[64:ff9b::7f00:1]/hook"}), error="Forbidden"),
        Case("rung name with a newline", "POST", "/", 400, ladder_with(name="90p\n"),
             "rungs[0].name"),
        Case("rung name ../x", "POST", "/", 400, ladder_with(name="../x"), "rungs[0].name"),
        Case("ladder name ../../etc", "POST", "/", 400,
             j({"source": EMPTY, "ladder": {"name": "../../etc", "rungs": [rung]}}), "ladder.name"),
        Case("ladder not an object", "POST", "/", 400, j({"source": EMPTY, "ladder": [1]}),
             "ladder"),
        Case("unknown profile", "POST", "/", 400, j({"source": EMPTY, "profile": "../x"}),
             "profile"),
        Case("metadata not an object", "POST", "/", 400, j({**submit, "metadata": [1]}),
             "metadata"),
        Case("outputs_expire_in huge", "POST", "/", 400,
             j({**submit, "outputs_expire_in": 10**30}), "outputs_expire_in"),
        Case("cursor 10**30", "GET", "/jobs?cursor=" + str(10**30), 400, field="cursor"),
        Case("garbage cursor", "GET", "/jobs?cursor=abc", 400, field="cursor"),
        Case("negative cursor", "GET", "/jobs?cursor=-5", 400, field="cursor"),
        Case("non-ASCII digit cursor", "GET", "/jobs?cursor=%D9%A3", 400, field="cursor"),
        Case("limit 0", "GET", "/jobs?limit=0", 400, field="limit"),
        Case("limit 10**6", "GET", "/jobs?limit=1000000", 400, field="limit"),
        Case("unknown job", "GET", "/jobs/../../etc", 404, error="NotFound"),
        Case("unknown job id", "DELETE", "/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV", 404,
             error="NotFound"),
        Case("no bearer token", "GET", "/jobs", 401, token=False, error="Unauthorized"),
        Case("no route", "POST", "/nope", 404, error="NotFound"),
        Case("body over the cap", "POST", "/", 413, b"x" * ((1 << 20) + 1),
             error="PayloadTooLarge"),
        Case("segment_seconds 1/0", "POST", "/", 400,
             j({"source": text_cid, "segment_seconds": "1/0"}), "segment_seconds"),
    ]  # fmt: skip
    for case in cases:
        case.path = "/function/orchestrate" + case.path
    return cases


def stage_cases(text_cid: str, raw_plan: str, not_a_plan: str, bad_pages: str,
                bad_names: str) -> list[Case]:  # fmt: skip
    cases: list[Case] = []
    for stage in STAGES:
        path = f"/function/{stage}"
        good = j({CID_FIELD[stage]: EMPTY})
        cases += [
            Case(f"{stage}: unsigned", "POST", path, 401, good, error="Unauthorized", token=False),
            Case(f"{stage}: unsigned async", "POST", f"/async-function/{stage}", 202, good,
                 token=False),  # queued; the function refuses it (checked below)
            Case(f"{stage}: 5,000-digit number", "POST", path, 400, HUGE_NUMBER, "body",
                 signed=True, token=False),
            Case(f"{stage}: nested 50,000 deep", "POST", path, 400, DEEP, "body", signed=True,
                 token=False),
            Case(f"{stage}: no input CID", "POST", path, 400, b"{}", CID_FIELD[stage],
                 signed=True, token=False),
        ]  # fmt: skip
    ladder = {"name": "l", "rungs": [{**TINY_LADDER["rungs"][0], "name": "90p\n"}]}  # type: ignore[index]
    cases += [
        Case("checksum: rendition key ../../x", "POST", "/function/checksum", 400,
             j({"segment": EMPTY, "renditions": {"../../x": EMPTY}}), "renditions"),
        Case("checksum: absolute rendition key", "POST", "/function/checksum", 400,
             j({"segment": EMPTY, "renditions": {"/tmp/kinoit-owned": EMPTY}}), "renditions"),
        Case("checksum: rendition key with a newline", "POST", "/function/checksum", 400,
             j({"segment": EMPTY, "renditions": {"360p\n": EMPTY}}), "renditions"),
        Case("transcode: hints on a segment that is not a video", "POST",
             "/function/transcode-segment", 400,
             j({"segment": text_cid, "ladder": TINY_LADDER, "fps": "25/1", "frames": 25,
                "width": 160, "height": 90}), error="NotAVideo"),
        Case("transcode: fps abc", "POST", "/function/transcode-segment", 400,
             j({"segment": EMPTY, "ladder": TINY_LADDER, "fps": "abc"}), "fps"),
        Case("transcode: rung name with a newline", "POST", "/function/transcode-segment", 400,
             j({"segment": EMPTY, "ladder": ladder}), "rungs[0].name"),
        Case("split: a text file", "POST", "/function/split", 400, j({"source": text_cid}),
             error="NotAVideo"),
        Case("thumbnail: a text file", "POST", "/function/thumbnail", 400,
             j({"segment": text_cid}), error="NotAVideo"),
        Case("merge: plan is a raw file", "POST", "/function/merge", 400,
             j({"plan": raw_plan}), "plan"),
        Case("merge: plan is a map that is not a plan", "POST", "/function/merge", 400,
             j({"plan": not_a_plan}), "plan.ladder"),
        Case("merge: pages that are not pages", "POST", "/function/merge", 400,
             j({"plan": bad_pages}), "plan.pages[0]"),
        Case("merge: rendition key ../x in the plan", "POST", "/function/merge", 400,
             j({"plan": bad_names}), "plan.segments[0].renditions"),
    ]  # fmt: skip
    for case in cases[-12:]:
        case.signed, case.token = True, False
    return cases


def send(dev: Dev, case: Case, callback_url: str = "") -> requests.Response:
    headers: dict[str, str] = {}
    if case.token:
        headers["Authorization"] = f"Bearer {API_TOKEN}"
    if case.signed:
        headers.update(signed_headers(case.body, KEY, callback_url))
    elif callback_url:
        headers["X-Callback-Url"] = callback_url
    return requests.request(
        case.method, dev.url + case.path, data=case.body, headers=headers, timeout=60
    )


def check(case: Case, response: requests.Response) -> str | None:
    """What is wrong with the answer to ``case`` (None when it is the right refusal)."""
    if response.status_code != case.status:
        return f"HTTP {response.status_code}, expected {case.status}: {response.text[:300]}"
    if "Traceback" in response.text or "<html" in response.text.lower():
        return f"a traceback or an HTML page: {response.text[:300]}"
    if case.status == 202:
        return None
    try:
        reply = response.json()
    except ValueError:
        return f"not JSON: {response.text[:300]}"
    if case.field is not None and reply.get("field") != case.field:
        return f"field {reply.get('field')!r}, expected {case.field!r}: {reply}"
    if case.error is not None and reply.get("error") != case.error:
        return f"error {reply.get('error')!r}, expected {case.error!r}: {reply}"
    if case.status < 500 and reply.get("retryable"):
        return f"a refusal marked retryable: {reply}"
    return None


def test_catalogue_of_hostile_requests_is_refused_with_specific_4xx(
    hostile_dev: Dev, tmp_path: Path
) -> None:
    dev = hostile_dev
    store = dev.store()
    assert store.add_bytes(b"", pin=True) == EMPTY
    text_cid = store.add_bytes(b"hello, this is a text file, not a video\n" * 200, pin=True)
    raw_plan = store.add_bytes(b"\x00" * 64, pin=True)
    not_a_plan = store.dag_put({"x": 1}, pin=True)
    from kinoit.store.cid import CID

    source = {"fps": "25/1", "width": 160, "height": 90}
    bad_pages = store.dag_put(
        {"ladder": TINY_LADDER, "source": source, "audio": None,
         "pages": [CID.parse(not_a_plan)]}, pin=True,
    )  # fmt: skip
    entry = {"index": 0, "start_frame": 0, "end_frame": 25,
             "renditions": {"../x": CID.parse(EMPTY)}}  # fmt: skip
    bad_names = store.dag_put(
        {"ladder": TINY_LADDER, "source": source, "audio": None,
         "pages": [CID.parse(store.dag_put([entry], pin=True))]}, pin=True,
    )  # fmt: skip
    cases = orchestrate_cases(text_cid) + stage_cases(
        text_cid, raw_plan, not_a_plan, bad_pages, bad_names
    )
    with serve_receiver() as receiver:
        failures = {}
        for case in cases:
            callback = receiver.url if case.status == 202 else ""
            problem = check(case, send(dev, case, callback))
            if problem:
                failures[case.name] = problem
        assert failures == {}
        # each unsigned async call was refused by its function (401) before any work
        refused = [receiver.received.get(timeout=120) for _ in STAGES]
    assert [h.headers.get("x-function-status") for h in refused] == ["401"] * len(STAGES)
    assert all(json.loads(h.body)["error"] == "Unauthorized" for h in refused)
    refusals = [c for c in cases if 400 <= c.status < 500]
    assert len(refusals) >= 60, len(refusals)
    assert dev.call("GET", "/jobs").json()["jobs"] == []  # none of them made a job


def test_callbacks_with_bad_tokens_headers_or_results_are_refused_or_fail_the_task(
    hostile_dev: Dev,
) -> None:
    from kinoit.config import load_settings
    from kinoit.jobs import callback_secret, callback_token

    dev = hostile_dev
    job_id = dev.submit(dev.store().add_bytes(b"not looked at: split sleeps", pin=True))
    secret = callback_secret(load_settings({"KINOIT_SECRETS_DIR": dev.env["KINOIT_SECRETS_DIR"]}))
    token = callback_token(secret, job_id, "split", 1)
    path = f"/callback/{job_id}/split/1"
    ok = {"X-Function-Status": "200", "X-Call-Id": "c"}
    forged = dev.call("POST", f"{path}?token={'A' * 43}", token=None, headers=ok, data=b"{}")
    assert forged.status_code == 403 and forged.json()["error"] == "Forbidden"
    status = dev.call(
        "POST", f"{path}?token={token}", token=None,
        headers={**ok, "X-Function-Status": "abc"}, data=b"{}",
    )  # fmt: skip
    assert status.status_code == 400 and status.json()["field"] == "X-Function-Status"
    no_route = dev.call("POST", f"/callback/{job_id}/split/99999999?token={token}", token=None)
    assert no_route.status_code == 401  # not a callback route: the API's token is required
    huge = dev.call("POST", f"{path}?token={token}", token=None, headers=ok, data=HUGE_NUMBER)
    assert huge.status_code == 200 and huge.json()["status"] == "job_failed", huge.text
    job = dev.wait_state(job_id, {"failed"}, timeout=60)
    assert "malformed result" in job["error"] and "result" in job["error"]


def test_a_validly_signed_callback_with_a_malformed_result_fails_the_job_with_a_reason(
    hostile_dev: Dev,
) -> None:
    from kinoit.config import load_settings
    from kinoit.jobs import callback_secret, callback_token

    dev = hostile_dev
    job_id = dev.submit(dev.store().add_bytes(b"another source; split sleeps", pin=True))
    secret = callback_secret(load_settings({"KINOIT_SECRETS_DIR": dev.env["KINOIT_SECRETS_DIR"]}))
    token = callback_token(secret, job_id, "split", 1)
    bad = {"index": "not-a-cid", "source": {"fps": "25/1", "width": 160, "height": 90}}
    reply = dev.call(
        "POST", f"/callback/{job_id}/split/1?token={token}", token=None,
        headers={"X-Function-Status": "200", "X-Call-Id": "c"}, json=bad,
    )  # fmt: skip
    assert reply.status_code == 200 and reply.json()["status"] == "job_failed", reply.text
    job = dev.wait_state(job_id, {"failed"}, timeout=60)
    assert "result.index" in job["error"]
