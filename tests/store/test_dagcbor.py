"""Strict DAG-CBOR: the same bytes as independent codecs, and everything else refused."""

from __future__ import annotations

import math
from typing import Any

import dag_cbor
import libipld
import pytest
from kinoit.errors import InvalidParameter
from kinoit.store.cid import CID, DAG_CBOR
from kinoit.store.dagcbor import decode, encode, from_dag_json, links_of, to_dag_json
from multiformats import CID as MultiformatsCID

LEAF = CID.parse("bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4")
NODE = CID.parse("bafybeicg2rebjoofv4kbyovkw7af3rpiitvnl6i7ckcywaq6xjcxnc2mby")

VALUES: list[Any] = [
    0,
    23,
    24,
    255,
    256,
    65535,
    65536,
    2**32 - 1,
    2**32,
    2**64 - 1,
    -1,
    -24,
    -25,
    -(2**64),
    1.5,
    1.0,
    -0.0,
    1e300,
    "",
    "é漢字",
    "x" * 300,
    b"",
    b"\x00" * 70000,
    True,
    False,
    None,
    [],
    {},
    [1, [2, [3]]],
    LEAF,
    {
        "segments": [LEAF, NODE],
        "aa": 1,
        "b": {"z": None, "y": 2.25},
        "bb": b"bytes",
        "ccc": [LEAF],
        "a": "first",
    },
]


def _to_multiformats(value: Any) -> Any:
    if isinstance(value, CID):
        return MultiformatsCID.decode(str(value))
    if isinstance(value, dict):
        return {k: _to_multiformats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_multiformats(v) for v in value]
    return value


@pytest.mark.parametrize("value", VALUES, ids=lambda v: repr(v)[:30])
def test_bytes_equal_the_dag_cbor_package(value: Any) -> None:
    assert encode(value) == dag_cbor.encode(_to_multiformats(value))


@pytest.mark.parametrize("value", VALUES, ids=lambda v: repr(v)[:30])
def test_round_trip(value: Any) -> None:
    decoded = decode(encode(value))
    assert decoded == value
    if isinstance(value, float):
        assert math.copysign(1, decoded) == math.copysign(1, value)


def test_bytes_equal_libipld_for_values_without_plain_bytes() -> None:
    # libipld takes links as raw CID bytes, so only values without a bytes field compare.
    value = {"b": [1, 2.5, None], "link": LEAF, "a": "x", "nested": {"l": [NODE]}}

    def lib(v: Any) -> Any:
        if isinstance(v, CID):
            return bytes(v)
        if isinstance(v, dict):
            return {k: lib(x) for k, x in v.items()}
        if isinstance(v, list):
            return [lib(x) for x in v]
        return v

    assert encode(value) == libipld.encode_dag_cbor(lib(value))
    # And libipld accepts our bytes as strict DAG-CBOR.
    assert libipld.decode_dag_cbor(encode(value))["a"] == "x"


def test_links_are_tag_42_with_a_zero_prefix() -> None:
    raw = encode(LEAF)
    assert raw[:2] == b"\xd8\x2a"
    assert raw[4] == 0
    assert raw[5:] == bytes(LEAF)


def test_bytes_that_look_like_a_cid_stay_bytes() -> None:
    value = {"b": bytes(LEAF)}
    assert decode(encode(value)) == value
    assert isinstance(decode(encode(value))["b"], bytes)


def test_links_of_lists_every_link_in_order() -> None:
    # Encoding order is length first, then bytes: "a", "z", "bb".
    value = {"z": LEAF, "bb": NODE, "a": [NODE, {"x": LEAF}]}
    assert list(links_of(value)) == [NODE, LEAF, LEAF, NODE]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.nan, "NaN"),
        (math.inf, "inf"),
        ({1: "x"}, "keys must be strings"),
        ({"a": {b"k": 1}}, "keys must be strings"),
        (2**64, "64 bits"),
        (-(2**64) - 1, "64 bits"),
        ({1, 2}, "cannot encode a set"),
        (object(), "cannot encode"),
    ],
)
def test_values_without_a_dag_cbor_form_are_refused(value: Any, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        encode(value)


def test_deep_nesting_is_refused() -> None:
    value: Any = []
    for _ in range(300):
        value = [value]
    with pytest.raises(InvalidParameter, match="deeper"):
        encode(value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "truncated"),
        (b"\x18\x05", "non-canonical"),  # 5 in two bytes
        (b"\x19\x00\x10", "non-canonical"),
        (b"\x9f\x01\xff", "indefinite"),
        (b"\xf9\x3c\x00", "64-bit"),  # half float
        (b"\xfa\x3f\x80\x00\x00", "64-bit"),  # single float
        (b"\xfb\x7f\xf8\x00\x00\x00\x00\x00\x00", "NaN"),
        (b"\xf7", "simple value"),  # undefined
        (b"\xc1\x01", "tag 1"),
        (b"\xa2\x61\x62\x01\x61\x61\x02", "canonical order"),  # {"b":1,"a":2}
        (b"\xa2\x61\x61\x01\x61\x61\x02", "duplicated"),
        (b"\xa1\x01\x02", "keys must be strings"),
        (b"\x62\xc3\x28", "UTF-8"),
        (b"\x01\x02", "trailing"),
        (b"\xd8\x2a\x43\x01\x02\x03", "0x00"),
        (b"\xd8\x2a\x43\x00\x01\x02", "bad CID"),
    ],
)
def test_non_canonical_or_malformed_bytes_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        decode(raw)


def test_dag_json_round_trip_with_links_and_bytes() -> None:
    value = {"file": LEAF, "blob": b"\x00\xffhi", "n": [1, 2.5, None, True], "s": "é"}
    text = to_dag_json(value)
    assert '{"/":"' + str(LEAF) + '"}' in text
    assert '{"/":{"bytes":"AP9oaQ"}}' in text
    assert from_dag_json(text) == value


def test_dag_json_keys_are_sorted_bytewise() -> None:
    assert to_dag_json({"b": 1, "aa": 2, "a": 3}) == '{"a":3,"aa":2,"b":1}'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ('{"a": NaN}', "NaN"),
        ('{"a": Infinity}', "Infinity"),
        ('{"a": 1, "a": 2}', "duplicate"),
        ('{"/": "notacid"}', "bad link"),
        ('{"/": 5}', "must be a link"),
        ('{"/": {"bytes": "!!"}}', "base64"),
        ('{"/": "' + str(LEAF) + '", "x": 1}', "must be a link"),
        ("18446744073709551616", "64 bits"),
    ],
)
def test_bad_dag_json_is_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        from_dag_json(text)


def test_cid_of_a_block_matches_the_dag_cbor_package() -> None:
    value = {"segments": [LEAF], "v": 1}
    ours = CID.for_block(DAG_CBOR, encode(value))
    theirs = MultiformatsCID("base32", 1, "dag-cbor", ("sha2-256", ours.digest))
    assert str(ours) == str(theirs)
