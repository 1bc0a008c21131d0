"""Signed webhooks to the client, per the Standard Webhooks specification.

- Secrets are ``whsec_<base64 of the key bytes>`` (file ``kinoit-webhook-secret``).
- Each message carries ``webhook-id`` (stable across retries, so receivers can
  deduplicate), ``webhook-timestamp`` (unix seconds of this attempt) and
  ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``.
- Body: ``{"type": ..., "timestamp": <ISO 8601 UTC>, "data": {"job_id": ..., ...}}``.

Delivery never blocks the pipeline: :func:`enqueue_webhook` only writes the
message into Redis (a hash plus a due-time sorted set); :func:`deliver_pending`,
run by a thread or worker the product owns (:func:`run_delivery_loop`), sends
due messages and re-schedules failures with backoff until
``DEFAULT_RETRY_SCHEDULE`` is exhausted, then parks the id in a dead list.
Several deliverers may run at once: claiming is atomic, delivery at least once.

:func:`check_callback_url` is the SSRF guard: http(s) only, and every address
the host resolves to must be public unless private targets are allowed.
Redirects are never followed. A host that resolves differently between the
check and the request (DNS rebinding) is re-checked at every delivery, which
narrows but does not close that window.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import redis
import requests

from kinoit.errors import Forbidden, InvalidParameter, KinoitError, Unauthorized
from kinoit.jobs import keys
from kinoit.jobs.engine import translate_redis_errors
from kinoit.jobs.ids import new_job_id
from kinoit.metrics import MetricsRecorder

SECRET_PREFIX = "whsec_"
# 32 random bytes: as strong as the HMAC-SHA256 it keys.
SECRET_BYTES = 32
# Seconds to wait before attempt 2, 3, ...; after the last, the message is dead (~3.5 h).
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600, 7200)
# A claimed message not finished within this long (crashed deliverer) is sent again.
CLAIM_SECONDS = 120.0
# One webhook POST may take this long before it counts as a failed attempt.
DEFAULT_TIMEOUT_SECONDS = 10.0
# Receivers are told the signature is fresh within this window (spec: 5 minutes).
DEFAULT_TOLERANCE_SECONDS = 300.0
# Progress webhooks: at most one per this many seconds...
PROGRESS_MIN_INTERVAL_SECONDS = 5.0
# ...unless progress advanced by at least this fraction since the last one.
PROGRESS_MIN_STEP = 0.10
# Dead letters kept for inspection.
DEAD_LIST_MAX = 1000
# Delivered/dead message hashes linger this long for inspection.
MESSAGE_RETENTION_SECONDS = 24 * 3600


class WebhookEvent(StrEnum):
    """Event types sent to ``callback_url``."""

    JOB_ACCEPTED = "job.accepted"
    JOB_STARTED = "job.started"
    JOB_PROGRESS = "job.progress"
    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"


# ------------------------------------------------------------------ secrets
def generate_secret() -> str:
    """A fresh ``whsec_<base64>`` secret."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


