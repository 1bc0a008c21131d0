"""Only orchestrate may call a stage: it signs every stage request it dispatches.

The key is the secret file ``kinoit-stage-secret`` (in ``$KINOIT_SECRETS_DIR``,
created by ``kinoit dev`` and the Helm chart like the other secrets). The
signature header is::

    X-Kinoit-Signature: t=<unix expiry>,v1=<base64url HMAC-SHA256>

over ``"kinoit-stage-v1\\n<expiry>\\n<X-Callback-Url or empty>\\n"`` followed by
the exact body bytes, so neither the body, nor the expiry, nor where the queue
POSTs the result can be changed without the key. A stage checks it before it
parses anything (:func:`verify_stage_request`): a missing, malformed, wrong or
expired signature is 401; a stage without the secret refuses every request
(ConfigurationError, the operator's to fix).
"""

from __future__ import annotations

import base64
import hmac
import time
from collections.abc import Mapping

from kinoit.config import Settings
from kinoit.errors import ConfigurationError, Unauthorized

STAGE_SECRET_FILE = "kinoit-stage-secret"
SIGNATURE_HEADER = "X-Kinoit-Signature"
CALLBACK_HEADER = "X-Callback-Url"
# A signed request stays valid this long: it must outlast its wait in the async
# queue; a task that waited longer is refused (401, retryable) and re-sent signed anew.
DEFAULT_VALID_SECONDS = 3600.0
# Shorter keys are refused: the HMAC is only as strong as its key.
MIN_KEY_BYTES = 16
_LABEL = b"kinoit-stage-v1"


def stage_key(settings: Settings) -> bytes:
    """The signing key, from the secret file (ConfigurationError when missing or short)."""
    text = settings.secret(STAGE_SECRET_FILE)
    if not text:
        raise ConfigurationError(f"no {STAGE_SECRET_FILE} in {settings.secrets_dir}")
    key = text.encode()
    if len(key) < MIN_KEY_BYTES:
        raise ConfigurationError(f"{STAGE_SECRET_FILE} must be at least {MIN_KEY_BYTES} bytes")
    return key


def _digest(key: bytes, expires: int, callback_url: str, body: bytes) -> str:
    message = b"\n".join((_LABEL, str(expires).encode(), callback_url.encode())) + b"\n" + body
    mac = hmac.digest(key, message, "sha256")
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def sign_stage_request(
    key: bytes,
    body: bytes,
    callback_url: str = "",
    now: float | None = None,
    valid_for: float = DEFAULT_VALID_SECONDS,
) -> dict[str, str]:
    """The headers that let a stage accept ``body`` (with ``callback_url`` bound)."""
    expires = int((time.time() if now is None else now) + valid_for)
    return {SIGNATURE_HEADER: f"t={expires},v1={_digest(key, expires, callback_url, body)}"}


def verify_stage_request(
    key: bytes, headers: Mapping[str, str], body: bytes, now: float | None = None
) -> None:
    """Return when the request carries a valid, unexpired signature; else Unauthorized."""
    low = {str(k).lower(): str(v) for k, v in headers.items()}
    raw = low.get(SIGNATURE_HEADER.lower(), "")
    if not raw:
        raise Unauthorized(f"stage requests must carry {SIGNATURE_HEADER} (only orchestrate calls)")
    fields = dict(part.partition("=")[::2] for part in raw.split(","))
    stamp, given = fields.get("t", ""), fields.get("v1", "")
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12 and given):
        raise Unauthorized(f"malformed {SIGNATURE_HEADER}")
    expires = int(stamp)
    if expires < (time.time() if now is None else now):
        raise Unauthorized("stage request signature has expired")
    expected = _digest(key, expires, low.get(CALLBACK_HEADER.lower(), ""), body)
    if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
        raise Unauthorized("stage request signature does not match")
