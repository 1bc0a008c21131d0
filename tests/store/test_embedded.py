"""The embedded blockstore: same CIDs as Kubo, verified reads, pins, gc, CAR, many processes."""

from __future__ import annotations

import io
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kinoit.config import load_settings
from kinoit.errors import IntegrityError, InvalidCAR, InvalidCID, InvalidParameter, NotFound
from kinoit.store import EmbeddedStore, Store, open_store
from kinoit.store.car import CarReader, encode_header, encode_section
from kinoit.store.cid import CID, DAG_PB, RAW
from kinoit.store.cluster import ClusterStore
from kinoit.store.kubo import KuboStore
from kinoit.store.unixfs import CHUNK_SIZE

from .conftest import our_cid, payload

HELLO = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "store")


def block_files(store: EmbeddedStore) -> set[str]:
    return {p.name for p in (store.root / "blocks").glob("*/*")}


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 5 * CHUNK_SIZE + 3])
def test_add_gives_the_importer_cid_and_cat_the_same_bytes(store: EmbeddedStore, size: int) -> None:
    data = payload(size)
    cid = store.add_bytes(data)
    assert cid == str(our_cid(data)[0])
    assert b"".join(store.cat(cid)) == data


def test_kubo_vector_and_path_source(store: EmbeddedStore, tmp_path: Path) -> None:
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello world\n")
    assert store.add(path) == HELLO
    out = store.get_file(HELLO, tmp_path / "copy.txt")
    assert out.read_bytes() == b"hello world\n"
    assert not list(tmp_path.glob(".copy.txt.*"))  # no temp file left behind


def test_add_missing_path_is_not_found(store: EmbeddedStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no such file"):
        store.add(tmp_path / "nope")


def test_unknown_and_invalid_cids(store: EmbeddedStore) -> None:
    with pytest.raises(NotFound, match="not found"):
        list(store.cat(HELLO))
    with pytest.raises(NotFound):
        store.block_get(HELLO)
    with pytest.raises(InvalidCID):
        store.block_get("not-a-cid")
    with pytest.raises(InvalidCID):
        list(store.cat("bafy"))
    assert not store.has(HELLO)


def test_corrupted_block_on_disk_is_an_integrity_error(store: EmbeddedStore) -> None:
    data = payload(2 * CHUNK_SIZE + 10)
    cid = store.add_bytes(data)
    leaf = next(p for p in (store.root / "blocks").glob("*/bafkrei*"))
    raw = bytearray(leaf.read_bytes())
    raw[100] ^= 0xFF
    leaf.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="corrupted"):
        b"".join(store.cat(cid))
    with pytest.raises(IntegrityError, match="corrupted"):
        store.block_get(leaf.name)


def test_get_file_leaves_nothing_when_a_block_is_corrupted(
    store: EmbeddedStore, tmp_path: Path
) -> None:
    cid = store.add_bytes(payload(3 * CHUNK_SIZE))
    leaves = sorted((store.root / "blocks").glob("*/bafkrei*"))
    leaves[-1].write_bytes(b"garbage")
    with pytest.raises(IntegrityError):
        store.get_file(cid, tmp_path / "out.bin")
    assert list(tmp_path.glob("*out.bin*")) == []


def test_dag_put_get_with_links(store: EmbeddedStore) -> None:
    leaf = CID.parse(store.add_bytes(b"hello world\n"))
    value = {"file": leaf, "sizes": [1, 2.5], "raw": b"\x00\x01", "none": None}
    cid = store.dag_put(value)
    assert cid.startswith("bafyrei")
    assert store.dag_get(cid) == value
    with pytest.raises(InvalidParameter, match="not dag-cbor"):
        store.dag_get(HELLO)
    with pytest.raises(InvalidParameter, match="NaN"):
        store.dag_put({"x": float("nan")})


def test_block_put_stores_any_codec_verbatim(store: EmbeddedStore) -> None:
    raw = store.block_put(b"hello world\n")
    assert raw == HELLO
    cbor = store.block_put(b"\xa1\x61\x61\x01", codec=0x71)
    assert store.dag_get(cbor) == {"a": 1}
    assert store.block_get(cbor) == b"\xa1\x61\x61\x01"


def test_dag_put_pin_requires_the_linked_blocks(store: EmbeddedStore) -> None:
    missing = CID.for_block(RAW, b"never stored")
    with pytest.raises(NotFound, match="not found"):
        store.dag_put({"file": missing}, pin=True)
    assert store.pin_ls() == []


def test_pins_with_names_and_expiry(store: EmbeddedStore) -> None:
    cid = store.add_bytes(b"a", pin=False)
    assert store.pin_ls() == []
    pin = store.pin_add(cid, name="job-1", expire_in=3600)
    assert pin.name == "job-1"
    assert pin.expires_at is not None and pin.expires_at > time.time() + 3500
    assert store.pin_ls() == [pin]
    store.pin_rm(cid)
    assert store.pin_ls() == []
    with pytest.raises(NotFound, match="not pinned"):
        store.pin_rm(cid)
    with pytest.raises(InvalidParameter):
        store.pin_add(cid, expire_in=0)


