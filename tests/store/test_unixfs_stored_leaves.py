"""FileImporter.push_stored: the tree over leaves stored earlier is the tree push builds."""

from __future__ import annotations

import pytest
from kinoit.store.cid import CID, RAW
from kinoit.store.unixfs import CHUNK_SIZE, FileImporter


@pytest.mark.parametrize("chunks", [1, 2, 3, 4, 9, 10, 27, 28, 31])
def test_stored_leaves_give_the_same_blocks_and_root(chunks: int) -> None:
    # three links per node, so a few chunks already make a tree several levels deep
    data = [bytes([i]) * CHUNK_SIZE for i in range(chunks - 1)] + [b"tail" * (chunks + 1)]
    pushed, stored = FileImporter(max_links=3), FileImporter(max_links=3)
    from_bytes = [b for chunk in data for b in pushed.push(chunk)] + pushed.finish()
    from_leaves = [
        b for chunk in data for b in stored.push_stored(CID.for_block(RAW, chunk), len(chunk))
    ] + stored.finish()
    assert stored.root == pushed.root and stored.size == pushed.size
    # the same parent nodes, and none of the leaves (they are stored already)
    assert from_leaves == [b for b in from_bytes if b[0].codec != RAW]


def test_a_stored_leaf_must_be_raw() -> None:
    with pytest.raises(ValueError, match="raw"):
        FileImporter().push_stored(CID.for_block(0x70, b"node"), 4)
