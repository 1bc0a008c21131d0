"""Content identifiers: a small, dependency-free CID type.

kinoit writes CIDv1 in base32 (multibase prefix ``b``) and reads CIDv1 in
base32 or base58btc (``z``) as well as CIDv0 (``Qm…``, base58btc dag-pb). Only
the sha2-256 multihash and the raw, dag-pb and dag-cbor codecs are accepted:
they are all kinoit produces, and every block must be verifiable.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Final

from kinoit.errors import IntegrityError, InvalidCID

RAW: Final = 0x55
DAG_PB: Final = 0x70
DAG_CBOR: Final = 0x71
SHA2_256: Final = 0x12
SHA2_256_LENGTH: Final = 32

CODEC_NAMES: Final = {RAW: "raw", DAG_PB: "dag-pb", DAG_CBOR: "dag-cbor"}
CODECS_BY_NAME: Final = {name: code for code, name in CODEC_NAMES.items()}

# The four header bytes of a CIDv1 with each codec and a sha2-256 digest (each one a
# one-byte varint): the common case of decode_prefix, looked up at once.
_V1_SHA2_HEADERS: Final = {
    bytes((1, code, SHA2_256, SHA2_256_LENGTH)): code for code in CODEC_NAMES
}

_B58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX: Final = {c: i for i, c in enumerate(_B58_ALPHABET)}
# A CID string longer than this is not one kinoit could have made (CIDv1 sha2-256 is 59).
_MAX_CID_TEXT = 256


_SMALL_VARINTS: Final = [bytes((i,)) for i in range(0x80)]


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128, as multiformats and CAR use it."""
    if value < 0x80:
        if value < 0:
            raise ValueError("varint must be non-negative")
        return _SMALL_VARINTS[value]
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """Decode a minimal unsigned varint at ``offset``; return (value, next offset).

    Raises ValueError on truncation, more than 9 bytes, or a non-minimal encoding.
    """
    value = 0
    shift = 0
    pos = offset
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and pos - offset > 1:
                raise ValueError("non-minimal varint")
            return value, pos
        shift += 7
        if shift >= 63:
            raise ValueError("varint too long")


def _b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        digit = _B58_INDEX.get(char)
        if digit is None:
            raise ValueError(f"invalid base58btc character {char!r}")
        number = number * 58 + digit
    leading = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\x00" * leading + body


# RFC 4648 base32, lower case and unpadded as multibase writes it. The conversion goes
# through int(..., 32) (C speed) after mapping the alphabet onto the digits int() reads:
# base64's base32 is pure Python and was the largest cost of checking a stage's result.
_B32_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz234567"
_B32_TO_INT_DIGITS: Final = str.maketrans(_B32_ALPHABET, "0123456789abcdefghijklmnopqrstuv")
_B32_TEXT: Final = re.compile("[a-z2-7]*")
_B32_PAIRS: Final = [a + b for a in _B32_ALPHABET for b in _B32_ALPHABET]


def _b32decode(text: str) -> bytes:
    """Decode unpadded base32 (either case); ValueError for a bad character, a length no
    byte string has, or non-zero bits after the last byte (a non-canonical spelling)."""
    text = text.lower()
    if _B32_TEXT.fullmatch(text) is None:
        raise ValueError("invalid base32 (wrong length or characters)")
    size, spare = divmod(5 * len(text), 8)
    if spare >= 5:  # a whole character beyond the last byte
        raise ValueError("invalid base32 (wrong length or characters)")
    if not text:
        return b""
    number = int(text.translate(_B32_TO_INT_DIGITS), 32)
    if number & ((1 << spare) - 1):
        raise ValueError("non-canonical base32")
    return (number >> spare).to_bytes(size, "big")


def _b32encode(data: bytes) -> str:
    """Unpadded lower-case base32 of ``data``, two characters (10 bits) at a time."""
    bits = 8 * len(data)
    spare = -bits % 5
    number = int.from_bytes(data, "big") << spare
    count = (bits + spare) // 5
    out = [_B32_ALPHABET[number >> (5 * (count - 1))]] if count % 2 else []
    top = 5 * (count - count % 2) - 10
    out += [_B32_PAIRS[(number >> shift) & 0x3FF] for shift in range(top, -1, -10)]
    return "".join(out)


