"""Typed effects: the writes a caller may ask an engine script to make for it.

:meth:`kinoit.jobs.JobEngine.complete_step` applies them only when the result is
accepted (a metric counter, a result-cache entry), in the same atomic script; the
``apply_effects`` script applies them on their own. They are data, encoded to JSON
and interpreted by ``lua/lib/effects.lua``; no caller hands Redis a raw command.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class HashIncrement:
    """HINCRBY ``key`` ``field`` by ``amount``."""

    key: str
    field: str
    amount: int = 1


@dataclass(frozen=True)
class HashIncrementFloat:
    """HINCRBYFLOAT ``key`` ``field`` by ``amount`` (sent as its ``repr``, exactly)."""

    key: str
    field: str
    amount: float


@dataclass(frozen=True)
class SetAdd:
    """SADD ``member`` to the set ``key``."""

    key: str
    member: str


@dataclass(frozen=True)
class StoreValue:
    """SET ``key`` to ``value``."""

    key: str
    value: str


Effect = HashIncrement | HashIncrementFloat | SetAdd | StoreValue


def _encode(effect: Effect) -> dict[str, str]:
    match effect:
        case HashIncrement(key, field, amount):
            return {"op": "hincrby", "key": key, "field": field, "amount": str(int(amount))}
        case HashIncrementFloat(key, field, amount):
            return {"op": "hincrbyfloat", "key": key, "field": field, "amount": repr(amount)}
        case SetAdd(key, member):
            return {"op": "sadd", "key": key, "member": member}
        case StoreValue(key, value):
            return {"op": "set", "key": key, "value": value}
    raise TypeError(f"not an effect: {effect!r}")


def encode_effects(effects: Iterable[Effect]) -> str:
    """The JSON that ``lua/lib/effects.lua`` applies."""
    return json.dumps([_encode(e) for e in effects], separators=(",", ":"))
