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

from kinoit.webhooks.delivery import (
    CLAIM_SECONDS,
    DEAD_LIST_MAX,
    DEFAULT_RETRY_SCHEDULE,
    DEFAULT_TIMEOUT_SECONDS,
    MESSAGE_RETENTION_SECONDS,
    PROGRESS_MIN_INTERVAL_SECONDS,
    PROGRESS_MIN_STEP,
    DeliveryReport,
    Sender,
    deliver_pending,
    enqueue_webhook,
    http_sender,
    next_due,
    pending_count,
    should_send_progress,
)
from kinoit.webhooks.signing import (
    DEFAULT_TOLERANCE_SECONDS,
    SECRET_BYTES,
    SECRET_PREFIX,
    WebhookEvent,
    build_payload,
    generate_secret,
    iso_timestamp,
    new_message_id,
    parse_secret,
    sign,
    signature_headers,
    verify,
)
from kinoit.webhooks.targets import (
    MAX_URL_CHARS,
    CallbackTarget,
    Resolver,
    check_callback_url,
    parse_callback_url,
    resolve_callback,
)

__all__ = [
    "CLAIM_SECONDS",
    "DEAD_LIST_MAX",
    "DEFAULT_RETRY_SCHEDULE",
    "DEFAULT_TIMEOUT_SECONDS",
    "DEFAULT_TOLERANCE_SECONDS",
    "MAX_URL_CHARS",
    "MESSAGE_RETENTION_SECONDS",
    "PROGRESS_MIN_INTERVAL_SECONDS",
    "PROGRESS_MIN_STEP",
    "SECRET_BYTES",
    "SECRET_PREFIX",
    "CallbackTarget",
    "DeliveryReport",
    "Resolver",
    "Sender",
    "WebhookEvent",
    "build_payload",
    "check_callback_url",
    "deliver_pending",
    "enqueue_webhook",
    "generate_secret",
    "http_sender",
    "iso_timestamp",
    "new_message_id",
    "next_due",
    "parse_callback_url",
    "parse_secret",
    "pending_count",
    "resolve_callback",
    "should_send_progress",
    "sign",
    "signature_headers",
    "verify",
]
