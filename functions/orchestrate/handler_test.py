"""Unit tests of the orchestrate handler: the event becomes an HttpRequest, errors map
to statuses. The service itself is tested against Redis in tests/service."""

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from kinoit.errors import Unauthorized

_spec = importlib.util.spec_from_file_location(
    "orchestrate_handler", Path(__file__).with_name("handler.py")
)
assert _spec is not None and _spec.loader is not None
handler = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(handler)


class RecordingService:
    def __init__(self, error: Exception | None = None) -> None:
        self.requests: list[Any] = []
        self.error = error

    def handle(self, request: Any) -> Any:
        self.requests.append(request)
        if self.error:
            raise self.error
        return json.dumps({"ok": True}), 202, {"Content-Type": "application/json"}


def event(**fields: Any) -> Any:
    base = {"body": b"{}", "headers": {}, "method": "POST", "query": {}, "path": "/"}
    return SimpleNamespace(**{**base, **fields})


def test_request_fields_reach_the_service(monkeypatch: Any) -> None:
    service = RecordingService()
    monkeypatch.setattr(handler, "get_service", lambda: service)
    reply = handler.handle(
        event(
            headers={"Authorization": "Bearer t"},
            method="get",
            path="/jobs/X",
            query={"limit": "5"},
        ),
        None,
    )
    assert reply[1] == 202
    request = service.requests[0]
    assert request.headers["authorization"] == "Bearer t"
    assert (request.method, request.path, request.query) == ("get", "/jobs/X", {"limit": "5"})


def test_kinoit_errors_become_json_with_their_status(monkeypatch: Any) -> None:
    monkeypatch.setattr(handler, "get_service", lambda: RecordingService(Unauthorized("no")))
    body, status, _ = handler.handle(event(), None)
    assert status == 401 and json.loads(body)["error"] == "Unauthorized"


def test_missing_redis_configuration_is_a_clear_error(monkeypatch: Any) -> None:
    from kinoit import service

    monkeypatch.delenv("KINOIT_REDIS_URL", raising=False)
    service.reset_service()
    body, status, _ = handler.handle(event(), None)
    reply = json.loads(body)
    # the deployment's fault, not the caller's: a 500, never a 4xx
    assert status == 500 and reply["error"] == "ConfigurationError"
    assert "KINOIT_REDIS_URL" in reply["message"]
    service.reset_service()
