"""orchestrate: the job API (submit, status, list, cancel, metrics), the callback
route the queue-worker POSTs results to, and the /tick the cron-connector calls.

A python3-http handler; routing and the pipeline live in ``kinoit.service``.
"""

from typing import Any

from kinoit.errors import KinoitError
from kinoit.service import HttpRequest, get_service
from kinoit.stages.http import Reply, error_reply


def handle(event: Any, context: Any) -> Reply:
    """Route one request to the orchestration service."""
    try:
        request = HttpRequest(
            method=event.method,
            path=event.path or "/",
            headers={str(k).lower(): str(v) for k, v in dict(event.headers).items()},
            query={str(k): str(v) for k, v in dict(event.query).items()},
            body=event.body if isinstance(event.body, bytes) else str(event.body).encode(),
        )
        return get_service().handle(request)
    except KinoitError as exc:
        return error_reply(exc)
