"""Time-sortable job ids (ULID layout: 48-bit ms time + 80 random bits, Crockford base32)."""

from __future__ import annotations

import os
import re

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def new_job_id(now: float, randomness: bytes | None = None) -> str:
    """A 26-character id whose lexical order follows creation time (ms)."""
    millis = int(now * 1000) & ((1 << 48) - 1)
    rand = randomness if randomness is not None else os.urandom(10)
    value = (millis << 80) | int.from_bytes(rand[:10].rjust(10, b"\0"), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_job_id(text: str) -> bool:
    """True when ``text`` has the shape of a job id (cheap check before touching Redis)."""
    return bool(_ID_RE.match(text))


def job_id_time(job_id: str) -> float:
    """Creation time (unix seconds) encoded in a job id."""
    value = 0
    for ch in job_id[:10]:
        value = value * 32 + _ALPHABET.index(ch)
    return value / 1000.0
