"""The local gateway: the OpenFaaS routes, served by one Flask app.

- ``/function/<name>[/<path>]``: a synchronous call of the handler.
- ``POST /async-function/<name>[/<path>]``: ``202`` with ``X-Call-Id``; the call is
  queued on RQ and a worker POSTs the result to ``X-Callback-Url``.

Request bodies are capped here (``KINOIT_MAX_BODY_BYTES``; async calls also at the CE
queue's limit): a larger body is a ``413`` with a JSON error, and the app holds at
most the cap plus one read of it, chunked bodies included. (The werkzeug server of
``kinoit dev`` then reads and discards the unsent rest before it closes the
connection, so that the client sees the 413 rather than a reset.)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Flask, Response, request

from kinoit.config import DEFAULT_MAX_BODY_BYTES
from kinoit.errors import KinoitError, PayloadTooLarge
from kinoit.local.event import Context, format_response, make_event
from kinoit.local.functions import handler_path, load_handler
from kinoit.local.worker import VERIFY_FUNCTIONS, perform_async_call

# The OpenFaaS CE queue rejects larger async request bodies; so do we, to catch it locally.
MAX_ASYNC_BODY_BYTES = 256_000
# An async call may run as long as one ffmpeg stage is allowed to.
ASYNC_JOB_TIMEOUT_SECONDS = 3600
# Request bodies are read in pieces of at most this many bytes.
READ_CHUNK_BYTES = 64 * 1024
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def _error(exc: KinoitError) -> Response:
    return Response(
        response=json.dumps(exc.to_dict()),
        status=exc.http_status,
        mimetype="application/json",
    )


def read_capped_body(stream: Any, content_length: int | None, limit: int) -> bytes:
    """The request body, or PayloadTooLarge as soon as it is known to exceed ``limit``
    bytes: from the declared length before reading anything, else after reading at most
    ``limit + 1`` bytes (a chunked body has no declared length)."""
    if content_length is not None and content_length > limit:
        raise PayloadTooLarge(f"request body of {content_length} bytes exceeds {limit}")
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(min(READ_CHUNK_BYTES, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise PayloadTooLarge(f"request body exceeds {limit} bytes")
    return b"".join(chunks)


def create_gateway_app(
    functions_dir: Path,
    queue: Any,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    verify_queue: Any = None,
) -> Flask:
    """A Flask app serving the handlers in ``functions_dir``; async calls go to ``queue``,
    those of the verification functions to ``verify_queue`` when given (the lane the
    workers empty first, see :data:`kinoit.local.worker.VERIFY_QUEUE`); bodies over
    ``max_body_bytes`` are refused with 413."""
    app = Flask("kinoit-gateway")
    app.url_map.strict_slashes = False

    @app.route("/healthz")
    def healthz() -> Response:
        return Response("OK", status=200)

    @app.route("/function/<name>", methods=_METHODS, defaults={"rest": ""})
    @app.route("/function/<name>/<path:rest>", methods=_METHODS)
    def sync_call(name: str, rest: str) -> Response:
        try:
            handle = load_handler(functions_dir, name)
            body = read_capped_body(request.stream, request.content_length, max_body_bytes)
        except KinoitError as exc:
            return _error(exc)
        event = make_event(
            body,
            headers=dict(request.headers.items()),
            method=request.method,
            query=request.args.to_dict(),
            path="/" + rest,
        )
        answer = handle(event, Context())
        if isinstance(answer, tuple) and answer and isinstance(answer[0], Iterator):
            # a streamed body (the /ipfs/ gateway): passed through, as Flask does in the image
            return Response(answer[0], status=answer[1], headers=answer[2])
        result = format_response(answer)
        return Response(result.body, status=result.status, headers=result.headers)

    @app.route("/async-function/<name>", methods=["POST"], defaults={"rest": ""})
    @app.route("/async-function/<name>/<path:rest>", methods=["POST"])
    def async_call(name: str, rest: str) -> Response:
        try:
            handler_path(functions_dir, name)
            limit = min(max_body_bytes, MAX_ASYNC_BODY_BYTES)
            body = read_capped_body(request.stream, request.content_length, limit)
        except KinoitError as exc:
            return _error(exc)
        call_id = str(uuid.uuid4())
        headers = dict(request.headers.items())
        headers["X-Call-Id"] = call_id
        call = {
            "function": name,
            "call_id": call_id,
            "callback_url": request.headers.get("X-Callback-Url"),
            "body": body,
            "headers": headers,
            "method": "POST",
            "query": request.args.to_dict(),
            "path": "/" + rest,
        }
        lane = verify_queue if verify_queue is not None and name in VERIFY_FUNCTIONS else queue
        lane.enqueue(
            perform_async_call,
            call,
            job_timeout=ASYNC_JOB_TIMEOUT_SECONDS,
            result_ttl=60,
            failure_ttl=3600,
        )
        return Response(b"", status=202, headers={"X-Call-Id": call_id})

    return app