def test_pin_add_of_an_absent_dag_is_not_found(store: EmbeddedStore) -> None:
    with pytest.raises(NotFound):
        store.pin_add(HELLO)


def test_adding_again_keeps_the_pin_name(store: EmbeddedStore) -> None:
    store.add_bytes(b"x", name="keep-me")
    store.add_bytes(b"x")
    assert [p.name for p in store.pin_ls()] == ["keep-me"]


def test_gc_keeps_pinned_dags_and_drops_the_rest(store: EmbeddedStore) -> None:
    kept_file = store.add_bytes(payload(3 * CHUNK_SIZE, seed=1), pin=False)
    manifest = store.dag_put({"file": CID.parse(kept_file)}, pin=True)
    pinned = store.add_bytes(payload(10, seed=2))
    dropped = store.add_bytes(payload(2 * CHUNK_SIZE + 1, seed=3), pin=False)
    before = block_files(store)
    removed = store.gc()
    after = block_files(store)
    assert removed == len(before - after) == 4  # three leaves and the root of `dropped`
    assert dropped not in after
    assert {manifest, kept_file, pinned} <= after
    assert b"".join(store.cat(kept_file)) == payload(3 * CHUNK_SIZE, seed=1)
    with pytest.raises(NotFound):
        b"".join(store.cat(dropped))
    assert store.gc() == 0


def test_gc_goes_on_when_a_pinned_dag_misses_a_block(store: EmbeddedStore) -> None:
    lost = store.add_bytes(payload(2 * CHUNK_SIZE + 1, seed=8), pin=False)
    kept = store.add_bytes(payload(2 * CHUNK_SIZE + 1, seed=9), pin=False)
    store.dag_put({"lost": CID.parse(lost), "kept": CID.parse(kept)}, pin=True)
    store._path(CID.parse(lost)).unlink()  # the root of `lost`: its leaves are unreachable now
    assert store.gc() == 3
    assert b"".join(store.cat(kept)) == payload(2 * CHUNK_SIZE + 1, seed=9)


def test_gc_grace_period_keeps_young_unpinned_blocks(store: EmbeddedStore) -> None:
    cid = store.add_bytes(payload(2 * CHUNK_SIZE + 1, seed=5), pin=False)
    assert store.gc(min_age=3600) == 0
    assert b"".join(store.cat(cid)) == payload(2 * CHUNK_SIZE + 1, seed=5)
    # Make the blocks old, then add the same file again: that refreshes them.
    for block in (store.root / "blocks").glob("*/*"):
        os.utime(block, (1, 1))
    store.add_bytes(payload(2 * CHUNK_SIZE + 1, seed=5), pin=False)
    assert store.gc(min_age=3600) == 0
    for block in (store.root / "blocks").glob("*/*"):
        os.utime(block, (1, 1))
    assert store.gc(min_age=3600) == 4
    with pytest.raises(InvalidParameter):
        store.gc(min_age=-1)


def test_expired_pins_do_not_protect(store: EmbeddedStore) -> None:
    cid = store.add_bytes(b"short-lived", pin=False)
    store.pin_add(cid, name="tmp", expire_in=0.05)
    deadline = time.time() + 0.05
    while time.time() <= deadline:  # the clock is the event here
        time.sleep(0.01)
    assert store.pin_ls() == []
    assert store.gc() == 1
    assert not store.has(cid)
    assert list((store.root / "pins").iterdir()) == []


def test_car_export_import_into_another_store(store: EmbeddedStore, tmp_path: Path) -> None:
    data = payload(3 * CHUNK_SIZE + 5)
    file_cid = store.add_bytes(data)
    root = store.dag_put({"file": CID.parse(file_cid), "name": "x"}, pin=True)
    buf = io.BytesIO()
    store.car_export(root, buf)
    reader = CarReader(io.BytesIO(buf.getvalue()))
    assert [str(r) for r in reader.roots] == [root]
    blocks = list(reader)
    assert str(blocks[0][0]) == root  # depth-first from the root
    assert len(blocks) == 1 + 1 + 4
    other = EmbeddedStore(tmp_path / "other")
    assert other.car_import(io.BytesIO(buf.getvalue())) == [root]
    assert [p.cid for p in other.pin_ls()] == [root]
    assert b"".join(other.cat(file_cid)) == data


def test_truncated_car_import_pins_nothing(store: EmbeddedStore, tmp_path: Path) -> None:
    cid = store.add_bytes(payload(3 * CHUNK_SIZE))
    buf = io.BytesIO()
    store.car_export(cid, buf)
    other = EmbeddedStore(tmp_path / "other")
    with pytest.raises(InvalidCAR, match="truncated"):
        other.car_import(io.BytesIO(buf.getvalue()[:-1000]))
    assert other.pin_ls() == []


