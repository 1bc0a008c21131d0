"""Standard Webhooks signing: secrets (``whsec_<base64>``), the ``v1`` HMAC-SHA256
signature and its headers, verification, and the payload every event carries."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from kinoit.errors import InvalidParameter, Unauthorized
from kinoit.jobs.ids import new_job_id

SECRET_PREFIX = "whsec_"
# 32 random bytes: as strong as the HMAC-SHA256 it keys.
SECRET_BYTES = 32
# Receivers are told the signature is fresh within this window (spec: 5 minutes).
DEFAULT_TOLERANCE_SECONDS = 300.0


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
