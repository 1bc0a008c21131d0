"""The one error tree of kinoit.

Every failure that kinoit expects is one of these; lower-level errors (OSError,
requests, redis, subprocess) are translated at the module that meets them.

    KinoitError                      exit 2 on the CLI, 500 over HTTP
    ├── InputError                   the caller's fault: 4xx, never retried
    │   ├── InvalidCID               not a CID string we accept
    │   ├── InvalidParameter         a value out of range or of the wrong type (.field)
    │   ├── NotFound                 an unknown CID, job or pin (404)
    │   ├── InvalidCAR               a truncated or malformed CAR file
    │   ├── Unauthorized             missing or wrong credentials (401)
    │   ├── Forbidden                a refused target, e.g. an SSRF callback (403)
    │   ├── Conflict                 a state change that is not allowed now (409)
    │   └── PayloadTooLarge          a request body over the cap (413)
    ├── UnavailableError             an upstream is down or overloaded: 503, retryable
    │   ├── StoreUnavailable         Kubo / IPFS Cluster unreachable or failing
    │   └── StateUnavailable         Redis unreachable
    ├── ConfigurationError           a deployment setting or secret is missing or bad (500)
    ├── IntegrityError               stored bytes do not match their CID
    └── MediaError                   ffmpeg/ffprobe failed (.command, .stderr_tail)
        ├── NotAVideo                no decodable video stream
        └── MediaLimitExceeded       dimensions or duration above the configured caps
"""

from __future__ import annotations

from collections.abc import Sequence


class KinoitError(Exception):
    """Root of every error kinoit raises on purpose."""

    http_status = 500
    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, object]:
        """The JSON error body used by every HTTP endpoint."""
        return {"error": type(self).__name__, "message": self.message}


class InputError(KinoitError):
    """The request or input is wrong; retrying the same thing will not help."""

    http_status = 400


class InvalidCID(InputError):
    """A string that is not a CID kinoit accepts."""


class InvalidParameter(InputError):
    """A parameter with a wrong type or an out-of-range value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field

    def to_dict(self) -> dict[str, object]:
        body = super().to_dict()
        body["field"] = self.field
        return body


class NotFound(InputError):
    """An unknown CID, job, pin or route."""

    http_status = 404


class InvalidCAR(InputError):
    """A CAR file that is truncated, malformed, or whose blocks do not match."""


class Unauthorized(InputError):
    """Missing or wrong credentials."""

    http_status = 401


class Forbidden(InputError):
    """A target or action refused by policy."""

    http_status = 403


class Conflict(InputError):
    """A state change that is not allowed in the current state."""

    http_status = 409


class PayloadTooLarge(InputError):
    """A request body larger than the configured cap."""

    http_status = 413


class UnavailableError(KinoitError):
    """An upstream service is down or failing; the same call may succeed later."""

    http_status = 503
    retryable = True


class StoreUnavailable(UnavailableError):
    """Kubo or IPFS Cluster cannot be reached or answered with a server error."""


class StateUnavailable(UnavailableError):
    """Redis cannot be reached."""


class ConfigurationError(KinoitError):
    """The deployment is missing a setting or secret, or has a bad one: an operator's
    fix, so a server error (500) rather than the caller's 4xx."""


class IntegrityError(KinoitError):
    """Bytes read from storage do not hash to the CID they were stored under."""


class MediaError(KinoitError):
    """ffmpeg or ffprobe failed; carries the command and the tail of its stderr."""

    def __init__(
        self,
        message: str,
        command: Sequence[str] = (),
        stderr_tail: str = "",
    ) -> None:
        detail = f"{message}: {stderr_tail.strip()}" if stderr_tail.strip() else message
        super().__init__(detail)
        self.command = list(command)
        self.stderr_tail = stderr_tail


class NotAVideo(MediaError):
    """The input has no decodable video stream (or is not media at all)."""

    http_status = 400


class MediaLimitExceeded(MediaError):
    """The input's dimensions or duration exceed the configured caps."""

    http_status = 400
