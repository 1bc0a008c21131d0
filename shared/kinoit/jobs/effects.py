"""Typed effects: the writes a caller may ask an engine script to make for it.

:meth:`kinoit.jobs.JobEngine.complete_step` applies them only when the result is
accepted (a metric counter, a result-cache entry), in the same atomic script; the
``apply_effects`` script applies them on their own. They are data, encoded to JSON
and interpreted by ``lua/lib/effects.lua``; no caller hands Redis a raw command.

Each travels as a positional array ``[op, key, field | member | value, amount]``
(:meth:`wire`): a segment callback sends five or six, and arrays are cheaper than
objects to encode here and to decode in Lua.
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

    def wire(self) -> list[str]:
        """``[op, key, ...]``, as the module docstring says."""
        return ["hincrby", self.key, self.field, str(int(self.amount))]


@dataclass(frozen=True)
class HashIncrementFloat:
    """HINCRBYFLOAT ``key`` ``field`` by ``amount`` (sent as its ``repr``, exactly)."""

    key: str
    field: str
    amount: float

    def wire(self) -> list[str]:
        """``[op, key, ...]``, as the module docstring says."""
        return ["hincrbyfloat", self.key, self.field, repr(self.amount)]


@dataclass(frozen=True)
class SetAdd:
    """SADD ``member`` to the set ``key``."""

    key: str
    member: str

    def wire(self) -> list[str]:
        """``[op, key, ...]``, as the module docstring says."""
        return ["sadd", self.key, self.member]


@dataclass(frozen=True)
class StoreValue:
    """SET ``key`` to ``value``."""

    key: str
    value: str

    def wire(self) -> list[str]:
        """``[op, key, ...]``, as the module docstring says."""
        return ["set", self.key, self.value]


Effect = HashIncrement | HashIncrementFloat | SetAdd | StoreValue


def encode_effects(effects: Iterable[Effect]) -> str:
    """The JSON that ``lua/lib/effects.lua`` applies."""
    wire = []
    for effect in effects:
        if type(effect) not in _EFFECT_TYPES:
            raise TypeError(f"not an effect: {effect!r}")
        wire.append(effect.wire())
    return _DUMPS(wire)


_EFFECT_TYPES = frozenset((HashIncrement, HashIncrementFloat, SetAdd, StoreValue))
_DUMPS = json.JSONEncoder(separators=(",", ":")).encode
