"""Strict DAG-CBOR, and the dag-json form the CLI speaks.

Values are plain Python data: ``dict`` (str keys), ``list``/``tuple``, ``str``,
``bytes``, ``int`` (64-bit range), ``float`` (finite), ``bool``, ``None``, and
:class:`~kinoit.store.cid.CID` for links (CBOR tag 42).

Encoding is canonical: shortest integer and length heads, map keys sorted by
length then bytes, floats always 64-bit. Decoding accepts only that canonical
form (no indefinite lengths, no other tags, no duplicate or unsorted keys, no
trailing bytes), so every value has exactly one encoding and one CID.

Why not ``libipld`` for the codec itself: libipld 3.x encodes any ``bytes``
value that happens to parse as a CID as a link, and decodes links back as plain
``bytes``, so bytes and links cannot be told apart in a round trip. The tests
check these bytes against ``libipld`` and the independent ``dag-cbor`` package.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Iterator
from typing import Any

from kinoit.errors import InvalidCID, InvalidParameter
from kinoit.store.cid import CID

# Nesting deeper than this is not a manifest; refuse instead of overflowing the stack.
MAX_DEPTH = 256
_U64 = 1 << 64
_FIELD = "dag-cbor"


def _fail(message: str) -> InvalidParameter:
    return InvalidParameter(_FIELD, message)


# -- encode -----------------------------------------------------------------------------


def _head(major: int, value: int, out: bytearray) -> None:
    if value < 24:
        out.append(major << 5 | value)
    elif value < 0x100:
        out += bytes((major << 5 | 24, value))
    elif value < 0x10000:
        out.append(major << 5 | 25)
        out += value.to_bytes(2, "big")
    elif value < 0x100000000:
        out.append(major << 5 | 26)
        out += value.to_bytes(4, "big")
    else:
        out.append(major << 5 | 27)
        out += value.to_bytes(8, "big")


def _key_order(item: tuple[bytes, Any]) -> tuple[int, bytes]:
    return len(item[0]), item[0]


def _encode(value: Any, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _fail(f"nested deeper than {MAX_DEPTH} levels")
    if value is None:
        out.append(0xF6)
    elif value is True:
        out.append(0xF5)
    elif value is False:
        out.append(0xF4)
    elif isinstance(value, int):
        if value >= 0:
            if value >= _U64:
                raise _fail(f"integer {value} does not fit in 64 bits")
            _head(0, value, out)
        else:
            if -value > _U64:
                raise _fail(f"integer {value} does not fit in 64 bits")
            _head(1, -1 - value, out)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(f"{value} is not allowed (NaN and infinities have no DAG-CBOR form)")
        out.append(0xFB)
        out += struct.pack(">d", value)
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        _head(3, len(raw), out)
        out += raw
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        _head(2, len(raw), out)
        out += raw
    elif isinstance(value, CID):
        raw = b"\x00" + bytes(value)
        out += b"\xd8\x2a"  # tag 42
        _head(2, len(raw), out)
        out += raw
    elif isinstance(value, list | tuple):
        _head(4, len(value), out)
        for item in value:
            _encode(item, out, depth + 1)
    elif isinstance(value, dict):
        items: list[tuple[bytes, Any]] = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise _fail(f"map keys must be strings, got {type(key).__name__} {key!r}")
            items.append((key.encode("utf-8"), item))
        items.sort(key=_key_order)
        _head(5, len(items), out)
        for raw_key, item in items:
            _head(3, len(raw_key), out)
            out += raw_key
            _encode(item, out, depth + 1)
    else:
        raise _fail(f"cannot encode a {type(value).__name__} value")


def encode(value: Any) -> bytes:
    """Strict, canonical DAG-CBOR bytes of ``value`` (InvalidParameter if it has no such form)."""
    out = bytearray()
    _encode(value, out, 0)
    return bytes(out)


# -- decode -----------------------------------------------------------------------------


class _Decoder:
    """Strict decoder; the common cases (small heads, short keys) are inlined for speed."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.end = len(data)
        self.pos = 0

    def _take(self, n: int) -> bytes:
        start = self.pos
        stop = start + n
        if stop > self.end:
            raise _fail("truncated data")
        self.pos = stop
        return self.data[start:stop]

    def _byte(self) -> int:
        pos = self.pos
        if pos >= self.end:
            raise _fail("truncated data")
        self.pos = pos + 1
        return self.data[pos]

    def _argument(self, info: int) -> int:
        if info < 24:
            return info
        if info == 24:
            value = self._byte()
            if value < 24:
                raise _fail("non-canonical integer encoding")
            return value
        if info in (25, 26, 27):
            width = 1 << (info - 24)
            value = int.from_bytes(self._take(width), "big")
            if value < 1 << (4 * width):
                raise _fail("non-canonical integer encoding")
            return value
        if info == 31:
            raise _fail("indefinite-length items are not allowed")
        raise _fail(f"reserved additional information {info}")

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise _fail(f"nested deeper than {MAX_DEPTH} levels")
        initial = self._byte()
        major, info = initial >> 5, initial & 0x1F
        if major == 7:
            if info == 20:
                return False
            if info == 21:
                return True
            if info == 22:
                return None
            if info == 27:
                result = struct.unpack(">d", self._take(8))[0]
                if not math.isfinite(result):
                    raise _fail("NaN and infinities are not allowed")
                return result
            if info in (25, 26):
                raise _fail("floats must be 64-bit")
            raise _fail(f"simple value {info} is not allowed")
        argument = info if info < 24 else self._argument(info)
        if major == 0:
            return argument
        if major == 3:
            try:
                return self._take(argument).decode("utf-8")
            except UnicodeDecodeError:
                raise _fail("string is not valid UTF-8") from None
        if major == 5:
            return self._map(argument, depth)
        if major == 4:
            return [self.value(depth + 1) for _ in range(argument)]
        if major == 1:
            return -1 - argument
        if major == 2:
            return self._take(argument)
        # major == 6: tags
        if argument != 42:
            raise _fail(f"tag {argument} is not allowed (only 42, CID links)")
        link_head = self._byte()
        if link_head >> 5 != 2:
            raise _fail("tag 42 must wrap a byte string")
        raw = self._take(self._argument(link_head & 0x1F))
        if not raw or raw[0] != 0:
            raise _fail("a CID link must start with a 0x00 byte")
        try:
            return CID.from_bytes(raw[1:])
        except InvalidCID as exc:
            raise _fail(f"bad CID link: {exc.message}") from None

    def _map(self, count: int, depth: int) -> dict[str, Any]:
        mapping: dict[str, Any] = {}
        previous = b""
        for index in range(count):
            key_head = self._byte()
            if key_head >> 5 != 3:
                raise _fail("map keys must be strings")
            info = key_head & 0x1F
            raw_key = self._take(info if info < 24 else self._argument(info))
            if index and (
                len(previous) > len(raw_key)
                or (len(previous) == len(raw_key) and previous >= raw_key)
            ):
                raise _fail("map keys are duplicated or not in canonical order")
            previous = raw_key
            try:
                key = raw_key.decode("utf-8")
            except UnicodeDecodeError:
                raise _fail("map key is not valid UTF-8") from None
            mapping[key] = self.value(depth + 1)
        return mapping


