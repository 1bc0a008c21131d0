"""The local gateway's routes, with handlers from a temporary functions folder."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from kinoit.errors import NotFound
from kinoit.local.app import MAX_ASYNC_BODY_BYTES, create_gateway_app
from kinoit.local.functions import handler_path, load_handler
from werkzeug.test import EnvironBuilder, run_wsgi_app

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
    assert reply.get_json()["error"] == "PayloadTooLarge"


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
    from kinoit.local.functions import find_functions_dir

    found = find_functions_dir(load_settings({}))
    for name in ("split", "transcode-segment", "thumbnail", "checksum", "merge", "orchestrate"):
        assert handler_path(found, name).is_file()


class EndlessBody(io.RawIOBase):
    """A chunked request body that never ends; counts what the gateway read."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        view[:] = b"x" * len(view)
        self.read_bytes += len(view)
        return len(view)


CAP = 4096


def test_sync_body_over_the_cap_is_413_json_and_the_handler_is_not_called(
    functions_dir: Path,
) -> None:
    client = create_gateway_app(functions_dir, RecordingQueue(), CAP).test_client()
    reply = client.post("/function/echo", data=b"x" * (CAP + 1))
    assert reply.status_code == 413 and reply.mimetype == "application/json"
    assert (
        reply.get_json()["error"] == "PayloadTooLarge" and str(CAP) in reply.get_json()["message"]
    )
    assert client.post("/function/echo", data=b"x" * CAP).get_json()["body"] == "x" * CAP


def test_a_chunked_body_is_cut_off_after_the_cap(functions_dir: Path) -> None:
    """No declared length: the gateway reads no more than the cap (and one read) of it."""
    for route in ("/function/echo", "/async-function/echo"):
        queue = RecordingQueue()
        app = create_gateway_app(functions_dir, queue, CAP)
        body = EndlessBody()
        environ = EnvironBuilder(path=route, method="POST").get_environ()
        environ.pop("CONTENT_LENGTH", None)
        environ.update({"wsgi.input": body, "wsgi.input_terminated": True})
        app_iter, status, headers = run_wsgi_app(app, environ)
        reply = json.loads(b"".join(app_iter))
        assert status.startswith("413"), route
        assert reply["error"] == "PayloadTooLarge" and headers["Content-Type"] == "application/json"
        assert CAP < body.read_bytes <= CAP + 64 * 1024, route
        assert not queue.jobs


def test_async_body_over_the_configured_cap_is_413_json(functions_dir: Path) -> None:
    queue = RecordingQueue()
    client = create_gateway_app(functions_dir, queue, CAP).test_client()
    reply = client.post("/async-function/echo", data=b"x" * (CAP + 1))
    assert reply.status_code == 413 and reply.get_json()["error"] == "PayloadTooLarge"
    assert client.post("/async-function/echo", data=b"x" * CAP).status_code == 202
    assert len(queue.jobs) == 1


def test_checksum_calls_take_the_verification_lane(tmp_path: Path) -> None:
    from kinoit.local.worker import ASYNC_QUEUE, VERIFY_QUEUE, queue_name

    for name in ("checksum", "transcode-segment"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "handler.py").write_text(ECHO)
    plain, verify = RecordingQueue(), RecordingQueue()
    client = create_gateway_app(tmp_path, plain, verify_queue=verify).test_client()
    assert client.post("/async-function/transcode-segment", data=b"{}").status_code == 202
    assert client.post("/async-function/checksum", data=b"{}").status_code == 202
    assert [args[0]["function"] for _, args, _ in plain.jobs] == ["transcode-segment"]
    assert [args[0]["function"] for _, args, _ in verify.jobs] == ["checksum"]
    assert (queue_name("checksum"), queue_name("split")) == (VERIFY_QUEUE, ASYNC_QUEUE)