@dataclass(frozen=True, slots=True)
class CID:
    """A CID: version, codec and a sha2-256 multihash digest.

    ``str(cid)`` is CIDv1 base32 for version 1 and base58btc for version 0.
    """

    version: int
    codec: int
    digest: bytes
    # The text form, computed once: base64's base32 is pure Python and shows in profiles.
    _text: str | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.version not in (0, 1):
            raise InvalidCID(f"unsupported CID version {self.version}")
        if self.codec not in CODEC_NAMES:
            raise InvalidCID(
                f"unsupported codec 0x{self.codec:x} (kinoit handles raw, dag-pb, dag-cbor)"
            )
        if self.version == 0 and self.codec != DAG_PB:
            raise InvalidCID("a CIDv0 is always dag-pb")
        if len(self.digest) != SHA2_256_LENGTH:
            raise InvalidCID(f"sha2-256 digest must be 32 bytes, got {len(self.digest)}")

    # -- construction -------------------------------------------------------------------

    @classmethod
    def for_block(cls, codec: int, data: bytes | memoryview) -> CID:
        """The CIDv1 of ``data`` stored with ``codec`` (sha2-256)."""
        return cls(1, codec, hashlib.sha256(data).digest())

    @classmethod
    def parse(cls, text: str) -> CID:
        """Parse a CID string (CIDv1 base32/base58btc, or CIDv0); InvalidCID otherwise."""
        if not isinstance(text, str):
            raise InvalidCID(f"a CID must be a string, got {type(text).__name__}")
        shown = text if len(text) <= 80 else text[:77] + "..."
        if not text or len(text) > _MAX_CID_TEXT or text != text.strip():
            raise InvalidCID(f"not a CID: {shown!r}")
        try:
            if len(text) == 46 and text.startswith("Qm"):
                raw = _b58decode(text)
                if raw[:2] != bytes([SHA2_256, SHA2_256_LENGTH]) or len(raw) != 34:
                    raise ValueError("not a sha2-256 multihash")
                return cls(0, DAG_PB, raw[2:])
            prefix, body = text[0], text[1:]
            if prefix in "bB":
                if body != body.lower() and body != body.upper():
                    raise ValueError("mixed-case base32")
                raw = _b32decode(body)  # refuses a non-canonical spelling too
            elif prefix == "z":
                raw = _b58decode(body)
            else:
                raise ValueError(f"unsupported multibase prefix {prefix!r} (expected 'b')")
            cid = cls.from_bytes(raw)
            if prefix in "bB" and cid.version == 1:  # canonical: str(cid) is this text
                object.__setattr__(cid, "_text", "b" + body.lower())
        except InvalidCID as exc:
            raise InvalidCID(f"not a CID: {shown!r}: {exc.message}") from None
        except (ValueError, TypeError) as exc:
            raise InvalidCID(f"not a CID: {shown!r}: {exc}") from None
        if cid.version != 1:
            raise InvalidCID(f"not a CID: {shown!r}: a multibase CID must be version 1")
        return cid

    @classmethod
    def from_bytes(cls, raw: bytes | memoryview) -> CID:
        """Decode binary CID bytes (exactly one CID, nothing after it)."""
        cid, end = cls.decode_prefix(raw)
        if end != len(raw):
            raise InvalidCID(f"{len(raw) - end} trailing bytes after the CID")
        return cid

    @classmethod
    def decode_prefix(cls, raw: bytes | memoryview, offset: int = 0) -> tuple[CID, int]:
        """Decode one binary CID at ``offset``; return it and the offset after it."""
        codec = _V1_SHA2_HEADERS.get(bytes(raw[offset : offset + 4]))
        if codec is not None and len(raw) >= offset + 36:  # the usual CIDv1, at once
            return cls(1, codec, bytes(raw[offset + 4 : offset + 36])), offset + 36
        try:
            if raw[offset : offset + 2] == bytes([SHA2_256, SHA2_256_LENGTH]):
                end = offset + 34
                if len(raw) < end:
                    raise InvalidCID("truncated CIDv0")
                return cls(0, DAG_PB, bytes(raw[offset + 2 : end])), end
            version, pos = decode_varint(raw, offset)
            if version != 1:
                raise InvalidCID(f"unsupported CID version {version}")
            codec, pos = decode_varint(raw, pos)
            hash_code, pos = decode_varint(raw, pos)
            length, pos = decode_varint(raw, pos)
        except ValueError as exc:
            raise InvalidCID(f"malformed CID bytes: {exc}") from None
        if hash_code != SHA2_256:
            raise InvalidCID(f"unsupported multihash 0x{hash_code:x} (kinoit handles sha2-256)")
        if length != SHA2_256_LENGTH:
            raise InvalidCID(f"sha2-256 digest length must be 32, got {length}")
        end = pos + length
        if len(raw) < end:
            raise InvalidCID("truncated CID digest")
        return cls(1, codec, bytes(raw[pos:end])), end

    # -- views --------------------------------------------------------------------------

    @property
    def multihash(self) -> bytes:
        return bytes([SHA2_256, SHA2_256_LENGTH]) + self.digest

    def __bytes__(self) -> bytes:
        if self.version == 0:
            return self.multihash
        return encode_varint(1) + encode_varint(self.codec) + self.multihash

    def __str__(self) -> str:
        text = self._text
        if text is None:
            if self.version == 0:
                text = _b58encode(self.multihash)
            else:
                text = "b" + _b32encode(bytes(self))
            object.__setattr__(self, "_text", text)
        return text

    def __repr__(self) -> str:
        return f"CID({str(self)!r})"

    @property
    def codec_name(self) -> str:
        return CODEC_NAMES[self.codec]

    def to_v1(self) -> CID:
        """The same content as a CIDv1 (a CIDv0 becomes dag-pb CIDv1)."""
        return self if self.version == 1 else CID(1, self.codec, self.digest)

    def verify(self, data: bytes | memoryview) -> None:
        """Raise IntegrityError unless ``data`` hashes to this CID."""
        if hashlib.sha256(data).digest() != self.digest:
            raise IntegrityError(f"block {self} does not match its content (corrupted)")


def _b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    chars = []
    while number:
        number, rem = divmod(number, 58)
        chars.append(_B58_ALPHABET[rem])
    leading = len(data) - len(data.lstrip(b"\x00"))
    return "1" * leading + "".join(reversed(chars))


def parse_cid(value: str | CID) -> CID:
    """Accept a CID object or string (InvalidCID for anything else)."""
    if isinstance(value, CID):
        return value
    return CID.parse(value)