def parse_secret(secret: str | bytes) -> bytes:
    """Key bytes of a ``whsec_<base64>`` secret (raw bytes are returned as they are)."""
    if isinstance(secret, bytes):
        if not secret:
            raise InvalidParameter("webhook secret", "must not be empty")
        return secret
    text = secret.strip()
    if not text.startswith(SECRET_PREFIX):
        raise InvalidParameter("webhook secret", "expected the form whsec_<base64>")
    body = text[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameter("webhook secret", "the part after whsec_ is not base64") from None
    if len(key) < 16:
        raise InvalidParameter("webhook secret", "key must be at least 16 bytes")
    return key


# ---------------------------------------------------------------- signatures
def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256(key, "msg_id.timestamp.body")>``."""
    to_sign = f"{msg_id}.{int(timestamp)}.".encode() + body
    digest = hmac.new(parse_secret(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    secret: str | bytes, msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers plus the JSON content type."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def verify(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> dict[str, Any]:
    """Check a received webhook and return its parsed payload; Unauthorized when it is not ours."""
    low = {k.lower(): v for k, v in headers.items()}
    msg_id, ts, sigs = (
        low.get("webhook-id"),
        low.get("webhook-timestamp"),
        low.get("webhook-signature"),
    )
    if not (msg_id and ts and sigs):
        raise Unauthorized("webhook: missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        stamp = int(ts)
    except ValueError:
        raise Unauthorized("webhook: malformed webhook-timestamp") from None
    now = time.time() if now is None else now
    if abs(now - stamp) > tolerance:
        raise Unauthorized("webhook: timestamp outside the tolerance window")
    expected = sign(secret, msg_id, stamp, body).encode()
    if not any(hmac.compare_digest(expected, s.encode()) for s in sigs.split()):
        raise Unauthorized("webhook: no matching signature")
    payload: dict[str, Any] = json.loads(body)
    return payload


# ------------------------------------------------------------------ payloads
def iso_timestamp(now: float) -> str:
    """ISO 8601 UTC with milliseconds and a Z."""
    return (
        datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def build_payload(
    event_type: str, job_id: str, data: Mapping[str, Any] | None = None, now: float | None = None
) -> dict[str, Any]:
    """``{"type", "timestamp", "data": {"job_id", ...}}``."""
    now = time.time() if now is None else now
    return {
        "type": str(event_type),
        "timestamp": iso_timestamp(now),
        "data": {"job_id": job_id, **dict(data or {})},
    }


def new_message_id(now: float) -> str:
    """``msg_<time-sortable id>``, stable across the retries of one message."""
    return "msg_" + new_job_id(now)


# ---------------------------------------------------------------------- SSRF
Resolver = Callable[[str, int], Sequence[str]]


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def check_callback_url(url: str, allow_private: bool = False, resolve: Resolver = _resolve) -> str:
    """Return ``url`` when it is a safe webhook target.

    InvalidParameter (field ``callback_url``) for a malformed URL, another
    scheme than http(s), or a host that does not resolve; Forbidden when any
    resolved address is private, loopback, link-local, multicast, reserved or
    unspecified and ``allow_private`` is false.
    """
    if not isinstance(url, str) or len(url) > 2048:
        raise InvalidParameter("callback_url", "expected an http(s) URL of at most 2048 characters")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidParameter("callback_url", f"malformed URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidParameter("callback_url", f"scheme must be http or https, got {url!r}")
    host = parts.hostname
    if not host:
        raise InvalidParameter("callback_url", f"no host in {url!r}")
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    try:
        addresses = list(resolve(host, port))
    except (OSError, UnicodeError) as exc:
        raise InvalidParameter("callback_url", f"cannot resolve host {host!r}: {exc}") from None
    if not addresses:
        raise InvalidParameter("callback_url", f"host {host!r} has no address")
    if not allow_private:
        for address in addresses:
            if not _is_public(address):
                raise Forbidden(
                    f"callback_url: {host} resolves to non-public address {address}; refused"
                )
    return url


# ------------------------------------------------------------------ delivery
# (url, body, headers, timeout) -> HTTP status code; raises OSError/requests errors on failure.
Sender = Callable[[str, bytes, Mapping[str, str], float], int]


def http_sender(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
    """POST with requests; redirects are not followed (they could bypass the SSRF guard)."""
    response = requests.post(
        url, data=body, headers=dict(headers), timeout=timeout, allow_redirects=False
    )
    response.close()
    return int(response.status_code)


@dataclass(frozen=True)
class DeliveryReport:
    """What one :func:`deliver_pending` pass did (message ids)."""

    delivered: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)


_CLAIM = r"""
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return ids
"""

_THROTTLE = r"""
local last_f = tonumber(redis.call('HGET', KEYS[1], 'f') or '-1')
local last_t = tonumber(redis.call('HGET', KEYS[1], 't') or '0')
local f, now = tonumber(ARGV[1]), tonumber(ARGV[2])
if f <= last_f then return 0 end
if now - last_t < tonumber(ARGV[3]) and f - last_f < tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[1], 'f', ARGV[1], 't', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


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
    resolve: Resolver = _resolve,
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
    claimed = connection.register_script(_CLAIM)(
        keys=[keys.WEBHOOK_DUE_KEY], args=[repr(now), limit, repr(now + CLAIM_SECONDS)]
    )
    report = DeliveryReport()
    for raw_id in claimed:
        msg_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        msg_key = keys.WEBHOOK_MSG_KEY.format(msg_id=msg_id)
        raw = connection.hgetall(msg_key)
        msg = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
        if not msg:
            connection.zrem(keys.WEBHOOK_DUE_KEY, msg_id)
            continue
        body = msg["body"].encode()
        error = ""
        try:
            check_callback_url(msg["url"], allow_private, resolve)
            status = send(msg["url"], body, signature_headers(key, msg_id, int(now), body), timeout)
            ok = 200 <= status < 300
            error = "" if ok else f"HTTP {status}"
        except (OSError, requests.RequestException, KinoitError) as exc:
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


def run_delivery_loop(
    connection: redis.Redis,
    secret: str | bytes,
    stop: threading.Event,
    *,
    interval: float = 1.0,
    allow_private: bool = False,
    send: Sender = http_sender,
    on_error: Callable[[Exception], None] | None = None,
) -> None:
    """Deliver webhooks until ``stop`` is set (run it in a daemon thread).

    Redis being down is reported to ``on_error`` and retried on the next tick.
    """
    while not stop.is_set():
        try:
            report = deliver_pending(connection, secret, send=send, allow_private=allow_private)
            busy = bool(report.delivered or report.retried or report.dead)
        except KinoitError as exc:
            if on_error is not None:
                on_error(exc)
            busy = False
        if not busy:
            stop.wait(interval)


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
    won = connection.register_script(_THROTTLE)(
        keys=[keys.WEBHOOK_PROGRESS_KEY.format(job_id=job_id)],
        args=[repr(fraction), repr(now), min_interval, min_step, MESSAGE_RETENTION_SECONDS],
    )
    return bool(int(won))
