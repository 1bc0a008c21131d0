"""Async function calls, as the OpenFaaS queue-worker runs them.

``perform_async_call`` is what an RQ worker executes: call the handler, then POST
its response to the caller's ``X-Callback-Url`` with the same headers the
queue-worker sends (``X-Call-Id``, ``X-Function-Status``,
``X-Duration-Seconds``, ``X-Function-Name``). Like the CE queue-worker it never
retries the function itself; the orchestrator owns retries through leases.

Run a worker process with ``python -m kinoit.local.worker REDIS_URL``.
"""

from __future__ import annotations

import argparse
import logging
import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

import requests

from kinoit.config import load_settings
from kinoit.local.event import Context, FunctionResponse, format_response, make_event
from kinoit.local.functions import find_functions_dir, load_handler
from kinoit.service.client import is_loopback_url, session_for

log = logging.getLogger(__name__)

# The RQ queue every async call goes through, but those of the functions below.
ASYNC_QUEUE = "kinoit-async"
# The lane workers empty first: verification. A segment is watchable (the preview)
# once its checksum matched, and that checksum is only queued when its transcode
# ends, behind the whole dispatch window; ahead of it, the first segments are
# verified as soon as they are transcoded (docs/benchmarks.md, "Preview"). On
# OpenFaaS the same is a named queue (com.openfaas.queue) with its own queue-worker.
VERIFY_QUEUE = "kinoit-async-verify"
VERIFY_FUNCTIONS = frozenset({"checksum"})


def queue_name(function: str) -> str:
    """The RQ queue an async call to ``function`` goes through (pure)."""
    return VERIFY_QUEUE if function in VERIFY_FUNCTIONS else ASYNC_QUEUE


# Callback deliveries are retried a few times on connection errors only.
CALLBACK_ATTEMPTS = 3


def invoke_function(name: str, call: Mapping[str, Any]) -> FunctionResponse:
    """Run function ``name`` on one request; a crash becomes a 500 like the template's."""
    settings = load_settings()
    event = make_event(
        bytes(call.get("body") or b""),
        headers=call.get("headers") or {},
        method=str(call.get("method") or "POST"),
        query=call.get("query") or {},
        path=str(call.get("path") or "/"),
    )
    try:
        handle = load_handler(find_functions_dir(settings), name)
        return format_response(handle(event, Context()))
    except Exception as exc:
        log.error("function %s crashed: %s", name, traceback.format_exc())
        return FunctionResponse(f"{type(exc).__name__}: {exc}".encode(), 500, {})


def callback_headers(
    name: str, call_id: str, response: FunctionResponse, duration: float
) -> dict[str, str]:
    """The headers the queue-worker adds to a callback."""
    headers = {
        "X-Call-Id": call_id,
        "X-Function-Status": str(response.status),
        "X-Duration-Seconds": f"{duration:.6f}",
        "X-Function-Name": name,
    }
    for key, value in response.headers.items():
        if key.lower() == "content-type":
            headers["Content-Type"] = value
    return headers


_callbacks: dict[bool, requests.Session] = {}


def _session(url: str) -> requests.Session:
    """This process's HTTP session for callbacks to ``url``: the connection to the
    gateway is kept between calls (an RQ worker runs one call at a time), and no proxy
    is looked up for a loopback one."""
    loopback = is_loopback_url(url)
    if loopback not in _callbacks:
        _callbacks[loopback] = session_for(url)
    return _callbacks[loopback]


def perform_async_call(call: dict[str, Any]) -> int:
    """The RQ job: run the function, POST the result to the callback URL; return the status."""
    name = str(call["function"])
    started = time.monotonic()
    response = invoke_function(name, call)
    duration = time.monotonic() - started
    callback_url = call.get("callback_url")
    if callback_url:
        headers = callback_headers(name, str(call["call_id"]), response, duration)
        for attempt in range(CALLBACK_ATTEMPTS):
            try:
                _session(str(callback_url)).post(
                    str(callback_url), data=response.body, headers=headers, timeout=30
                )
                break
            except requests.RequestException as exc:
                log.warning("callback to %s failed (%s), attempt %d", callback_url, exc, attempt)
                time.sleep(0.2 * (attempt + 1))
    return response.status


def run_worker(redis_url: str, queue: str = ASYNC_QUEUE, name: str | None = None) -> None:
    """Work the verification lane, then ``queue``, forever in this process (no fork:
    the handler stays warm)."""
    import redis
    from rq import Queue, SimpleWorker

    from kinoit.stages.scratch import sweep_now

    # Scratch directories of workers killed mid-task (stale, owner gone) go first.
    removed = sweep_now()
    if removed:
        log.warning("removed %d stale scratch directories", len(removed))
    connection = redis.Redis.from_url(redis_url)
    # RQ takes from the first queue that has work: the verification lane first.
    queues = [Queue(q, connection=connection) for q in dict.fromkeys([VERIFY_QUEUE, queue])]
    worker = SimpleWorker(queues, connection=connection, name=name)
    worker.work(with_scheduler=False, logging_level="WARNING")


def configure_logging() -> None:
    """A worker process's log lines: warnings and up, stamped, on standard error."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s worker %(message)s")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m kinoit.local.worker REDIS_URL [--queue Q] [--name N]``."""
    parser = argparse.ArgumentParser(prog="kinoit-worker")
    parser.add_argument("redis_url")
    parser.add_argument("--queue", default=ASYNC_QUEUE)
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    configure_logging()
    run_worker(args.redis_url, args.queue, args.name)


if __name__ == "__main__":  # pragma: no cover
    main()
