"""Unit tests of the split handler (python3-http style)."""

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

_spec = importlib.util.spec_from_file_location(
    "split_handler", Path(__file__).with_name("handler.py")
)
assert _spec is not None and _spec.loader is not None
handler = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(handler)


def event(body: bytes, method: str = "POST") -> Any:
    return SimpleNamespace(body=body, headers={}, method=method, query={}, path="/")


def test_rejects_other_methods() -> None:
    _, status, headers = handler.handle(event(b"", "GET"), None)
    assert status == 405 and headers["Content-Type"] == "application/json"


def test_invalid_json_is_400_naming_the_body() -> None:
    body, status, _ = handler.handle(event(b"{nope"), None)
    assert status == 400 and json.loads(body)["field"] == "body"


def test_missing_input_cid_is_400_naming_the_field() -> None:
    body, status, _ = handler.handle(event(b"{}"), None)
    reply = json.loads(body)
    assert status == 400 and reply["field"] == "source" and reply["retryable"] is False


def test_bad_cid_is_400() -> None:
    body, status, _ = handler.handle(event(json.dumps({"source": "not-a-cid"}).encode()), None)
    assert status == 400 and json.loads(body)["field"] == "source"