def decode(data: bytes) -> Any:
    """Decode strict DAG-CBOR (InvalidParameter for anything non-canonical or malformed)."""
    decoder = _Decoder(bytes(data))
    result = decoder.value(0)
    if decoder.pos != len(decoder.data):
        raise _fail(f"{len(decoder.data) - decoder.pos} trailing bytes")
    return result


def links_of(value: Any) -> Iterator[CID]:
    """Every CID link inside a decoded value, in encoding order."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, CID):
            yield item
        elif isinstance(item, dict):
            stack.extend(item[k] for k in reversed(sorted(item, key=_text_key_order)))
        elif isinstance(item, list | tuple):
            stack.extend(reversed(item))


def _text_key_order(key: str) -> tuple[int, bytes]:
    raw = key.encode("utf-8")
    return len(raw), raw


# -- dag-json ---------------------------------------------------------------------------


def _to_json(value: Any) -> Any:
    if isinstance(value, CID):
        return {"/": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"/": {"bytes": base64.b64encode(bytes(value)).decode("ascii").rstrip("=")}}
    if isinstance(value, dict):
        return {k: _to_json(value[k]) for k in sorted(value, key=lambda k: k.encode("utf-8"))}
    if isinstance(value, list | tuple):
        return [_to_json(item) for item in value]
    return value


def to_dag_json(value: Any) -> str:
    """dag-json of a value: links as ``{"/": cid}``, bytes as ``{"/": {"bytes": b64}}``."""
    encode(value)  # the same strictness as DAG-CBOR (finite floats, str keys, 64-bit ints)
    return json.dumps(_to_json(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _reject_constant(name: str) -> Any:
    raise _fail(f"{name} is not allowed")


def _pairs(pairs: list[tuple[str, Any]]) -> Any:
    result: dict[str, Any] = {}
    for key, item in pairs:
        if key in result:
            raise _fail(f"duplicate map key {key!r}")
        result[key] = item
    if "/" in result:
        return _from_reserved(result)
    return result


def _from_reserved(obj: dict[str, Any]) -> Any:
    inner = obj["/"]
    if len(obj) == 1 and isinstance(inner, str):
        try:
            return CID.parse(inner)
        except InvalidCID as exc:
            raise _fail(f"bad link {{'/': {inner!r}}}: {exc.message}") from None
    if len(obj) == 1 and isinstance(inner, dict) and set(inner) == {"bytes"}:
        text = inner["bytes"]
        if isinstance(text, str):
            try:
                return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
            except ValueError:
                raise _fail(f"bad base64 in bytes {text[:40]!r}") from None
    raise _fail('a map with the key "/" must be a link {"/": cid} or bytes {"/": {"bytes": b64}}')


def from_dag_json(text: str | bytes) -> Any:
    """Parse dag-json into a value ready for :func:`encode` (InvalidParameter when invalid)."""
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise _fail(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise _fail("nested too deeply") from None
    except ValueError as exc:  # not UTF-8, or an integer beyond Python's digit limit
        raise _fail(f"unacceptable JSON value: {str(exc)[:120]}") from None
    encode(value)  # range and depth checks
    return value
