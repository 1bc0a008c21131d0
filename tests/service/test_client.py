"""The orchestrate client's HTTP: kept connections, no proxy for loopback calls."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests
from kinoit.service.client import is_loopback_url, loopback_session, session_for
from werkzeug.serving import make_server


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8080/function/orchestrate", True),
        ("http://127.9.9.9/", True),
        ("http://localhost:31112", True),
        ("http://[::1]:8080/", True),
        ("http://gateway.openfaas:8080/", False),
        ("http://10.0.0.5/", False),
        ("https://example.org/hook", False),
        ("not a url", False),
    ],
)
def test_loopback_urls_are_told_from_others(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback
    assert session_for(url).trust_env is (not loopback)


@pytest.fixture
def local_url() -> Iterator[str]:
    def app(environ: dict[str, object], start: object) -> list[bytes]:
        start("200 OK", [("Content-Length", "2")])  # type: ignore[operator]
        return [b"ok"]

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


def test_a_loopback_call_ignores_a_proxy_the_environment_names(
    local_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A user's shell with a proxy set (and no NO_PROXY) must not send kinoit's own
    # calls to this machine through it; a nowhere proxy proves which way they went.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(requests.exceptions.ProxyError):
        requests.Session().get(local_url, timeout=5)
    assert loopback_session().get(local_url, timeout=5).text == "ok"
