"""What every handler does around its one library call: read JSON, reply JSON,
turn kinoit errors into status codes.

Handlers follow the python3-http template, so replies are ``(body, status,
headers)`` tuples, which the template passes to Flask unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from kinoit.config import Settings, load_settings
from kinoit.errors import (
    ConfigurationError,
    InputError,
    InvalidParameter,
    KinoitError,
    PayloadTooLarge,
)
from kinoit.stages.signing import stage_key, verify_stage_request

# The body is text (JSON, playlists) or bytes (media segments).
Reply = tuple[str | bytes, int, dict[str, str]]
JSON_HEADERS = {"Content-Type": "application/json"}


def event_body(event: Any, max_bytes: int) -> bytes:
    """The event body as bytes; 413 over ``max_bytes``."""
    body = event.body if isinstance(event.body, bytes | bytearray) else str(event.body).encode()
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"request body of {len(body)} bytes exceeds {max_bytes}")
    return bytes(body)


# JSON documents kinoit receives are shallow; deeper nesting is refused before parsing
# (the parser would recurse once per level and could exhaust the stack).
MAX_JSON_DEPTH = 64


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# One decoder for every body (json.loads with a hook would build a new one per call).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _json_depth_exceeds(raw: bytes, limit: int) -> bool:
    """True when brackets outside strings nest deeper than ``limit`` (a linear scan)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:  # the common case, at C speed
        return False
    depth, in_string, escaped = 0, False, False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def parse_json_object(raw: bytes, field: str = "body") -> dict[str, Any]:
    """``raw`` as a JSON object, or InvalidParameter naming ``field``: not UTF-8, not
    JSON, NaN/Infinity, an integer beyond Python's digit limit, nesting deeper than
    ``MAX_JSON_DEPTH``, or not an object. Never a bare ValueError or RecursionError."""
    if _json_depth_exceeds(raw, MAX_JSON_DEPTH):
        raise InvalidParameter(field, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        raw = raw or b"{}"
        value = _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidParameter(field, f"not valid JSON ({exc})") from None
    except (ValueError, RecursionError) as exc:  # e.g. a 5,000-digit integer
        raise InvalidParameter(field, f"unacceptable JSON value ({str(exc)[:120]})") from None
    if not isinstance(value, dict):
        raise InvalidParameter(field, "expected a JSON object")
    return value


def read_json(event: Any, max_bytes: int) -> dict[str, Any]:
    """The event body as a JSON object; 413 over ``max_bytes``, 400 when not an object."""
    return parse_json_object(event_body(event, max_bytes))


def json_reply(value: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
    """A JSON reply tuple."""
    return json.dumps(value, separators=(",", ":")), status, {**JSON_HEADERS, **(headers or {})}


def error_reply(exc: KinoitError) -> Reply:
    """The JSON error body and status of a kinoit error (``retryable`` included)."""
    body = exc.to_dict()
    body["retryable"] = exc.retryable
    return json_reply(body, exc.http_status)


class Stage(Protocol):
    """A stage module: ``parse_request`` (pure validation) and ``run`` (the work)."""

    def parse_request(self, body: dict[str, Any], /) -> Any: ...
    def run(self, request: Any, settings: Settings, /) -> dict[str, Any]: ...


def serve_stage(event: Any, stage: Stage) -> Reply:
    """The whole of a stage handler: POST JSON in, the stage's JSON result or a JSON
    error out (401 unless orchestrate signed it, 400/413 for bad requests, 5xx for
    failures another attempt may fix)."""
    if event.method != "POST":
        return json_reply({"error": "MethodNotAllowed", "message": "use POST"}, 405)
    try:
        try:
            settings = load_settings()
            key = stage_key(settings)
        except InputError as exc:  # the operator's to fix: not the caller's 4xx
            raise ConfigurationError(f"function is misconfigured: {exc.message}") from exc
        # Only orchestrate may call: the signature is checked before anything is parsed.
        verify_stage_request(key, event.headers, event_body(event, settings.max_body_bytes))
        request = stage.parse_request(read_json(event, settings.max_body_bytes))
        return json_reply(stage.run(request, settings))
    except KinoitError as exc:
        return error_reply(exc)
