"""A tiny scripted HTTP server on loopback, for answers a real peer will not give on demand."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes


@dataclass
class Answer:
    status: int = 200
    body: bytes | dict[str, object] | list[object] = b""
    lines: list[dict[str, object]] = field(default_factory=list)


Responder = Callable[[Request], Answer]


@dataclass
class FakeServer:
    url: str
    requests: list[Request]


@contextmanager
def fake_server(respond: Responder) -> Iterator[FakeServer]:
    """Serve ``respond(request)`` for every request until the block ends."""
    seen: list[Request] = []

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = bytearray()
                while True:
                    size = int(self.rfile.readline().strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    body += self.rfile.read(size)
                    self.rfile.readline()
                raw = bytes(body)
            else:
                raw = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            request = Request(self.command, parts.path, parse_qs(parts.query), raw)
            seen.append(request)
            answer = respond(request)
            if answer.lines:
                payload = b"".join(json.dumps(line).encode() + b"\n" for line in answer.lines)
            elif isinstance(answer.body, bytes):
                payload = answer.body
            else:
                payload = json.dumps(answer.body).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _handle

        def log_message(self, format: str, *args: object) -> None:
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakeServer(f"http://127.0.0.1:{server.server_address[1]}", seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
