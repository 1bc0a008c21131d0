"""Against a real Kubo: same CIDs as `ipfs add --only-hash`, CARs both ways, the Kubo backend."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import pytest
from kinoit.errors import (
    IntegrityError,
    InvalidCAR,
    InvalidCID,
    InvalidParameter,
    NotFound,
    StoreUnavailable,
)
from kinoit.store import EmbeddedStore
from kinoit.store.base import iter_chunks
from kinoit.store.car import CarReader, encode_header, encode_section
from kinoit.store.cid import CID, DAG_PB
from kinoit.store.kubo import KuboStore, decode_pin_name, encode_pin_name
from kinoit.store.unixfs import FileImporter

from .conftest import BIG_SIZE, FILE_SIZES, free_port_closed, our_cid, payload
from .fake_http import Answer, Request, fake_server

pytestmark = pytest.mark.kubo
EMPTY = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def kubo_only_hash(kubo: Any, data: bytes, *extra: str) -> str:
    out = kubo.cli("add", "-Q", "--only-hash", "--cid-version=1", *extra, input=data)
    return str(out.decode().strip())


@pytest.fixture
def kubo_store(kubo: Any) -> KuboStore:
    return KuboStore(kubo.api_url, timeout=30, retries=1)


# -- CIDs identical to Kubo's -------------------------------------------------------------


def test_kubo_vectors(kubo: Any) -> None:
    assert kubo_only_hash(kubo, b"") == str(our_cid(b"")[0])
    assert kubo_only_hash(kubo, b"hello world\n") == str(our_cid(b"hello world\n")[0])


@pytest.mark.parametrize("size", FILE_SIZES)
def test_cid_matches_kubo(kubo: Any, size: int) -> None:
    data = payload(size)
    assert kubo_only_hash(kubo, data) == str(our_cid(data)[0])


def test_50mb_cid_matches_kubo(kubo: Any, big_payload: bytes) -> None:
    assert len(big_payload) == BIG_SIZE
    assert kubo_only_hash(kubo, big_payload) == str(our_cid(big_payload)[0])


@pytest.mark.parametrize(("chunks", "links"), [(10, 3), (28, 3), (100, 4)])
def test_multi_level_tree_matches_kubo(kubo: Any, chunks: int, links: int) -> None:
    # Kubo's default tree needs 174*174 chunks (7.9 GB) for a third level; with tiny
    # chunks and few links per node the same layout code builds it from a few KiB.
    data = payload(chunks * 64 - 5)
    importer = FileImporter(max_links=links)
    for chunk in iter_chunks(io.BytesIO(data), 64):
        importer.push(chunk)
    importer.finish()
    theirs = kubo_only_hash(kubo, data, "--chunker=size-64", f"--max-file-links={links}")
    assert theirs == str(importer.root)


# -- the Kubo backend ---------------------------------------------------------------------


def test_add_and_cat_round_trip(kubo_store: KuboStore) -> None:
    for size in (0, 12, 3 * 262144 + 9):
        data = payload(size, seed=size)
        cid = kubo_store.add_bytes(data, name=f"f{size}")
        assert cid == str(our_cid(data)[0])
        assert b"".join(kubo_store.cat(cid)) == data
        assert kubo_store.has(cid)


def test_cat_of_a_cidv0_file_with_dag_pb_leaves(kubo_store: KuboStore, kubo: Any) -> None:
    # Kubo's default add (CIDv0) puts the data inside dag-pb leaves; cat still verifies it.
    data = payload(2 * 262144 + 99, seed=4)
    v0 = kubo.cli("add", "-Q", "--pin=false", input=data).decode().strip()
    assert v0.startswith("Qm")
    assert b"".join(kubo_store.cat(v0)) == data
    small = kubo.cli("add", "-Q", "--pin=false", input=b"tiny").decode().strip()
    assert b"".join(kubo_store.cat(small)) == b"tiny"


def test_add_from_path_and_get_file(kubo_store: KuboStore, tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    data = payload(2 * 262144 + 1, seed=3)
    src.write_bytes(data)
    cid = kubo_store.add(src, pin=False)
    assert kubo_store.get_file(cid, tmp_path / "out.bin").read_bytes() == data


def test_dag_put_get_and_block_get(kubo_store: KuboStore, tmp_path: Path) -> None:
    leaf = CID.parse(kubo_store.add_bytes(b"hello world\n"))
    value = {"file": leaf, "n": [1, 2.5, None], "b": b"\x00\x01"}
    cid = kubo_store.dag_put(value)
    assert cid == EmbeddedStore(tmp_path / "s").dag_put(value)  # same bytes, same CID
    assert kubo_store.dag_get(cid) == value
    assert kubo_store.block_get(str(leaf)) == b"hello world\n"


def test_pins_with_names_and_expiry(kubo_store: KuboStore) -> None:
    cid = kubo_store.add_bytes(payload(100, seed=11), pin=False)
    assert cid not in {p.cid for p in kubo_store.pin_ls()}
    kubo_store.pin_add(cid, name="job-7", expire_in=3600)
    pins = {p.cid: p for p in kubo_store.pin_ls()}
    assert pins[cid].name == "job-7" and pins[cid].expires_at is not None
    kubo_store.pin_rm(cid)
    assert cid not in {p.cid for p in kubo_store.pin_ls()}
    with pytest.raises(NotFound):
        kubo_store.pin_rm(cid)


def test_gc_unpins_expired_pins_and_collects(kubo_store: KuboStore, kubo: Any) -> None:
    cid = kubo_store.add_bytes(payload(300, seed=12), pin=False)
    # An expiry already in the past, written the way pin_add writes it.
    kubo.cli("pin", "add", f"--name={encode_pin_name('old', 1.0)}", cid)
    kept = kubo_store.add_bytes(payload(300, seed=13), name="kept")
    assert cid not in {p.cid for p in kubo_store.pin_ls()}
    assert kubo_store.gc() >= 1
    assert not kubo_store.has(cid)
    assert kubo_store.has(kept)


def test_gc_grace_period_is_refused_by_kubo(kubo_store: KuboStore) -> None:
    with pytest.raises(InvalidParameter, match="grace"):
        kubo_store.gc(min_age=60)


def test_pin_name_encoding() -> None:
    assert decode_pin_name(encode_pin_name("job", 1700000000.5)) == ("job", 1700000000.0)
    assert decode_pin_name("plain") == ("plain", None)


def test_unknown_and_invalid_cids(kubo_store: KuboStore) -> None:
    unknown = str(CID.for_block(0x55, b"never added anywhere"))
    with pytest.raises(NotFound):
        kubo_store.block_get(unknown)
    assert not kubo_store.has(unknown)
    with pytest.raises(InvalidCID):
        kubo_store.block_get("nope")
    # Kubo's own answer to a bad CID (our parser is bypassed) maps to InvalidCID too.
    with pytest.raises(InvalidCID):
        kubo_store._call("block/get", {"arg": "bafyinvalid"})


# -- CARs both ways -----------------------------------------------------------------------


def test_our_car_imported_by_ipfs_gives_the_same_root_and_bytes(kubo: Any, tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "s")
    data = payload(3 * 262144 + 77, seed=21)
    file_cid = store.add_bytes(data)
    root = store.dag_put({"file": CID.parse(file_cid)}, pin=True)
    car = tmp_path / "x.car"
    with car.open("wb") as out:
        store.car_export(root, out)
    out = kubo.cli("dag", "import", "--pin-roots", str(car)).decode()
    assert root in out
    assert kubo.cli("cat", file_cid) == data
    assert kubo.cli("pin", "ls", "--type=recursive", root).decode().startswith(root)


def test_kubo_car_export_read_and_imported_here(kubo_store: KuboStore, tmp_path: Path) -> None:
    data = payload(2 * 262144 + 5, seed=22)
    cid = kubo_store.add_bytes(data)
    buf = io.BytesIO()
    kubo_store.car_export(cid, buf)
    reader = CarReader(io.BytesIO(buf.getvalue()))
    assert [str(r) for r in reader.roots] == [cid]
    assert len(list(reader)) == 1 + 3
    store = EmbeddedStore(tmp_path / "s")
    assert store.car_import(io.BytesIO(buf.getvalue())) == [cid]
    assert b"".join(store.cat(cid)) == data


def test_car_import_through_the_backend(kubo_store: KuboStore, tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "s")
    data = payload(262144 + 3, seed=23)
    cid = store.add_bytes(data)
    buf = io.BytesIO()
    store.car_export(cid, buf)
    assert kubo_store.car_import(io.BytesIO(buf.getvalue())) == [cid]
    assert cid in {p.cid for p in kubo_store.pin_ls()}
    assert b"".join(kubo_store.cat(cid)) == data


def test_truncated_car_pins_nothing_in_kubo(kubo_store: KuboStore, tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "s")
    cid = store.add_bytes(payload(3 * 262144, seed=24))
    buf = io.BytesIO()
    store.car_export(cid, buf)
    with pytest.raises(InvalidCAR, match="truncated"):
        kubo_store.car_import(io.BytesIO(buf.getvalue()[:-100]))
    assert cid not in {p.cid for p in kubo_store.pin_ls()}


def test_car_with_missing_blocks_pins_nothing_in_kubo(
    kubo_store: KuboStore, tmp_path: Path
) -> None:
    store = EmbeddedStore(tmp_path / "s")
    cid = CID.parse(store.add_bytes(payload(2 * 262144 + 2, seed=25)))
    assert cid.codec == DAG_PB
    only_root = encode_header([cid]) + encode_section(cid, store.block_get(str(cid)))
    with pytest.raises(InvalidCAR):
        kubo_store.car_import(io.BytesIO(only_root))
    assert str(cid) not in {p.cid for p in kubo_store.pin_ls()}


# -- Kubo down or failing -----------------------------------------------------------------


def test_kubo_down_is_store_unavailable() -> None:
    store = KuboStore(f"http://127.0.0.1:{free_port_closed()}", retries=1)
    with pytest.raises(StoreUnavailable, match="cannot reach Kubo"):
        store.pin_ls()
    with pytest.raises(StoreUnavailable):
        store.add_bytes(b"x")


def test_kubo_5xx_is_retried_then_store_unavailable() -> None:
    def respond(request: Request) -> Answer:
        return Answer(503, b"overloaded")

    with fake_server(respond) as server:
        store = KuboStore(server.url, retries=2)
        with pytest.raises(StoreUnavailable, match="503"):
            store.block_get("bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4")
        assert len(server.requests) == 3


def test_kubo_not_answering_times_out_retried_then_store_unavailable() -> None:
    release = threading.Event()

    def hang(request: Request) -> Answer:
        release.wait(10)  # far longer than the client's timeout
        return Answer(200, {"Keys": {}})

    with fake_server(hang) as server:
        try:
            store = KuboStore(server.url, timeout=0.3, retries=1)
            with pytest.raises(StoreUnavailable, match=r"did not answer pin/ls within 0.3s"):
                store.pin_ls()
            assert len(server.requests) == 2
        finally:
            release.set()


def test_kubo_error_message_is_mapped_not_retried() -> None:
    def respond(request: Request) -> Answer:
        return Answer(500, {"Message": "some internal failure", "Code": 0, "Type": "error"})

    with fake_server(respond) as server:
        store = KuboStore(server.url, retries=2)
        with pytest.raises(StoreUnavailable, match="some internal failure"):
            store.pin_ls()
        assert len(server.requests) == 1


def test_kubo_context_deadline_exceeded_is_unavailable_and_retryable_not_not_found() -> None:
    """Kubo gave up waiting (its own timeout, a busy datastore): the block may well exist,
    so a caller must retry, not conclude the CID is unknown."""

    def respond(request: Request) -> Answer:
        return Answer(500, {"Message": "context deadline exceeded", "Code": 0, "Type": "error"})

    with fake_server(respond) as server:
        store = KuboStore(server.url, retries=0)
        with pytest.raises(StoreUnavailable, match="context deadline exceeded") as info:
            store.block_get("bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4")
        assert info.value.retryable and info.value.http_status == 503


def test_kubo_returning_wrong_bytes_is_an_integrity_error() -> None:
    def respond(request: Request) -> Answer:
        if request.path == "/api/v0/add":
            return Answer(
                lines=[
                    {
                        "Name": "f",
                        "Hash": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
                    }
                ]
            )
        return Answer(200, b"not the block")

    with fake_server(respond) as server:
        store = KuboStore(server.url, retries=0)
        with pytest.raises(IntegrityError):
            store.block_get("bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4")
        with pytest.raises(IntegrityError, match="expected"):
            store.add_bytes(b"hello world\n")
        body = server.requests[-1].body
        assert b'Content-Disposition: form-data; name="file"' in body
        assert b"hello world\n" in body
        assert server.requests[-1].query["cid-version"] == ["1"]
        assert server.requests[-1].query["raw-leaves"] == ["true"]
        assert server.requests[-1].query["chunker"] == ["size-262144"]
