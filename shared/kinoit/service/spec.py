"""Job submissions: parse and validate everything up front (pure).

A bad request raises :class:`~kinoit.errors.InvalidParameter` naming the field,
which the API turns into a 400 JSON error. The checks that need other parts
(CID syntax, ladder profiles, the callback SSRF guard) are passed in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from kinoit.errors import InvalidParameter

# Shorter segments multiply tasks for no gain; longer ones lose parallelism.
MIN_SEGMENT_SECONDS = Fraction(1, 2)
MAX_SEGMENT_SECONDS = Fraction(10)
DEFAULT_SEGMENT_SECONDS = Fraction(1)
# Metadata is echoed in every webhook; keep it small.
MAX_METADATA_BYTES = 4096
DEFAULT_PROFILE = "default"
_KNOWN_FIELDS = {
    "source",
    "profile",
    "ladder",
    "segment_seconds",
    "callback_url",
    "metadata",
    "keep_intermediates",
    "outputs_expire_in",
}
# Outputs may be pinned for a while only; longer than this is a typo for "forever".
MAX_OUTPUTS_EXPIRE_SECONDS = 100 * 365 * 24 * 3600


@dataclass(frozen=True)
class JobSpec:
    """A validated submission, JSON-friendly (``to_dict`` / ``from_dict``)."""

    source: str
    ladder: dict[str, Any]
    profile: str | None = DEFAULT_PROFILE
    segment_seconds: str = "1"
    callback_url: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    keep_intermediates: bool = False
    # Seconds the outputs stay pinned (None: until someone unpins them).
    outputs_expire_in: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The spec as stored with the job."""
        return {
            "source": self.source,
            "ladder": self.ladder,
            "profile": self.profile,
            "segment_seconds": self.segment_seconds,
            "callback_url": self.callback_url,
            "keep_intermediates": self.keep_intermediates,
            "outputs_expire_in": self.outputs_expire_in,
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any], metadata: Mapping[str, Any]) -> JobSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            source=str(value["source"]),
            ladder=dict(value["ladder"]),
            profile=value.get("profile"),
            segment_seconds=str(value.get("segment_seconds", "1")),
            callback_url=value.get("callback_url"),
            metadata=dict(metadata),
            keep_intermediates=bool(value.get("keep_intermediates", False)),
            outputs_expire_in=value.get("outputs_expire_in"),
        )

    def reuse_key(self) -> dict[str, Any]:
        """What decides the result: same key, same manifest."""
        return {"source": self.source, "ladder": self.ladder, "seconds": self.segment_seconds}


def parse_segment_seconds(value: Any) -> Fraction:
    """A segment length in seconds within [0.5, 10]."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidParameter("segment_seconds", "expected a number of seconds")
    try:
        seconds = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        raise InvalidParameter("segment_seconds", f"not a number: {value!r}") from None
    if not MIN_SEGMENT_SECONDS <= seconds <= MAX_SEGMENT_SECONDS:
        raise InvalidParameter(
            "segment_seconds",
            f"must be between {float(MIN_SEGMENT_SECONDS)} and {float(MAX_SEGMENT_SECONDS)}",
        )
    return seconds


def format_seconds(seconds: Fraction) -> str:
    """Canonical text of a segment length: ``1``, ``0.5``, ``2/3``."""
    if seconds.denominator == 1:
        return str(seconds.numerator)
    as_float = float(seconds)
    return repr(as_float) if Fraction(repr(as_float)) == seconds else str(seconds)


def parse_job_spec(
    body: Mapping[str, Any],
    *,
    check_cid: Callable[[str], str],
    resolve_ladder: Callable[[str | None, Any], dict[str, Any]],
    check_callback_url: Callable[[str], str],
) -> JobSpec:
    """Validate a submission body; raise InvalidParameter naming the first bad field."""
    unknown = sorted(set(body) - _KNOWN_FIELDS)
    if unknown:
        raise InvalidParameter(unknown[0], "unknown field")
    source = body.get("source")
    if not isinstance(source, str) or not source:
        raise InvalidParameter("source", "expected the CID of the source video")
    try:
        source = check_cid(source)
    except InvalidParameter:
        raise
    except Exception as exc:
        raise InvalidParameter("source", f"not a valid CID ({exc})") from None
    profile = body.get("profile")
    ladder_value = body.get("ladder")
    if profile is not None and ladder_value is not None:
        raise InvalidParameter("ladder", "give either profile or ladder, not both")
    if profile is not None and not isinstance(profile, str):
        raise InvalidParameter("profile", "expected a profile name")
    if ladder_value is None and profile is None:
        profile = DEFAULT_PROFILE
    ladder = resolve_ladder(profile, ladder_value)
    seconds = parse_segment_seconds(body.get("segment_seconds", 1))
    callback = body.get("callback_url")
    if callback is not None:
        if not isinstance(callback, str):
            raise InvalidParameter("callback_url", "expected an http(s) URL")
        callback = check_callback_url(callback)
    metadata = body.get("metadata", {})
    if not isinstance(metadata, dict):
        raise InvalidParameter("metadata", "expected a JSON object")
    if len(json.dumps(metadata)) > MAX_METADATA_BYTES:
        raise InvalidParameter("metadata", f"larger than {MAX_METADATA_BYTES} bytes of JSON")
    keep = body.get("keep_intermediates", False)
    if not isinstance(keep, bool):
        raise InvalidParameter("keep_intermediates", "expected true or false")
    expire = body.get("outputs_expire_in")
    if expire is not None and (
        isinstance(expire, bool)
        or not isinstance(expire, int)
        or not 0 < expire <= MAX_OUTPUTS_EXPIRE_SECONDS
    ):
        raise InvalidParameter(
            "outputs_expire_in", f"expected whole seconds in [1, {MAX_OUTPUTS_EXPIRE_SECONDS}]"
        )
    return JobSpec(
        source=source,
        ladder=ladder,
        profile=profile if ladder_value is None else None,
        segment_seconds=format_seconds(seconds),
        callback_url=callback,
        metadata=metadata,
        keep_intermediates=keep,
        outputs_expire_in=expire,
    )
