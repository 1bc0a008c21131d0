"""serve_stage: the one adapter every stage handler is (no binaries, no network)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kinoit.errors import InvalidParameter, StoreUnavailable
from kinoit.local.testing import CONTRACT_STAGE_SECRET, signed_headers
from kinoit.stages.http import parse_json_object, serve_stage
from kinoit.stages.signing import STAGE_SECRET_FILE


@pytest.fixture(autouse=True)
def stage_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / STAGE_SECRET_FILE).write_bytes(CONTRACT_STAGE_SECRET)
    monkeypatch.setenv("KINOIT_SECRETS_DIR", str(tmp_path))


def event(body: bytes, method: str = "POST", signed: bool = True) -> Any:
    headers = signed_headers(body) if signed else {}
    return SimpleNamespace(body=body, headers=headers, method=method, query={}, path="/")


def parse_request(body: dict[str, Any]) -> str:
    if "segment" not in body:
        raise InvalidParameter("segment", "expected a CID string")
    return str(body["segment"])


def run(request: str, settings: Any) -> dict[str, Any]:
    if request == "down":
        raise StoreUnavailable("store went away")
    return {"segment": request, "max_body_bytes": settings.max_body_bytes}


STAGE = SimpleNamespace(parse_request=parse_request, run=run)


def test_a_good_request_gets_the_stage_result() -> None:
    body, status, headers = serve_stage(event(b'{"segment": "s"}'), STAGE)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["segment"] == "s"


def test_bad_requests_are_4xx_naming_the_field_and_not_retryable() -> None:
    for raw, field in ((b"{}", "segment"), (b"[1]", "body"), (b"{nope", "body")):
        body, status, _ = serve_stage(event(raw), STAGE)
        reply = json.loads(body)
        assert (status, reply["field"], reply["retryable"]) == (400, field, False)
    assert serve_stage(event(b"", "GET"), STAGE)[1] == 405


def test_an_unavailable_store_is_a_retryable_503() -> None:
    body, status, _ = serve_stage(event(b'{"segment": "down"}'), STAGE)
    assert status == 503 and json.loads(body)["retryable"] is True


def test_a_bad_setting_is_the_deployments_500_not_the_callers_400(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KINOIT_MAX_BODY_BYTES", "lots")
    body, status, _ = serve_stage(event(b'{"segment": "s"}'), STAGE)
    reply = json.loads(body)
    assert status == 500 and reply["error"] == "ConfigurationError"
    assert "KINOIT_MAX_BODY_BYTES" in reply["message"]


def test_unsigned_requests_are_401_and_never_reach_the_stage() -> None:
    calls: list[Any] = []
    spy = SimpleNamespace(parse_request=lambda body: calls.append(body), run=run)
    body, status, _ = serve_stage(event(b'{"segment": "s"}', signed=False), spy)
    assert status == 401 and json.loads(body)["error"] == "Unauthorized"
    assert calls == []


def test_a_stage_without_its_secret_refuses_everything_as_misconfigured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("KINOIT_SECRETS_DIR", str(empty))
    body, status, _ = serve_stage(event(b'{"segment": "s"}'), STAGE)
    reply = json.loads(body)
    assert status == 500 and reply["error"] == "ConfigurationError"
    assert "kinoit-stage-secret" in reply["message"]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": ' + b"9" * 5000 + b"}",  # beyond Python's integer digit limit
        b"[" * 50_000 + b"]" * 50_000,  # would recurse 50,000 deep
        b'{"a": ' + b'{"b": ' * 65 + b"1" + b"}" * 65 + b"}",  # just over the depth cap
        b'{"a": NaN}',
        b'{"a": -Infinity}',
        b'{"a": "\xff"}',
        b"[]",
        b'"text"',
        b"{",
    ],
)
def test_hostile_json_is_a_400_naming_the_body_never_a_bare_error(raw: bytes) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_json_object(raw)
    assert info.value.field == "body"


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    text = "[" * 10_000
    assert parse_json_object(json.dumps({"a": text, "b": [[1]]}).encode())["a"] == text
