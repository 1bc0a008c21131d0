"""Async calls: the handler runs and its result is POSTed back like the queue-worker does."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from kinoit.local.worker import callback_headers, perform_async_call


@pytest.fixture
def callback_server() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    got: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append(({k: v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/cb", got
    server.shutdown()
    server.server_close()


def test_result_is_posted_with_queue_worker_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, callback_server: Any
) -> None:
    url, got = callback_server
    (tmp_path / "echo").mkdir()
    (tmp_path / "echo" / "handler.py").write_text(
        "def handle(event, context):\n    return event.body.upper(), 201, {}\n"
    )
    monkeypatch.setenv("KINOIT_FUNCTIONS_DIR", str(tmp_path))
    status = perform_async_call(
        {"function": "echo", "call_id": "c-1", "callback_url": url, "body": b"abc",
         "headers": {}, "method": "POST", "query": {}, "path": "/"}
    )  # fmt: skip
    assert status == 201
    headers, body = got[0]
    assert body == b"ABC"
    assert headers["X-Call-Id"] == "c-1" and headers["X-Function-Status"] == "201"
    assert headers["X-Function-Name"] == "echo" and float(headers["X-Duration-Seconds"]) >= 0


def test_handler_crash_is_reported_as_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, callback_server: Any
) -> None:
    url, got = callback_server
    (tmp_path / "boom").mkdir()
    (tmp_path / "boom" / "handler.py").write_text(
        "def handle(event, context):\n    raise RuntimeError('kaput')\n"
    )
    monkeypatch.setenv("KINOIT_FUNCTIONS_DIR", str(tmp_path))
    status = perform_async_call({"function": "boom", "call_id": "c-2", "callback_url": url})
    assert status == 500
    assert got[0][0]["X-Function-Status"] == "500" and b"kaput" in got[0][1]


def test_callback_headers_keep_the_content_type() -> None:
    from kinoit.local.event import FunctionResponse

    headers = callback_headers(
        "f", "id", FunctionResponse(b"{}", 200, {"Content-Type": "application/json"}), 1.5
    )
    assert headers["Content-Type"] == "application/json"
    assert json.loads("{}") == {} and headers["X-Duration-Seconds"] == "1.500000"
