"""`kinoit dev`'s gateway caps request bodies itself, over real HTTP: a chunked body
that does not end is answered 413 once it passes KINOIT_MAX_BODY_BYTES."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import Dev

pytestmark = [pytest.mark.redis]

CAP = 4096


def post_unending_chunked_body(url: str, path: str, send_bytes: int) -> tuple[int, dict[str, str]]:
    """Send headers and ``send_bytes`` of a chunked body that is never terminated; return
    the status and JSON reply (the socket times out if the server waits for the end)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"x" * 1024
        sock.sendall(head.encode() + (b"400\r\n" + chunk + b"\r\n") * (send_bytes // 1024))
        reply = b""
        while not complete(reply):  # the server then drains the rest, so no EOF: stop here
            data = sock.recv(65536)
            assert data, f"connection closed before a full reply: {reply!r}"
            reply += data
    head_text, _, body = reply.partition(b"\r\n\r\n")
    return int(head_text.split(b" ", 2)[1]), json.loads(body)


def complete(reply: bytes) -> bool:
    """Whether ``reply`` holds a whole response with a Content-Length body."""
    head, sep, body = reply.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def test_the_gateway_refuses_an_unending_body_past_the_cap(dev_factory: Callable[..., Dev]) -> None:
    dev = dev_factory(workers=1, KINOIT_MAX_BODY_BYTES=str(CAP))
    for path in ("/function/split", "/async-function/split"):
        status, reply = post_unending_chunked_body(dev.url, path, 2 * CAP)
        assert status == 413, path
        assert reply["error"] == "PayloadTooLarge" and str(CAP) in reply["message"]
