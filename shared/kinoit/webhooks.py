"""Signed webhooks to the client, per the Standard Webhooks specification.

- Secrets are ``whsec_<base64 of the key bytes>`` (file ``kinoit-webhook-secret``).
- Each message carries ``webhook-id`` (stable across retries, so receivers can
  deduplicate), ``webhook-timestamp`` (unix seconds of this attempt) and
  ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``.
- Body: ``{"type": ..., "timestamp": <ISO 8601 UTC>, "data": {"job_id": ..., ...}}``.

Delivery never blocks the pipeline: :func:`enqueue_webhook` only writes the
message into Redis (a hash plus a due-time sorted set); :func:`deliver_pending`,
run by a thread or worker the product owns (orchestrate's delivery thread), sends
due messages and re-schedules failures with backoff until
``DEFAULT_RETRY_SCHEDULE`` is exhausted, then parks the id in a dead list.
Several deliverers may run at once: claiming is atomic, delivery at least once.

:func:`resolve_callback` is the SSRF guard, used at submission and again at
every delivery: the URL is parsed once by one strict grammar (no userinfo,
backslash, fragment, non-ASCII or ambiguous numeric host; the standard
library's reading must agree), its host is resolved once, every address must be
public unless private targets are allowed, and the connection is made to the
very address that was checked (no second DNS lookup: DNS rebinding cannot swap
it). Redirects are never followed, so neither a private nor any other Location
is contacted.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import re
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import redis

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

# The only URLs accepted: scheme, a plain host (DNS name, dotted IPv4 or bracketed
# IPv6), an optional decimal port and an optional path and query of visible ASCII.
# No userinfo, backslash, fragment, whitespace or percent-encoded host: every part
# any HTTP library could read differently from this grammar is refused outright.
_URL = re.compile(
    r"(?P<scheme>https?)://"
    r"(?P<host>\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,253})"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<target>/[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*)?"
)
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
MAX_URL_CHARS = 2048
# NAT64 prefixes (RFC 6052, RFC 8215): the last 32 bits are an IPv4 address.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


@dataclass(frozen=True)
class CallbackTarget:
    """A callback URL parsed once: what was checked is exactly what is connected to.

    ``address`` is the resolved IP the connection must go to (pinned: no second DNS
    lookup between the check and the connect); ``host`` goes in the Host header and
    the TLS server name; ``target`` is the request line's path and query.
    """

    url: str
    scheme: str
    host: str
    port: int
    target: str
    address: str = ""


def parse_callback_url(url: object) -> CallbackTarget:
    """Parse ``url`` by the strict grammar above (InvalidParameter ``callback_url``);
    no DNS lookup. The standard library's reading must agree on scheme, host and port."""

    def bad(why: str) -> InvalidParameter:
        return InvalidParameter("callback_url", why)

    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        raise bad(f"expected an http(s) URL of at most {MAX_URL_CHARS} characters")
    if "\\" in url:
        raise bad("backslashes are not allowed in a callback URL")
    if any(not (0x21 <= ord(c) <= 0x7E) for c in url):
        raise bad("only visible ASCII is allowed (no spaces, control or non-ASCII characters)")
    if "#" in url:
        raise bad("a fragment is not allowed in a callback URL")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise bad(f"scheme must be http or https, got {url[:80]!r}")
    if scheme != scheme.lower():
        raise bad("write the scheme in lower case")
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    if "@" in authority:
        raise bad("userinfo (user:password@) is not allowed in a callback URL")
    match = _URL.fullmatch(url)
    if match is None or _PERCENT.search(url):
        raise bad(f"malformed URL {url[:80]!r}")
    host = _check_host(match.group("host"))
    port = int(match.group("port")) if match.group("port") else (443 if scheme == "https" else 80)
    if not 1 <= port <= 65535:
        raise bad(f"port {port} out of range")
    target = match.group("target") or "/"
    try:  # the differential check: the other common reading must see the same thing
        other = urllib.parse.urlsplit(url)
        other_port = other.port or (443 if other.scheme == "https" else 80)
    except ValueError as exc:
        raise bad(f"malformed URL: {exc}") from None
    other_host = (other.hostname or "").lower()
    if host.startswith("["):
        with contextlib.suppress(ValueError):
            other_host = f"[{ipaddress.IPv6Address(other_host)}]"
    if (other.scheme, other_host, other_port) != (scheme, host, port):
        raise bad("URL parses ambiguously; refused")
    return CallbackTarget(url=url, scheme=scheme, host=host, port=port, target=target)


