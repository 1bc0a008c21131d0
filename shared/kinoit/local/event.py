"""The python3-http calling convention: the event and context a handler receives,
and how its return value becomes an HTTP response.

This mirrors the OpenFaaS ``python3-http`` template so that the local gateway and
the function images run the same handler code the same way.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import Headers

# A handler result: a dict {statusCode, body, headers}, a tuple, a Flask Response, or None.
HandlerResult = Any


@dataclass
class Event:
    """What ``handle(event, context)`` receives (same attribute names as the template)."""

    body: bytes
    headers: Headers
    method: str = "POST"
    query: Mapping[str, str] = field(default_factory=dict)
    path: str = "/"


@dataclass
class Context:
    """The template's context: only the host name."""

    hostname: str = field(default_factory=socket.gethostname)


def make_event(
    body: bytes = b"",
    *,
    headers: Mapping[str, str] | None = None,
    method: str = "POST",
    query: Mapping[str, str] | None = None,
    path: str = "/",
) -> Event:
    """Build an event the way the template does from a request."""
    return Event(
        body=body,
        headers=Headers(list((headers or {}).items())),
        method=method.upper(),
        query=dict(query or {}),
        path=path or "/",
    )


@dataclass(frozen=True)
class FunctionResponse:
    """A handler result reduced to bytes, a status and headers."""

    body: bytes
    status: int
    headers: dict[str, str]


def _encode_body(body: Any) -> tuple[bytes, str | None]:
    if body is None:
        return b"", None
    if isinstance(body, bytes | bytearray):
        return bytes(body), None
    if isinstance(body, dict | list):
        return json.dumps(body).encode(), "application/json"
    return str(body).encode(), None


def format_response(result: HandlerResult) -> FunctionResponse:
    """Reduce any result the template accepts to a :class:`FunctionResponse`."""
    if result is None:
        return FunctionResponse(b"", 200, {})
    if hasattr(result, "get_data") and hasattr(result, "status_code"):  # a Flask Response
        return FunctionResponse(
            bytes(result.get_data()), int(result.status_code), dict(result.headers.items())
        )
    if isinstance(result, dict):
        status = int(result.get("statusCode", 200))
        headers = {str(k): str(v) for k, v in dict(result.get("headers") or {}).items()}
        body, content_type = _encode_body(result.get("body"))
        if content_type and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = content_type
        return FunctionResponse(body, status, headers)
    if isinstance(result, tuple):
        body_part = result[0] if result else b""
        status = int(result[1]) if len(result) > 1 else 200
        headers = {str(k): str(v) for k, v in dict(result[2] if len(result) > 2 else {}).items()}
        body, content_type = _encode_body(body_part)
        if content_type and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = content_type
        return FunctionResponse(body, status, headers)
    body, content_type = _encode_body(result)
    return FunctionResponse(body, 200, {"Content-Type": content_type} if content_type else {})
