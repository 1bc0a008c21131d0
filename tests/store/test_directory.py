"""UnixFS directories: the CID `ipfs add -r --cid-version=1` gives (basic and HAMT), in
the embedded store and in Kubo, and reading them back (lookup, listing, byte ranges)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from kinoit.errors import InvalidParameter, NotFound
from kinoit.store import EmbeddedStore
from kinoit.store.cid import CID, DAG_PB, RAW
from kinoit.store.directory import (
    HAMT_THRESHOLD,
    TYPE_HAMT_SHARD,
    Entry,
    check_part,
    file_dag_size,
    file_entry,
    iter_range,
    list_directory,
    put_tree,
    resolve,
    stat,
    tree_blocks,
)
from kinoit.store.kubo import KuboStore
from kinoit.store.unixfs import CHUNK_SIZE, decode_pbnode, decode_unixfs

from .conftest import FILE_SIZES, our_cid, payload

KIB = 1024


def kubo_add_r(kubo: Any, folder: Path, *extra: str) -> str:
    out = kubo.cli("add", "-r", "-Q", "--cid-version=1", *extra, str(folder))
    return out.decode().strip()


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def entries_of(files: dict[str, bytes]) -> dict[str, Entry]:
    return {rel: file_entry(our_cid(data)[0], len(data)) for rel, data in files.items()}


def job_like_files() -> dict[str, bytes]:
    """The `kinoit run --out` layout in miniature: names that sort differently as bytes
    and as text, a file of several chunks, a two-level file, nested folders."""
    rng = random.Random(11)
    files = {
        "720p.mp4": rng.randbytes(3 * CHUNK_SIZE + 17),
        "90p.mp4": rng.randbytes(40 * KIB),
        "hls/master.m3u8": b"#EXTM3U\n#EXT-X-VERSION:3\n",
        "hls/720p/index.m3u8": b"#EXTM3U\n00000.ts\n00001.ts\n",
        "hls/720p/00000.ts": rng.randbytes(CHUNK_SIZE),
        "hls/720p/00001.ts": rng.randbytes(CHUNK_SIZE + 1),
        "hls/audio/index.m3u8": b"#EXTM3U\n",
        "hls/audio/00000.ts": rng.randbytes(9000),
        "thumbs/00000.jpg": rng.randbytes(3000),
        "thumbs/00001.jpg": b"",
        "storyboard.jpg": rng.randbytes(12000),
        "storyboard.vtt": b"WEBVTT\n",
        "Zebra.txt": b"upper case sorts first",
        "\u00e9t\u00e9.txt": b"non-ASCII name",
    }
    return files


@pytest.mark.parametrize("size", FILE_SIZES)
def test_file_dag_size_is_the_importers_cumulative_size(size: int) -> None:
    root, blocks = our_cid(payload(size))

    def tsize(cid: CID) -> int:
        data = blocks[cid]
        if cid.codec == RAW:
            return len(data)
        return len(data) + sum(tsize(link.cid) for link in decode_pbnode(data).links)

    assert file_dag_size(size) == tsize(root)


def test_check_part_refuses_names_that_would_be_paths() -> None:
    for bad in ("", ".", "..", "a/b", "nul\x00", "tab\t", "del\x7f"):
        with pytest.raises(InvalidParameter):
            check_part(bad)
    assert check_part("...") == "..." and check_part("a b") == "a b"


def test_tree_refuses_a_file_that_is_also_a_folder() -> None:
    entry = file_entry(our_cid(b"x")[0], 1)
    with pytest.raises(InvalidParameter):
        tree_blocks({"a": entry, "a/b": entry})
    with pytest.raises(InvalidParameter):
        tree_blocks({"a/../b": entry})
    with pytest.raises(InvalidParameter):
        tree_blocks({})


@pytest.mark.kubo
def test_job_layout_cid_is_ipfs_add_r(tmp_path: Path, kubo: Any) -> None:
    files = job_like_files()
    root, blocks = tree_blocks(entries_of(files))
    assert root.cid.version == 1 and root.cid.codec == DAG_PB
    assert str(root.cid) == kubo_add_r(kubo, write_tree(tmp_path / "out", files), "--only-hash")
    # the tree's own size as Kubo counts it, too
    assert blocks[-1][0] == root.cid


@pytest.mark.kubo
def test_embedded_and_kubo_stores_build_the_same_directory(tmp_path: Path, kubo: Any) -> None:
    files = job_like_files()
    embedded = EmbeddedStore(tmp_path / "store")
    kubo_store = KuboStore(kubo.api_url, timeout=30, retries=1)
    cids = {}
    for name, store in (("embedded", embedded), ("kubo", kubo_store)):
        entries = {
            rel: file_entry(store.add_bytes(data, pin=False), len(data))
            for rel, data in files.items()
        }
        cids[name] = put_tree(store, entries)
    folder = write_tree(tmp_path / "out", files)
    assert cids["embedded"] == cids["kubo"] == kubo_add_r(kubo, folder, "--only-hash")
    # Kubo holds every block of it (no network: offline refs fail on a missing one) and
    # its own gateway path resolution reads our directory nodes
    kubo.cli("refs", "-r", "--offline", cids["kubo"])
    assert kubo.cli("cat", f"/ipfs/{cids['kubo']}/hls/720p/00001.ts") == files["hls/720p/00001.ts"]
    # the embedded store pins the tree and gc keeps every block under it
    embedded.pin_add(cids["embedded"])
    assert embedded.gc() == 0
    assert b"".join(embedded.cat(str(entries_of(files)["720p.mp4"].cid))) == files["720p.mp4"]


def names_of_total_size(count: int, total: int) -> list[str]:
    """``count`` distinct names whose bytes plus 36 per CID add up to exactly ``total``."""
    base, extra = divmod(total - 36 * count, count)
    names = []
    for i in range(count):
        length = base + (1 if i < extra else 0)
        stem = f"{i:05d}-"
        names.append(stem + "s" * (length - len(stem)))
    return names


@pytest.mark.kubo
@pytest.mark.parametrize(("over", "sharded"), [(0, False), (1, True)])
def test_sharding_starts_just_past_256_kib_of_links(
    tmp_path: Path, kubo: Any, over: int, sharded: bool
) -> None:
    names = names_of_total_size(4096, HAMT_THRESHOLD + over)
    files = {f"segments/{name}": name.encode() for name in names}
    root, blocks = tree_blocks(entries_of(files))
    folder = write_tree(tmp_path / "out", files)
    assert str(root.cid) == kubo_add_r(kubo, folder, "--only-hash")
    segments = blocks[-2][1]  # the root holds one link: "segments", built just before it
    kind = decode_unixfs(decode_pbnode(bytes(segments)).data or b"").type
    assert (kind == TYPE_HAMT_SHARD) is sharded


@pytest.fixture(scope="module")
def hamt_files() -> dict[str, bytes]:
    """A folder big enough to shard, names of many lengths (1 to 40 bytes, some not ASCII)
    so the hash sees every tail length and whole 16-byte blocks."""
    rng = random.Random(5)
    files: dict[str, bytes] = {}
    for i in range(7000):
        tail = "".join(rng.choice("abcXYZ09_-.\u00e9") for _ in range(i % 40))
        files[f"seg/{i:x}-{tail}"] = bytes([i % 251]) * (i % 7)
    return files


@pytest.mark.kubo
def test_hamt_directory_cid_is_ipfs_add_r(
    tmp_path: Path, kubo: Any, hamt_files: dict[str, bytes]
) -> None:
    root, blocks = tree_blocks(entries_of(hamt_files))
    assert len(blocks) > 3  # a root shard, child shards, the folder above
    folder = write_tree(tmp_path / "out", hamt_files)
    assert str(root.cid) == kubo_add_r(kubo, folder, "--only-hash")


def test_hamt_lookup_listing_and_missing_names(
    tmp_path: Path, hamt_files: dict[str, bytes]
) -> None:
    store = EmbeddedStore(tmp_path / "store")
    # every file is under one chunk: one raw block, the CID add_bytes would give
    entries = {rel: file_entry(store.block_put(d), len(d)) for rel, d in hamt_files.items()}
    assert entries["seg/0-"].cid == our_cid(b"")[0]
    root = CID.parse(put_tree(store, entries))

    def get(cid: CID) -> bytes:
        return store.block_get(str(cid))

    folder = resolve(get, root, ["seg"])
    assert folder.kind == "directory"
    listed = list_directory(get, folder)
    expected = sorted((rel.split("/", 1)[1] for rel in hamt_files), key=str.encode)
    assert [name for name, _ in listed] == expected
    for rel in list(hamt_files)[::97]:
        node = resolve(get, root, rel.split("/"))
        assert node.kind == "file" and node.size == len(hamt_files[rel])
        assert node.cid == entries[rel].cid
    with pytest.raises(NotFound):
        resolve(get, root, ["seg", "no-such-name"])
    with pytest.raises(NotFound):
        resolve(get, root, ["seg", rel.split("/")[1], "below-a-file"])


def test_byte_ranges_read_only_what_they_need(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "store")
    data = payload(175 * CHUNK_SIZE + 123, seed=3)  # two levels of nodes
    cid = CID.parse(store.add_bytes(data, pin=False))
    reads: list[CID] = []

    def get(block: CID) -> bytes:
        reads.append(block)
        return store.block_get(str(block))

    node = stat(get, cid)
    assert node.kind == "file" and node.size == len(data)
    for start, end in [(0, 1), (CHUNK_SIZE - 1, CHUNK_SIZE + 1), (len(data) - 5, len(data)),
                       (174 * CHUNK_SIZE - 3, 174 * CHUNK_SIZE + 3), (0, len(data))]:  # fmt: skip
        reads.clear()
        assert b"".join(iter_range(get, node, start, end)) == data[start:end]
        if end - start < 10:
            assert len([c for c in reads if c.codec == RAW]) <= 2  # never the whole file
