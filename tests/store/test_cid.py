"""CID parsing, formatting and verification."""

from __future__ import annotations

import base64
import hashlib

import pytest
from kinoit.errors import IntegrityError, InvalidCID
from kinoit.store.cid import (
    CID,
    DAG_CBOR,
    DAG_PB,
    RAW,
    _b32decode,
    _b32encode,
    decode_varint,
    encode_varint,
)

EMPTY = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
HELLO = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
# `ipfs add` (CIDv0) of "hello world\n" and the same DAG as CIDv1 (checked with the
# independent `multiformats` package).
HELLO_V0 = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
HELLO_V0_AS_V1 = "bafybeicg2rebjoofv4kbyovkw7af3rpiitvnl6i7ckcywaq6xjcxnc2mby"
HELLO_BASE58 = "zb2rhi36Gc9GJWijLEL6zW45MBux5FcFv5gJmjXA7VAMozEXY"


def test_kubo_vectors_round_trip() -> None:
    for text, data in ((EMPTY, b""), (HELLO, b"hello world\n")):
        cid = CID.parse(text)
        assert cid == CID.for_block(RAW, data)
        assert str(cid) == text
        assert CID.from_bytes(bytes(cid)) == cid
        cid.verify(data)


def test_cidv0_parses_and_converts_to_v1() -> None:
    cid = CID.parse(HELLO_V0)
    assert (cid.version, cid.codec) == (0, DAG_PB)
    assert str(cid) == HELLO_V0
    assert str(cid.to_v1()) == HELLO_V0_AS_V1
    assert CID.from_bytes(bytes(cid)) == cid


def test_uppercase_base32_and_base58_v1_are_read() -> None:
    cid = CID.parse(HELLO)
    assert CID.parse("B" + HELLO[1:].upper()) == cid
    assert CID.parse(HELLO_BASE58) == cid


def test_for_block_uses_sha256() -> None:
    cid = CID.for_block(DAG_CBOR, b"\xa0")
    assert cid.digest == hashlib.sha256(b"\xa0").digest()
    assert str(cid).startswith("bafyrei")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "Qm123",
        EMPTY[:-1],  # truncated digest
        EMPTY + "a",  # trailing byte
        "m" + EMPTY[1:],  # unsupported multibase
        " " + EMPTY,
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk!",
        "bafkreihdwdcefGH4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",  # mixed case
        "bagaaierasords4njcts6vs7qvdjfcvgnume4hqohf65zsfguprqphs3icwea",  # dag-json codec
        "x" * 5000,
    ],
)
def test_invalid_strings_raise_invalid_cid(text: str) -> None:
    with pytest.raises(InvalidCID, match="CID"):
        CID.parse(text)


def test_base32_matches_the_standard_library_at_every_length() -> None:
    # the fast base32 (int() at C speed) against base64's, byte for byte
    for size in range(0, 80):
        data = hashlib.sha512(bytes([size])).digest()[: size % 64] + bytes(size // 64)
        text = base64.b32encode(data).decode().lower().rstrip("=")
        assert _b32encode(data) == text
        assert _b32decode(text) == data == _b32decode(text.upper())


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("b" + EMPTY[1:-1] + "v", "non-canonical"),  # a spare bit after the last byte set
        ("ba", "invalid base32"),  # five bits: no byte
        ("bafkre1hdw", "invalid base32"),  # a digit base32 does not have
        ("bafk_reih", "invalid base32"),  # int() would accept an underscore
        ("bafkrei hdw", "invalid base32"),
    ],
)
def test_malformed_base32_is_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(InvalidCID, match=why):
        CID.parse(text)


def test_a_parsed_cid_keeps_its_canonical_text() -> None:
    assert str(CID.parse("B" + HELLO[1:].upper())) == HELLO
    cid = CID.parse(HELLO)
    assert str(CID(cid.version, cid.codec, cid.digest)) == HELLO


def test_non_string_is_invalid() -> None:
    with pytest.raises(InvalidCID):
        CID.parse(b"bafy")  # type: ignore[arg-type]


def test_unsupported_hash_is_invalid() -> None:
    # CIDv1 raw with an identity multihash (0x00) of 3 bytes.
    raw = bytes([1, RAW, 0x00, 3]) + b"abc"
    with pytest.raises(InvalidCID, match="multihash"):
        CID.from_bytes(raw)


def test_verify_detects_changed_bytes() -> None:
    with pytest.raises(IntegrityError, match="does not match"):
        CID.parse(HELLO).verify(b"hello world?")


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**32, 2**63 - 1])
def test_varint_round_trip(value: int) -> None:
    encoded = encode_varint(value)
    assert decode_varint(encoded) == (value, len(encoded))


def test_varint_rejects_non_minimal_and_truncated() -> None:
    with pytest.raises(ValueError, match="non-minimal"):
        decode_varint(b"\x80\x00")
    with pytest.raises(ValueError, match="truncated"):
        decode_varint(b"\x80")
