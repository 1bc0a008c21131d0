"""The local gateway's routes, with handlers from a temporary functions folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kinoit.errors import NotFound
from kinoit.gateway.app import MAX_ASYNC_BODY_BYTES, create_gateway_app
from kinoit.gateway.functions import handler_path, load_handler

ECHO = """
import json
def handle(event, context):
    return json.dumps({"path": event.path, "method": event.method, "query": dict(event.query),
                       "body": event.body.decode(), "call": event.headers.get("X-Call-Id")}), 200, {
        "Content-Type": "application/json"}
"""


class RecordingQueue:
    def __init__(self) -> None:
        self.jobs: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []

    def enqueue(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        self.jobs.append((fn, args, kwargs))


@pytest.fixture
def functions_dir(tmp_path: Path) -> Path:
    (tmp_path / "echo").mkdir()
    (tmp_path / "echo" / "handler.py").write_text(ECHO)
    return tmp_path


def test_sync_call_builds_the_event(functions_dir: Path) -> None:
    client = create_gateway_app(functions_dir, RecordingQueue()).test_client()
    reply = client.put("/function/echo/jobs/1?limit=2", data=b"hi")
    assert reply.status_code == 200
    assert reply.get_json() == {
        "path": "/jobs/1", "method": "PUT", "query": {"limit": "2"}, "body": "hi", "call": None,
    }  # fmt: skip
    assert client.post("/function/echo/").get_json()["path"] == "/"


def test_async_call_is_queued_with_a_call_id(functions_dir: Path) -> None:
    queue = RecordingQueue()
    client = create_gateway_app(functions_dir, queue).test_client()
    reply = client.post(
        "/async-function/echo", data=b'{"a":1}', headers={"X-Callback-Url": "http://cb/x"}
    )
    assert reply.status_code == 202 and reply.data == b""
    (_fn, (call,), kwargs) = queue.jobs[0]
    assert call["call_id"] == reply.headers["X-Call-Id"]
    assert call["callback_url"] == "http://cb/x" and call["body"] == b'{"a":1}'
    assert call["headers"]["X-Call-Id"] == call["call_id"]
    assert kwargs["job_timeout"] > 0


def test_async_body_over_the_queue_limit_is_413(functions_dir: Path) -> None:
    queue = RecordingQueue()
    client = create_gateway_app(functions_dir, queue).test_client()
    reply = client.post("/async-function/echo", data=b"x" * (MAX_ASYNC_BODY_BYTES + 1))
    assert reply.status_code == 413 and not queue.jobs


def test_unknown_function_is_404(functions_dir: Path) -> None:
    client = create_gateway_app(functions_dir, RecordingQueue()).test_client()
    assert client.post("/function/nope").status_code == 404
    assert client.post("/async-function/nope").status_code == 404
    assert json.loads(client.get("/function/..%2Fetc").data)["error"] == "NotFound"


def test_function_names_cannot_escape_the_folder(functions_dir: Path) -> None:
    for name in ("../echo", "Echo", "", "a/b"):
        with pytest.raises(NotFound):
            handler_path(functions_dir, name)
    assert load_handler(functions_dir, "echo") is load_handler(functions_dir, "echo")


def test_the_repository_functions_are_found() -> None:
    from kinoit.config import load_settings
    from kinoit.gateway.functions import find_functions_dir

    found = find_functions_dir(load_settings({}))
    for name in ("split", "transcode-segment", "thumbnail", "checksum", "merge", "orchestrate"):
        assert handler_path(found, name).is_file()
