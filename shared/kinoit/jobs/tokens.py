"""HMAC tokens that prove a task callback comes from a dispatch kinoit made.

The token binds (job, task, attempt) so a callback for another task or a
forged attempt is refused. Key choice (documented for operators): the secret
file ``kinoit-callback-secret`` when present; otherwise a key derived from
``kinoit-webhook-secret`` with a fixed label, so the raw webhook key never
signs callbacks and a leaked callback token says nothing about webhook
signatures. With neither file, :func:`callback_secret` refuses to run.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from kinoit.config import Settings
from kinoit.errors import InvalidParameter

CALLBACK_SECRET_FILE = "kinoit-callback-secret"
WEBHOOK_SECRET_FILE = "kinoit-webhook-secret"
_DERIVE_LABEL = b"kinoit callback token v1"


def _key(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    if not key:
        raise InvalidParameter("callback secret", "must not be empty")
    return key


def callback_token(secret: str | bytes, job_id: str, task_id: str, attempt: int) -> str:
    """HMAC-SHA256 of (job, task, attempt), base64url without padding (43 characters)."""
    message = f"{job_id}\n{task_id}\n{int(attempt)}".encode()
    digest = hmac.digest(_key(secret), message, "sha256")
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def verify_callback_token(
    secret: str | bytes, job_id: str, task_id: str, attempt: int, token: str
) -> bool:
    """Constant-time check of a callback token; False for anything malformed."""
    if not isinstance(token, str) or len(token) != 43:
        return False
    expected = callback_token(secret, job_id, task_id, attempt)
    return hmac.compare_digest(expected.encode(), token.encode("utf-8", "replace"))


def callback_secret(settings: Settings) -> bytes:
    """The key for callback tokens (see the module docstring for the choice)."""
    dedicated = settings.secret(CALLBACK_SECRET_FILE)
    if dedicated:
        return dedicated.encode()
    webhook = settings.secret(WEBHOOK_SECRET_FILE)
    if webhook:
        return hmac.new(webhook.encode(), _DERIVE_LABEL, hashlib.sha256).digest()
    raise InvalidParameter(
        CALLBACK_SECRET_FILE,
        f"no {CALLBACK_SECRET_FILE} or {WEBHOOK_SECRET_FILE} in {settings.secrets_dir}",
    )
