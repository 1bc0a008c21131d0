"""The python3-http result conventions (pure)."""

from __future__ import annotations

import json

from flask import Response
from kinoit.local.event import format_response, make_event


def test_tuple_with_json_string_keeps_status_and_headers() -> None:
    result = format_response(('{"a":1}', 202, {"Content-Type": "application/json"}))
    assert (result.body, result.status) == (b'{"a":1}', 202)
    assert result.headers["Content-Type"] == "application/json"


def test_dict_result_uses_status_code_and_encodes_dict_bodies_as_json() -> None:
    result = format_response({"statusCode": 201, "body": {"x": [1]}})
    assert result.status == 201 and json.loads(result.body) == {"x": [1]}
    assert result.headers["Content-Type"] == "application/json"


def test_bytes_pass_through_unchanged() -> None:
    assert format_response((b"\x00\xff", 200)).body == b"\x00\xff"


def test_none_is_an_empty_200() -> None:
    result = format_response(None)
    assert (result.body, result.status) == (b"", 200)


def test_flask_response_is_unwrapped() -> None:
    result = format_response(Response(b"cbor", status=200, mimetype="application/cbor"))
    assert result.body == b"cbor" and result.headers["Content-Type"] == "application/cbor"


def test_event_headers_are_case_insensitive() -> None:
    event = make_event(b"{}", headers={"X-Callback-Url": "http://x"}, method="post")
    assert event.headers["x-callback-url"] == "http://x" and event.method == "POST"
