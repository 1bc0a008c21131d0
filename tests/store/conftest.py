"""Helpers shared by the store tests."""

from __future__ import annotations

import io
import random
import socket

import pytest
from kinoit.store.base import iter_chunks
from kinoit.store.cid import CID
from kinoit.store.unixfs import CHUNK_SIZE, import_chunks

KIB = 1024
# The sizes the issue asks for; the last two cross one and two tree levels.
FILE_SIZES = [0, 1, 12, 256 * KIB, 256 * KIB + 1, 174 * 256 * KIB, 174 * 256 * KIB + 1]
BIG_SIZE = 50_000_000


def payload(size: int, seed: int = 7) -> bytes:
    """Deterministic incompressible bytes."""
    return random.Random(seed).randbytes(size)


def our_cid(data: bytes) -> tuple[CID, dict[CID, bytes]]:
    """Import ``data`` with our importer; return the root and every block."""
    blocks: dict[CID, bytes] = {}
    root = None
    for cid, block in import_chunks(iter_chunks(io.BytesIO(data), CHUNK_SIZE)):
        blocks[cid] = block
        root = cid
    assert root is not None
    return root, blocks


@pytest.fixture(scope="session")
def big_payload() -> bytes:
    return payload(BIG_SIZE, seed=50)


def free_port_closed() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
