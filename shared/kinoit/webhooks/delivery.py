"""Webhook delivery: a Redis queue (a hash per message plus a due-time sorted set),
atomic claims so that several deliverers may run at once, sending to the pinned
target, retries on a schedule, dead letters, and the job.progress throttle."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import redis

from kinoit.errors import InvalidParameter, KinoitError
from kinoit.jobs import keys
from kinoit.jobs.connection import translate_redis_errors
from kinoit.jobs.decode import text
from kinoit.metrics import MetricsRecorder
from kinoit.webhooks.signing import build_payload, new_message_id, parse_secret, signature_headers
from kinoit.webhooks.targets import CallbackTarget, Resolver, resolve_callback, resolve_host

# Seconds to wait before attempt 2, 3, ...; after the last, the message is dead (~3.5 h).
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600, 7200)
# A claimed message not finished within this long (crashed deliverer) is sent again.
CLAIM_SECONDS = 120.0
# One webhook POST may take this long before it counts as a failed attempt.
DEFAULT_TIMEOUT_SECONDS = 10.0
# Progress webhooks: at most one per this many seconds...
PROGRESS_MIN_INTERVAL_SECONDS = 5.0
# ...unless progress advanced by at least this fraction since the last one.
PROGRESS_MIN_STEP = 0.10
# Dead letters kept for inspection.
DEAD_LIST_MAX = 1000
# Delivered/dead message hashes linger this long for inspection.
MESSAGE_RETENTION_SECONDS = 24 * 3600


def _lua(name: str) -> str:
    return resources.files("kinoit.webhooks").joinpath("lua", f"{name}.lua").read_text("utf-8")


# ------------------------------------------------------------------ delivery
# (pinned target, body, headers, timeout) -> HTTP status; raises OSError or
# http.client.HTTPException when no answer came.
Sender = Callable[[CallbackTarget, bytes, Mapping[str, str], float], int]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to ``address`` while the Host header names the checked host."""

    def __init__(self, target: CallbackTarget, timeout: float) -> None:
        super().__init__(target.host.strip("[]"), target.port, timeout=timeout)
        self.pinned = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.pinned, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to ``address``; the certificate is checked against the host name."""

    def __init__(self, target: CallbackTarget, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(target.host.strip("[]"), target.port, timeout=timeout, context=context)
        self.pinned = target.address
        self.tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self.pinned, self.port), self.timeout)
        try:
            self.sock = self.tls.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise


def http_sender(
    target: CallbackTarget, body: bytes, headers: Mapping[str, str], timeout: float
) -> int:
    """POST ``body`` to the pinned address of ``target``. Redirects are never followed
    (a 3xx is a failed attempt): a Location is a new, unchecked target."""
    if not target.address:
        raise InvalidParameter("callback_url", "target was not resolved and checked")
    connection: http.client.HTTPConnection
    if target.scheme == "https":
        connection = _PinnedHTTPSConnection(target, timeout, ssl.create_default_context())
    else:
        connection = _PinnedHTTPConnection(target, timeout)
    try:
        connection.request("POST", target.target, body=body, headers=dict(headers))
        response = connection.getresponse()
        response.read(64 * 1024)  # a little of the body, so the connection closes cleanly
        return int(response.status)
    finally:
        connection.close()


@dataclass(frozen=True)
class DeliveryReport:
    """What one :func:`deliver_pending` pass did (message ids)."""

    delivered: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)


@translate_redis_errors
def enqueue_webhook(
    connection: redis.Redis,
    url: str,
    event_type: str,
    job_id: str,
    data: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> str:
    """Queue one webhook for delivery (due now) and return its ``webhook-id``.

    Only writes Redis; validate ``url`` with :func:`check_callback_url` when
    the job is submitted.
    """
    now = time.time() if now is None else now
    msg_id = new_message_id(now)
    body = json.dumps(build_payload(event_type, job_id, data, now), separators=(",", ":"))
    pipe = connection.pipeline(transaction=True)
    fields: dict[Any, Any] = {
        "url": url,
        "body": body,
        "type": str(event_type),
        "job_id": job_id,
        "attempts": 0,
    }
    pipe.hset(keys.WEBHOOK_MSG_KEY.format(msg_id=msg_id), mapping=fields)
    pipe.zadd(keys.WEBHOOK_DUE_KEY, {msg_id: now})
    pipe.execute()
    return msg_id


@translate_redis_errors
def deliver_pending(
    connection: redis.Redis,
    secret: str | bytes,
    *,
    send: Sender = http_sender,
    now: float | None = None,
    limit: int = 100,
    allow_private: bool = False,
    schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    resolve: Resolver = resolve_host,
    metrics: MetricsRecorder | None = None,
) -> DeliveryReport:
    """Send every due webhook once; re-schedule failures; returns what happened.

    A 2xx answer is success; anything else (other status, timeout, refused
    connection, SSRF re-check failing) is a failed attempt. Every attempt is
    counted in ``kinoit_webhook_deliveries_total`` (``metrics``, by default the
    recorder on ``connection``) in the same transaction as its outcome.
    """
    metrics = MetricsRecorder(connection) if metrics is None else metrics
    key = parse_secret(secret)
    now = time.time() if now is None else now
    claimed = connection.register_script(_lua("claim"))(
        keys=[keys.WEBHOOK_DUE_KEY], args=[repr(now), limit, repr(now + CLAIM_SECONDS)]
    )
    report = DeliveryReport()
    for raw_id in claimed:
        msg_id = text(raw_id)
        msg_key = keys.WEBHOOK_MSG_KEY.format(msg_id=msg_id)
        raw = connection.hgetall(msg_key)
        msg = {text(k): text(v) for k, v in raw.items()}
        if not msg:
            connection.zrem(keys.WEBHOOK_DUE_KEY, msg_id)
            continue
        body = msg["body"].encode()
        error = ""
        try:
            # one parse, one resolution: the connection goes to the address checked here
            target = resolve_callback(msg["url"], allow_private, resolve)
            status = send(target, body, signature_headers(key, msg_id, int(now), body), timeout)
            ok = 200 <= status < 300
            error = "" if ok else f"HTTP {status}"
        except (OSError, http.client.HTTPException) as exc:
            ok, error = False, f"ConnectionError: {type(exc).__name__}: {exc}"
        except KinoitError as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"
        attempts = int(msg.get("attempts", 0)) + 1
        pipe = connection.pipeline(transaction=True)
        metrics.webhook_delivered(ok, pipe=pipe)
        if ok:
            pipe.zrem(keys.WEBHOOK_DUE_KEY, msg_id)
            pipe.delete(msg_key)
            report.delivered.append(msg_id)
        elif attempts > len(schedule):
            pipe.zrem(keys.WEBHOOK_DUE_KEY, msg_id)
            pipe.hset(msg_key, mapping={"attempts": attempts, "error": error[:500]})
            pipe.expire(msg_key, MESSAGE_RETENTION_SECONDS)
            pipe.lpush(keys.WEBHOOK_DEAD_KEY, msg_id)
            pipe.ltrim(keys.WEBHOOK_DEAD_KEY, 0, DEAD_LIST_MAX - 1)
            report.dead.append(msg_id)
        else:
            pipe.hset(msg_key, mapping={"attempts": attempts, "error": error[:500]})
            pipe.zadd(keys.WEBHOOK_DUE_KEY, {msg_id: now + float(schedule[attempts - 1])})
            report.retried.append(msg_id)
        pipe.execute()
    return report


@translate_redis_errors
def pending_count(connection: redis.Redis) -> int:
    """Webhooks waiting for (re-)delivery: a gauge for /metrics."""
    return int(connection.zcard(keys.WEBHOOK_DUE_KEY))


@translate_redis_errors
def next_due(connection: redis.Redis) -> float | None:
    """When the earliest queued webhook is due (None when the queue is empty)."""
    first = connection.zrange(keys.WEBHOOK_DUE_KEY, 0, 0, withscores=True)
    return float(first[0][1]) if first else None


@translate_redis_errors
def should_send_progress(
    connection: redis.Redis,
    job_id: str,
    done: int,
    total: int,
    now: float | None = None,
    min_interval: float = PROGRESS_MIN_INTERVAL_SECONDS,
    min_step: float = PROGRESS_MIN_STEP,
) -> bool:
    """Throttle for ``job.progress``: True at most once per ``min_interval`` seconds,
    or sooner when progress advanced by ``min_step``; never for no progress.

    Atomic across replicas (Lua), so exactly one caller wins each slot.
    """
    if total <= 0:
        return False
    now = time.time() if now is None else now
    fraction = min(1.0, done / total)
    won = connection.register_script(_lua("throttle"))(
        keys=[keys.WEBHOOK_PROGRESS_KEY.format(job_id=job_id)],
        args=[repr(fraction), repr(now), min_interval, min_step, MESSAGE_RETENTION_SECONDS],
    )
    return bool(int(won))
