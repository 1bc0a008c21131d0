"""CAR v1 writing and reading: independent readers agree, bad CARs give InvalidCAR."""

from __future__ import annotations

import io

import dag_cbor
import libipld
import pytest
from kinoit.errors import InvalidCAR
from kinoit.store.car import CarReader, encode_header, encode_section, write_car
from kinoit.store.cid import CID, DAG_CBOR, RAW, decode_varint, encode_varint
from kinoit.store.dagcbor import encode

LEAF_DATA = b"hello world\n"
LEAF = CID.for_block(RAW, LEAF_DATA)
NODE_DATA = encode({"file": LEAF, "n": 1})
NODE = CID.for_block(DAG_CBOR, NODE_DATA)


def car_bytes() -> bytes:
    out = io.BytesIO()
    write_car(out, [NODE], [(NODE, NODE_DATA), (LEAF, LEAF_DATA)])
    return out.getvalue()


def test_round_trip() -> None:
    reader = CarReader(io.BytesIO(car_bytes()))
    assert reader.roots == [NODE]
    assert list(reader) == [(NODE, NODE_DATA), (LEAF, LEAF_DATA)]


def test_header_read_by_the_dag_cbor_package_and_sections_by_hand() -> None:
    raw = car_bytes()
    length, pos = decode_varint(raw)
    header = dag_cbor.decode(raw[pos : pos + length])
    assert header["version"] == 1
    assert [bytes(r) for r in header["roots"]] == [bytes(NODE)]
    pos += length
    seen = []
    while pos < len(raw):
        size, pos = decode_varint(raw, pos)
        cid, offset = CID.decode_prefix(raw[pos : pos + size])
        seen.append((cid, raw[pos + offset : pos + size]))
        pos += size
    assert seen == [(NODE, NODE_DATA), (LEAF, LEAF_DATA)]


def test_libipld_reads_our_dag_cbor_car() -> None:
    # libipld's CAR reader only handles dag-cbor blocks, so give it one.
    out = io.BytesIO()
    write_car(out, [NODE], [(NODE, NODE_DATA)])
    header, blocks = libipld.decode_car(out.getvalue())
    assert header == {"version": 1, "roots": [bytes(NODE)]}
    assert blocks[bytes(NODE)] == {"file": bytes(LEAF), "n": 1}


def _framed(value: object) -> bytes:
    raw = encode(value)
    return encode_varint(len(raw)) + raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty CAR"),
        (b"\x80", "truncated"),
        (b"\x05\xa0", "truncated"),
        (encode_varint(3) + b"abc", "malformed CAR header"),
        (
            encode_varint(len(encode({"version": 2, "roots": []})))
            + encode({"version": 2, "roots": []}),
            "v1",
        ),
        (
            encode_varint(len(encode({"version": 1, "roots": 5})))
            + encode({"version": 1, "roots": 5}),
            "roots",
        ),
        (encode_varint(0), "header length 0"),
        (encode_varint(1 << 30), "header length"),
    ],
)
def test_bad_headers(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidCAR, match=message):
        list(CarReader(io.BytesIO(raw)))


def test_truncated_in_a_block() -> None:
    raw = car_bytes()
    for cut in (1, 5, len(LEAF_DATA) + 3):
        with pytest.raises(InvalidCAR, match="truncated"):
            list(CarReader(io.BytesIO(raw[:-cut])))


def test_block_not_matching_its_cid() -> None:
    raw = encode_header([LEAF]) + encode_section(LEAF, b"hello world?")
    with pytest.raises(InvalidCAR, match="does not match"):
        list(CarReader(io.BytesIO(raw)))


def test_garbage_section_cid() -> None:
    raw = encode_header([LEAF]) + encode_varint(4) + b"\x05\x01\x02\x03"
    with pytest.raises(InvalidCAR, match="bad block CID"):
        list(CarReader(io.BytesIO(raw)))


def test_oversized_section_is_refused_before_reading_it() -> None:
    raw = encode_header([LEAF]) + encode_varint(1 << 40)
    with pytest.raises(InvalidCAR, match="section length"):
        list(CarReader(io.BytesIO(raw)))