def test_car_missing_blocks_pins_nothing(store: EmbeddedStore, tmp_path: Path) -> None:
    cid = CID.parse(store.add_bytes(payload(2 * CHUNK_SIZE + 1)))
    assert cid.codec == DAG_PB
    only_root = encode_header([cid]) + encode_section(cid, store.block_get(str(cid)))
    other = EmbeddedStore(tmp_path / "other")
    with pytest.raises(InvalidCAR, match="whole DAG"):
        other.car_import(io.BytesIO(only_root))
    assert other.pin_ls() == []


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if p.is_file()] + list((root / "tmp").iterdir())


def test_no_temp_files_left_after_writes(store: EmbeddedStore) -> None:
    store.add_bytes(payload(CHUNK_SIZE * 2))
    store.dag_put({"a": 1}, pin=True)
    assert temp_files(store.root) == []


def test_gc_removes_what_dead_writers_left_without_counting_it(store: EmbeddedStore) -> None:
    cid = CID.parse(store.add_bytes(b"kept"))
    shard = store._path(cid).parent
    leftovers = [shard / ".4242.1.0.tmp", store.root / "pins" / ".4242.1.1.tmp"]
    leftovers.append(store.root / "tmp" / "4242.1.2")  # the layout before same-directory renames
    for leftover in leftovers:
        leftover.write_bytes(b"half a block")
    assert store.gc() == 0
    assert temp_files(store.root) == []
    assert [p.cid for p in store.pin_ls()] == [str(cid)]


# -- several processes ------------------------------------------------------------------


def _add_in_child(root: str, seed: int) -> tuple[str, int]:
    store = EmbeddedStore(Path(root))
    data = payload(3 * CHUNK_SIZE + seed, seed=seed)
    return store.add_bytes(data, name=f"p{seed}"), seed


def _gc_in_child(root: str, rounds: int) -> int:
    store = EmbeddedStore(Path(root))
    return sum(store.gc() for _ in range(rounds))


def test_concurrent_writers_and_gc_from_several_processes(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    EmbeddedStore(root)
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=4, mp_context=ctx) as pool:
        gc_future = pool.submit(_gc_in_child, str(root), 20)
        results = list(pool.map(_add_in_child, [str(root)] * 12, range(12)))
        gc_future.result(timeout=120)
    store = EmbeddedStore(root)
    assert len(store.pin_ls()) == 12
    store.gc()
    for cid, seed in results:
        assert b"".join(store.cat(cid)) == payload(3 * CHUNK_SIZE + seed, seed=seed)
    assert temp_files(root) == []


def _add_same_in_child(root: str, name: str) -> str:
    return EmbeddedStore(Path(root)).add_bytes(payload(5 * CHUNK_SIZE + 1, seed=99), name=name)


def test_several_processes_adding_the_same_file_at_once(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    EmbeddedStore(root)
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=4, mp_context=ctx) as pool:
        cids = set(pool.map(_add_same_in_child, [str(root)] * 8, ["same"] * 8))
    store = EmbeddedStore(root)
    assert len(cids) == 1
    assert [(p.cid, p.name) for p in store.pin_ls()] == [(cids.pop(), "same")]
    assert len(block_files(store)) == 6 + 1  # six leaves and the root, each stored once
    assert temp_files(root) == []


def _hold_writer_lock(root: str, ready: Any, release: Any) -> None:
    store = EmbeddedStore(Path(root))
    with store._locked():
        cid = CID.for_block(RAW, b"in flight")
        store._put_block(cid, b"in flight")
        ready.set()
        release.wait(30)
        store._ensure_pin(cid, "late")


def test_gc_waits_for_an_add_in_flight(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    store = EmbeddedStore(root)
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    writer = ctx.Process(target=_hold_writer_lock, args=(str(root), ready, release))
    writer.start()
    try:
        assert ready.wait(30)
        removed: list[int] = []
        gc_thread = threading.Thread(target=lambda: removed.append(store.gc()))
        gc_thread.start()
        gc_thread.join(timeout=0.5)
        assert gc_thread.is_alive(), "gc must wait while a writer holds the store"
        release.set()
        gc_thread.join(timeout=30)
        assert not gc_thread.is_alive()
    finally:
        release.set()
        writer.join(timeout=30)
    assert removed == [0]
    assert store.has(str(CID.for_block(RAW, b"in flight")))


# -- open_store -------------------------------------------------------------------------


def test_every_backend_implements_the_store_protocol(tmp_path: Path) -> None:
    kubo = KuboStore("http://127.0.0.1:9")
    assert isinstance(EmbeddedStore(tmp_path / "s"), Store)
    assert isinstance(kubo, Store)
    assert isinstance(ClusterStore(kubo, "http://127.0.0.1:9"), Store)


def test_open_store_picks_the_backend(kinoit_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    embedded = open_store(load_settings())
    assert isinstance(embedded, EmbeddedStore)
    assert embedded.root == kinoit_home / "store"
    monkeypatch.setenv("KINOIT_IPFS_API", "http://127.0.0.1:5001")
    assert isinstance(open_store(load_settings()), KuboStore)
    monkeypatch.delenv("KINOIT_IPFS_API")
    monkeypatch.setenv("KINOIT_CLUSTER_API", "http://127.0.0.1:9094")
    with pytest.raises(InvalidParameter, match="KINOIT_IPFS_API"):
        open_store(load_settings())