def _check_host(raw: str) -> str:
    """A lower-cased DNS name, a canonical dotted IPv4, or a bracketed IPv6 without zone."""
    if raw.startswith("["):
        try:
            ip6 = ipaddress.IPv6Address(raw[1:-1])
        except ValueError:
            raise InvalidParameter("callback_url", f"not an IPv6 address: {raw}") from None
        return f"[{ip6}]"
    host = raw.lower()
    labels = host.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidParameter("callback_url", f"not a valid host name: {raw!r}")
    if labels[-1].isdigit():
        # numeric hosts must be exactly a dotted quad: "127.1", "2130706433" or
        # "0177.0.0.1" mean loopback to some resolvers and a name to others
        try:
            ip4 = ipaddress.IPv4Address(host)
        except ValueError:
            raise InvalidParameter(
                "callback_url", f"numeric host {raw!r} is not a dotted-quad IPv4 address"
            ) from None
        if str(ip4) != host:
            raise InvalidParameter("callback_url", f"non-canonical IPv4 address {raw!r}")
    return host


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, Teredo, NAT64, compatible)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64) or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _is_public(address: str) -> bool:
    if "%" in address:  # a scoped (link-local) IPv6 address
        return False
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None and not _is_public(str(inner)):
            return False
        if ip in _IPV4_COMPATIBLE:
            return False
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def resolve_callback(
    url: str, allow_private: bool = False, resolve: Resolver = _resolve
) -> CallbackTarget:
    """Parse ``url`` once, resolve its host once and return the target pinned to the
    checked address.

    InvalidParameter (field ``callback_url``) for a URL outside the strict grammar
    or a host that does not resolve; Forbidden when any resolved address is private,
    loopback, link-local, multicast, reserved or unspecified (IPv4 embedded in IPv6
    included) and ``allow_private`` is false.
    """
    target = parse_callback_url(url)
    host = target.host.strip("[]")
    try:
        addresses = [str(a) for a in resolve(host, target.port)]
    except (OSError, UnicodeError) as exc:
        raise InvalidParameter("callback_url", f"cannot resolve host {host!r}: {exc}") from None
    if not addresses:
        raise InvalidParameter("callback_url", f"host {host!r} has no address")
    for address in addresses:
        try:
            public = _is_public(address)
        except ValueError:
            raise InvalidParameter(
                "callback_url", f"host {host!r} resolved to {address!r}, not an IP address"
            ) from None
        if not public and not allow_private:
            raise Forbidden(
                f"callback_url: {host} resolves to non-public address {address}; refused"
            )
    return CallbackTarget(
        url=target.url,
        scheme=target.scheme,
        host=target.host,
        port=target.port,
        target=target.target,
        address=addresses[0],
    )


def check_callback_url(url: str, allow_private: bool = False, resolve: Resolver = _resolve) -> str:
    """Return ``url`` when it is a safe webhook target (see :func:`resolve_callback`)."""
    return resolve_callback(url, allow_private, resolve).url


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
    won = connection.register_script(_THROTTLE)(
        keys=[keys.WEBHOOK_PROGRESS_KEY.format(job_id=job_id)],
        args=[repr(fraction), repr(now), min_interval, min_step, MESSAGE_RETENTION_SECONDS],
    )
    return bool(int(won))
