"""The local gateway: the OpenFaaS routes, served by one Flask app.

- ``/function/<name>[/<path>]``: a synchronous call of the handler.
- ``POST /async-function/<name>[/<path>]``: ``202`` with ``X-Call-Id``; the call is
  queued on RQ and a worker POSTs the result to ``X-Callback-Url``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from flask import Flask, Response, request

from kinoit.errors import KinoitError, NotFound
from kinoit.gateway.event import Context, format_response, make_event
from kinoit.gateway.functions import handler_path, load_handler
from kinoit.gateway.worker import perform_async_call

# The OpenFaaS CE queue rejects larger async request bodies; so do we, to catch it locally.
MAX_ASYNC_BODY_BYTES = 256_000
# An async call may run as long as one ffmpeg stage is allowed to.
ASYNC_JOB_TIMEOUT_SECONDS = 3600
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def _error(exc: KinoitError) -> Response:
    return Response(
        response=json.dumps(exc.to_dict()),
        status=exc.http_status,
        mimetype="application/json",
    )


def create_gateway_app(functions_dir: Path, queue: Any) -> Flask:
    """A Flask app serving the handlers in ``functions_dir``; async calls go to ``queue``."""
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
        except KinoitError as exc:
            return _error(exc)
        event = make_event(
            request.get_data(),
            headers=dict(request.headers.items()),
            method=request.method,
            query=request.args.to_dict(),
            path="/" + rest,
        )
        result = format_response(handle(event, Context()))
        return Response(result.body, status=result.status, headers=result.headers)

    @app.route("/async-function/<name>", methods=["POST"], defaults={"rest": ""})
    @app.route("/async-function/<name>/<path:rest>", methods=["POST"])
    def async_call(name: str, rest: str) -> Response:
        try:
            handler_path(functions_dir, name)
        except NotFound as exc:
            return _error(exc)
        body = request.get_data()
        if len(body) > MAX_ASYNC_BODY_BYTES:
            return Response(
                f"async request body of {len(body)} bytes exceeds {MAX_ASYNC_BODY_BYTES}",
                status=413,
            )
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
        queue.enqueue(
            perform_async_call,
            call,
            job_timeout=ASYNC_JOB_TIMEOUT_SECONDS,
            result_ttl=60,
            failure_ttl=3600,
        )
        return Response(b"", status=202, headers={"X-Call-Id": call_id})

    return app
