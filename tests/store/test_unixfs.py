"""The UnixFS importer and reader: same CIDs as Kubo, bytes back intact, flat memory."""

from __future__ import annotations

import aleph_cid
import pytest
from kinoit.errors import IntegrityError, InvalidParameter
from kinoit.store.cid import CID, DAG_PB, RAW
from kinoit.store.unixfs import (
    CHUNK_SIZE,
    TYPE_DIRECTORY,
    FileImporter,
    Link,
    decode_pbnode,
    decode_unixfs,
    encode_pbnode,
    encode_unixfs_file,
    iter_file,
)

from .conftest import FILE_SIZES, our_cid, payload

EMPTY = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
HELLO = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def aleph(data: bytes) -> str:
    hasher = aleph_cid.CidHasher.for_ipfs_v1_raw_leaves()
    hasher.update(data)
    return str(hasher.finalize())


def test_kubo_published_vectors() -> None:
    assert str(our_cid(b"")[0]) == EMPTY
    assert str(our_cid(b"hello world\n")[0]) == HELLO


@pytest.mark.parametrize("size", FILE_SIZES)
def test_cid_matches_aleph_cid(size: int) -> None:
    data = payload(size)
    assert str(our_cid(data)[0]) == aleph(data)


def test_50mb_cid_matches_aleph_cid(big_payload: bytes) -> None:
    root, blocks = our_cid(big_payload)
    assert str(root) == aleph(big_payload)
    assert root.codec == DAG_PB
    assert len([c for c in blocks if c.codec == RAW]) == -(-len(big_payload) // CHUNK_SIZE)


def test_single_chunk_is_a_raw_leaf_and_two_chunks_a_dag_pb_root() -> None:
    assert our_cid(payload(CHUNK_SIZE))[0].codec == RAW
    root, blocks = our_cid(payload(CHUNK_SIZE + 1))
    node = decode_pbnode(blocks[root])
    meta = decode_unixfs(node.data or b"")
    assert [link.tsize for link in node.links] == [CHUNK_SIZE, 1]
    assert meta.filesize == CHUNK_SIZE + 1
    assert meta.blocksizes == [CHUNK_SIZE, 1]


def test_node_encoding_is_canonical_protobuf() -> None:
    leaf = CID.for_block(RAW, b"x")
    data = encode_unixfs_file(1, [1])
    assert data == bytes([0x08, 0x02, 0x18, 0x01, 0x20, 0x01])
    node = encode_pbnode([Link(leaf, 1)], data)
    # Links (field 2) first: Hash, empty Name, Tsize; then Data (field 1).
    link_body = b"\x0a\x24" + bytes(leaf) + b"\x12\x00" + b"\x18\x01"
    assert node == b"\x12" + bytes([len(link_body)]) + link_body + b"\x0a\x06" + data


def test_full_root_at_174_chunks_then_a_new_level() -> None:
    _, blocks_full = our_cid(payload(174 * CHUNK_SIZE))
    root_full = [c for c in blocks_full if c.codec == DAG_PB]
    assert len(root_full) == 1
    assert len(decode_pbnode(blocks_full[root_full[0]]).links) == 174
    root, blocks = our_cid(payload(174 * CHUNK_SIZE + 1))
    top = decode_pbnode(blocks[root])
    assert len(top.links) == 2
    assert [len(decode_pbnode(blocks[link.cid]).links) for link in top.links] == [174, 1]


def _depths(root: CID, blocks: dict[CID, bytes], depth: int = 0) -> list[int]:
    if root.codec == RAW:
        return [depth]
    return [
        d
        for link in decode_pbnode(blocks[root]).links
        for d in _depths(link.cid, blocks, depth + 1)
    ]


@pytest.mark.parametrize("chunks", [1, 3, 4, 9, 10, 27, 28, 100])
def test_small_fanout_tree_is_balanced_and_reads_back(chunks: int) -> None:
    importer = FileImporter(max_links=3)
    pieces = [payload(10, seed=i) for i in range(chunks)]
    blocks: dict[CID, bytes] = {}
    for piece in pieces:
        blocks.update(importer.push(piece))
    blocks.update(importer.finish())
    assert importer.root is not None
    depths = _depths(importer.root, blocks)
    assert len(depths) == chunks
    assert len(set(depths)) == 1  # every leaf at the same depth
    expected_depth = 0
    while 3**expected_depth < chunks:
        expected_depth += 1
    assert depths[0] == expected_depth
    out = b"".join(iter_file(lambda cid, _size: blocks[cid], importer.root))
    assert out == b"".join(pieces)
    # Memory stays flat: no level ever holds more than max_links entries.
    assert all(len(level) <= 3 for level in importer._levels)


@pytest.mark.parametrize("size", [0, 5, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 17])
def test_reader_returns_the_same_bytes(size: int) -> None:
    data = payload(size)
    root, blocks = our_cid(data)
    assert b"".join(iter_file(lambda cid, _size: blocks[cid], root)) == data


def test_reader_rejects_a_directory_node() -> None:
    node = encode_pbnode([], bytes([0x08, TYPE_DIRECTORY]))
    cid = CID.for_block(DAG_PB, node)
    with pytest.raises(InvalidParameter, match="not a file"):
        list(iter_file(lambda _c, _s: node, cid))


def test_reader_rejects_sizes_that_disagree_with_children() -> None:
    leaf_a, leaf_b = b"a" * 4, b"b" * 4
    links = [Link(CID.for_block(RAW, leaf_a), 4), Link(CID.for_block(RAW, leaf_b), 4)]
    node = encode_pbnode(links, encode_unixfs_file(8, [4, 5]))
    root = CID.for_block(DAG_PB, node)
    blocks = {root: node, links[0].cid: leaf_a, links[1].cid: leaf_b}
    with pytest.raises(IntegrityError, match="parent says"):
        list(iter_file(lambda cid, _s: blocks[cid], root))


def test_reader_rejects_garbage_dag_pb() -> None:
    cid = CID.for_block(DAG_PB, b"\xff\xff")
    with pytest.raises(IntegrityError, match="not valid"):
        list(iter_file(lambda _c, _s: b"\xff\xff", cid))
