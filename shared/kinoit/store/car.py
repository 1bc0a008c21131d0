"""CAR v1: write and read a stream of (CID, block) sections behind a DAG-CBOR header.

Layout: ``varint(len(header)) header`` where header is ``{"roots": [CID…],
"version": 1}``, then for each block ``varint(len(cid) + len(data)) cid data``.
The reader streams (one block in memory at a time), verifies every block
against its CID, and raises InvalidCAR for anything truncated or malformed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO

from kinoit.errors import IntegrityError, InvalidCAR, InvalidCID, InvalidParameter
from kinoit.store import dagcbor
from kinoit.store.cid import CID, encode_varint

# A CAR header is a handful of CIDs; refuse silly sizes before allocating them.
MAX_HEADER_BYTES = 1 << 20
# Kubo refuses blocks above 2 MiB by default (4 MiB hard limit in bitswap); allow headroom.
MAX_SECTION_BYTES = 8 << 20


def encode_header(roots: Iterable[CID]) -> bytes:
    """The varint-prefixed DAG-CBOR header of a CAR v1."""
    header = dagcbor.encode({"roots": list(roots), "version": 1})
    return encode_varint(len(header)) + header


def encode_section(cid: CID, data: bytes) -> bytes:
    """One varint-prefixed ``cid + data`` section."""
    raw = bytes(cid)
    return encode_varint(len(raw) + len(data)) + raw + data


def write_car(out: IO[bytes], roots: Iterable[CID], blocks: Iterable[tuple[CID, bytes]]) -> None:
    """Write a CAR v1 to ``out`` from an iterable of blocks."""
    out.write(encode_header(roots))
    for cid, data in blocks:
        out.write(encode_section(cid, data))


def _read_varint(stream: IO[bytes], what: str) -> int | None:
    """Read one varint; None at a clean end of stream (before its first byte)."""
    value = 0
    shift = 0
    count = 0
    while True:
        byte = stream.read(1)
        if not byte:
            if count == 0:
                return None
            raise InvalidCAR(f"truncated CAR: the {what} length ends early")
        count += 1
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            if byte[0] == 0 and count > 1:
                raise InvalidCAR(f"malformed CAR: non-minimal varint in the {what} length")
            return value
        shift += 7
        if shift >= 63:
            raise InvalidCAR(f"malformed CAR: the {what} length varint is too long")


def _read_exact(stream: IO[bytes], n: int, what: str) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        piece = stream.read(n - len(buf))
        if not piece:
            raise InvalidCAR(f"truncated CAR: {what} has {len(buf)} of {n} bytes")
        buf += piece
    return bytes(buf)


class CarReader:
    """Reads a CAR v1 stream: ``roots`` after construction, then iterate verified blocks."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        length = _read_varint(stream, "header")
        if length is None:
            raise InvalidCAR("empty CAR: no header")
        if length == 0 or length > MAX_HEADER_BYTES:
            raise InvalidCAR(f"malformed CAR: header length {length}")
        raw = _read_exact(stream, length, "the header")
        try:
            header = dagcbor.decode(raw)
        except InvalidParameter as exc:
            raise InvalidCAR(f"malformed CAR header: {exc.message}") from None
        if not isinstance(header, dict) or header.get("version") != 1:
            version = header.get("version") if isinstance(header, dict) else None
            raise InvalidCAR(f"not a CAR v1 (header version {version!r})")
        roots = header.get("roots")
        if not isinstance(roots, list) or not all(isinstance(r, CID) for r in roots):
            raise InvalidCAR("malformed CAR header: roots must be a list of CIDs")
        self.roots: list[CID] = roots

    def __iter__(self) -> Iterator[tuple[CID, bytes]]:
        while True:
            length = _read_varint(self._stream, "section")
            if length is None:
                return
            if length == 0 or length > MAX_SECTION_BYTES:
                raise InvalidCAR(f"malformed CAR: section length {length}")
            section = _read_exact(self._stream, length, "a block section")
            try:
                cid, offset = CID.decode_prefix(section)
            except InvalidCID as exc:
                raise InvalidCAR(f"malformed CAR: bad block CID: {exc.message}") from None
            data = section[offset:]
            try:
                cid.verify(data)
            except IntegrityError:
                raise InvalidCAR(f"CAR block {cid} does not match its CID") from None
            yield cid, data
