"""orchestrate-tick relays the cron-connector's call as an authenticated /tick."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest


def _load_handler() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "orchestrate_tick_handler", Path(__file__).with_name("handler.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


handler = _load_handler()


class _Gateway(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str | None]] = []
    status = 200

    def do_POST(self) -> None:
        type(self).seen.append(("POST", self.path, self.headers.get("Authorization")))
        body = json.dumps({"redispatched": 2}).encode()
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def secrets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty secrets dir and home; no KINOIT_* leaks in from outside."""
    for key in [k for k in os.environ if k.startswith("KINOIT_")]:
        monkeypatch.delenv(key)
    (tmp_path / "secrets").mkdir()
    monkeypatch.setenv("KINOIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KINOIT_SECRETS_DIR", str(tmp_path / "secrets"))
    return tmp_path / "secrets"


@pytest.fixture
def gateway(secrets_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Gateway]]:
    _Gateway.seen = []
    _Gateway.status = 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("KINOIT_GATEWAY_URL", f"http://127.0.0.1:{server.server_address[1]}/")
    monkeypatch.setenv("KINOIT_HTTP_TIMEOUT_SECONDS", "5")
    try:
        yield _Gateway
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _cron_event() -> SimpleNamespace:
    headers = {"X-Topic": "cron-function", "X-Connector": "cron-connector"}
    return SimpleNamespace(body=b"", headers=headers, method="POST", query={}, path="/")


def _write_token(secrets: Path, token: str) -> None:
    (secrets / "kinoit-api-token").write_text(token + "\n")


def test_tick_posts_to_orchestrate_with_the_api_token(
    gateway: type[_Gateway], secrets_dir: Path
) -> None:
    _write_token(secrets_dir, "s3cret")
    body, status, headers = handler.handle(_cron_event(), None)
    assert status == 200
    assert json.loads(body) == {"redispatched": 2}
    assert headers["Content-Type"] == "application/json"
    assert gateway.seen == [("POST", "/function/orchestrate/tick", "Bearer s3cret")]


def test_orchestrate_refusal_is_passed_through(gateway: type[_Gateway], secrets_dir: Path) -> None:
    _write_token(secrets_dir, "wrong")
    gateway.status = 401
    _, status, _ = handler.handle(_cron_event(), None)
    assert status == 401


def test_missing_token_fails_without_calling_orchestrate(gateway: type[_Gateway]) -> None:
    body, status, _ = handler.handle(_cron_event(), None)
    assert status == 500
    assert "kinoit-api-token" in json.loads(body)["message"]
    assert gateway.seen == []


def test_unreachable_gateway_is_a_retryable_503(
    secrets_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_token(secrets_dir, "s3cret")
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("KINOIT_GATEWAY_URL", f"http://127.0.0.1:{port}")
    body, status, _ = handler.handle(_cron_event(), None)
    assert status == 503
    assert json.loads(body)["retryable"] is True
