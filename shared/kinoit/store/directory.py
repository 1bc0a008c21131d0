"""UnixFS directories as ``ipfs add -r --cid-version=1`` makes them, and reading them back.

Kubo v0.42 (boxo v0.40) with its defaults, which is what this reproduces:

- a directory is a dag-pb node whose links (name, CID, cumulative size) are sorted
  by name, with UnixFS Data ``Type=Directory`` and nothing else (no mode, no mtime);
- it becomes a HAMT shard once its estimated size passes 256 KiB
  (``HAMTShardingSize``, strictly greater), the estimate being the sum over its
  links of the name's bytes plus the CID's bytes (``SizeEstimationLinks``, Kubo's
  default ``Import.UnixFSHAMTDirectorySizeEstimation``); no link-count limit;
- a shard has fanout 256: each level takes the next byte of the 64-bit murmur3
  (x64, seed 0, the first half of the 128-bit sum, big-endian) of the entry's
  name; a slot holding one entry links it as ``%02X`` + name, a slot shared by
  several links a child shard named ``%02X``; UnixFS Data is
  ``Type=HAMTShard``, the occupied slots as a big-endian bitfield without leading
  zero bytes, ``hashType=0x22`` (murmur3-x64-64), ``fanout=256``. For a given set
  of names the tree is the same whatever the insertion order.

Everything here is pure: blocks come out as (CID, bytes), and the readers take a
``get_block`` function returning verified bytes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from kinoit.errors import IntegrityError, InvalidParameter, NotFound
from kinoit.store.cid import CID, DAG_PB, RAW, decode_varint
from kinoit.store.unixfs import (
    CHUNK_SIZE,
    MAX_LINKS,
    TYPE_DIRECTORY,
    TYPE_FILE,
    TYPE_RAW,
    Block,
    Link,
    decode_pbnode,
    decode_unixfs,
    encode_pbnode,
    encode_unixfs_file,
)

HAMT_THRESHOLD: Final = 256 * 1024
"""boxo's ``HAMTShardingSize``: a directory whose estimate exceeds it is sharded."""
HAMT_FANOUT: Final = 256
"""boxo's ``DefaultShardWidth`` (Kubo's ``Import.UnixFSHAMTDirectoryMaxFanout``)."""
MURMUR3_X64_64: Final = 0x22
TYPE_METADATA: Final = 3
TYPE_SYMLINK: Final = 4
TYPE_HAMT_SHARD: Final = 5
# Every CID kinoit links is CIDv1 sha2-256: version, codec, hash code, length, digest.
_CID_BYTES: Final = 36
_PREFIX_CHARS: Final = 2  # len("%X" % (HAMT_FANOUT - 1))
_MASK64: Final = (1 << 64) - 1
# What a path part may not be: empty, "." or "..", or hold a control character.
_BAD_PART = re.compile(r"[\x00-\x1f\x7f]")


# -- murmur3 ------------------------------------------------------------------------


def _rotl64(value: int, shift: int) -> int:
    return ((value << shift) | (value >> (64 - shift))) & _MASK64


def _fmix64(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _MASK64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _MASK64
    k ^= k >> 33
    return k


def murmur3_x64_64(data: bytes) -> bytes:
    """The first 64 bits of MurmurHash3 x64 128 (seed 0), big-endian: the HAMT's hash."""
    c1, c2 = 0x87C37B91114253D5, 0x4CF5AD432745937F
    h1 = h2 = 0
    blocks = len(data) // 16
    for i in range(blocks):
        k1 = int.from_bytes(data[16 * i : 16 * i + 8], "little")
        k2 = int.from_bytes(data[16 * i + 8 : 16 * i + 16], "little")
        k1 = (_rotl64((k1 * c1) & _MASK64, 31) * c2) & _MASK64
        h1 ^= k1
        h1 = (_rotl64(h1, 27) + h2) & _MASK64
        h1 = (h1 * 5 + 0x52DCE729) & _MASK64
        k2 = (_rotl64((k2 * c2) & _MASK64, 33) * c1) & _MASK64
        h2 ^= k2
        h2 = (_rotl64(h2, 31) + h1) & _MASK64
        h2 = (h2 * 5 + 0x38495AB5) & _MASK64
    tail = data[16 * blocks :]
    if len(tail) > 8:
        k2 = int.from_bytes(tail[8:], "little")
        h2 ^= (_rotl64((k2 * c2) & _MASK64, 33) * c1) & _MASK64
    if tail:
        k1 = int.from_bytes(tail[:8], "little")
        h1 ^= (_rotl64((k1 * c1) & _MASK64, 31) * c2) & _MASK64
    h1 ^= len(data)
    h2 ^= len(data)
    h1 = (h1 + h2) & _MASK64
    h2 = (h2 + h1) & _MASK64
    h1, h2 = _fmix64(h1), _fmix64(h2)
    h1 = (h1 + h2) & _MASK64
    return h1.to_bytes(8, "big")


# -- sizes --------------------------------------------------------------------------

# A stand-in CID for size arithmetic: every CID kinoit links has the same length.
_ANY_CID: Final = CID.for_block(RAW, b"")


def file_dag_size(size: int) -> int:
    """The cumulative size (the ``Tsize`` a directory link carries) of a ``size``-byte file
    imported with :class:`kinoit.store.unixfs.FileImporter`: its bytes plus every inner
    node's, computed from the layout without reading anything (pure)."""
    if size < 0:
        raise ValueError("size must be >= 0")
    if size <= CHUNK_SIZE:
        return size  # one raw leaf
    full, rest = divmod(size, CHUNK_SIZE)
    # (file bytes, cumulative size) of each entry of the level being grouped
    level = [(CHUNK_SIZE, CHUNK_SIZE)] * full + ([(rest, rest)] if rest else [])
    while len(level) > 1:
        above = []
        for start in range(0, len(level), MAX_LINKS):
            group = level[start : start + MAX_LINKS]
            filesize = sum(f for f, _ in group)
            data = encode_unixfs_file(filesize, [f for f, _ in group])
            node = encode_pbnode([Link(_ANY_CID, t) for _, t in group], data)
            above.append((filesize, len(node) + sum(t for _, t in group)))
        level = above
    return level[0][1]


# -- building -----------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """What a directory links: the target's CID and its cumulative size."""

    cid: CID
    tsize: int


def file_entry(cid: str | CID, size: int) -> Entry:
    """The entry of a file kinoit imported, from its CID and byte size."""
    return Entry(CID.parse(cid) if isinstance(cid, str) else cid, file_dag_size(size))


def check_part(part: str, field: str = "path") -> str:
    """One name of a path: not empty, ``.``, ``..``, nor holding ``/`` or a control character."""
    if part in ("", ".", "..") or "/" in part or _BAD_PART.search(part):
        raise InvalidParameter(field, f"{part!r} is not a file or directory name")
    return part


_DIRECTORY_DATA: Final = bytes([0x08, TYPE_DIRECTORY])


def _estimated_size(entries: Mapping[str, Entry]) -> int:
    return sum(len(name.encode()) + len(bytes(e.cid)) for name, e in entries.items())


def directory_blocks(entries: Mapping[str, Entry]) -> tuple[Entry, list[Block]]:
    """One directory over ``entries`` (name -> entry): basic, or a HAMT when Kubo would
    shard it. Returns its entry and its blocks, the root last."""
    for name in entries:
        check_part(name)
    if _estimated_size(entries) > HAMT_THRESHOLD:
        blocks: list[Block] = []
        names = sorted(entries, key=lambda n: n.encode())
        hashed = {name: murmur3_x64_64(name.encode()) for name in names}
        root = _shard(names, hashed, entries, 0, blocks)
        return root, blocks
    links = [Link(e.cid, e.tsize, name) for name, e in _by_name(entries)]
    node = encode_pbnode(links, _DIRECTORY_DATA)
    cid = CID.for_block(DAG_PB, node)
    return Entry(cid, len(node) + sum(e.tsize for e in entries.values())), [(cid, node)]


def _by_name(entries: Mapping[str, Entry]) -> list[tuple[str, Entry]]:
    return sorted(entries.items(), key=lambda item: item[0].encode())


def _shard(
    names: list[str],
    hashed: Mapping[str, bytes],
    entries: Mapping[str, Entry],
    depth: int,
    blocks: list[Block],
) -> Entry:
    """The shard at ``depth`` over ``names``; its blocks (children first) go to ``blocks``."""
    if depth >= 8:
        raise InvalidParameter("path", f"names {names[:2]} collide in all 64 hash bits")
    slots: dict[int, list[str]] = {}
    for name in names:
        slots.setdefault(hashed[name][depth], []).append(name)
    links = []
    bitfield = 0
    for index in sorted(slots):
        bitfield |= 1 << index
        group = slots[index]
        prefix = f"{index:02X}"
        if len(group) == 1:
            entry = entries[group[0]]
            links.append(Link(entry.cid, entry.tsize, prefix + group[0]))
        else:
            child = _shard(group, hashed, entries, depth + 1, blocks)
            links.append(Link(child.cid, child.tsize, prefix))
    bits = bitfield.to_bytes(HAMT_FANOUT // 8, "big").lstrip(b"\x00")
    data = (
        bytes([0x08, TYPE_HAMT_SHARD, 0x12, len(bits)])
        + bits
        + bytes([0x28, MURMUR3_X64_64, 0x30, 0x80, 0x02])  # hashType, fanout 256 (varint)
    )
    node = encode_pbnode(links, data)
    cid = CID.for_block(DAG_PB, node)
    blocks.append((cid, node))
    return Entry(cid, len(node) + sum(link.tsize for link in links))


_Tree = dict[str, "_Tree | Entry"]


def tree_blocks(files: Mapping[str, Entry]) -> tuple[Entry, list[Block]]:
    """The directory tree holding ``files`` (relative POSIX path -> file entry), as
    ``ipfs add -r`` of a folder with those files would make it. Returns the root's
    entry and every directory block, each child before its parent, the root last."""
    if not files:
        raise InvalidParameter("files", "a directory tree needs at least one file")
    tree: _Tree = {}
    for path, entry in files.items():
        *dirs, leaf = [check_part(part) for part in path.split("/")]
        node = tree
        for name in dirs:
            child = node.setdefault(name, {})
            if not isinstance(child, dict):
                raise InvalidParameter("path", f"{path!r}: {name!r} is a file")
            node = child
        if leaf in node:
            raise InvalidParameter("path", f"{path!r} is given twice or is a directory")
        node[leaf] = entry
    blocks: list[Block] = []

    def build(node: _Tree) -> Entry:
        entries = {
            name: build(value) if isinstance(value, dict) else value for name, value in node.items()
        }
        entry, own = directory_blocks(entries)
        blocks.extend(own)
        return entry

    return build(tree), blocks


# -- reading ------------------------------------------------------------------------

GetBlock = Callable[[CID], bytes]
"""Returns a block's verified bytes (NotFound when the store lacks it)."""


@dataclass(frozen=True)
class Node:
    """What a CID is in UnixFS terms: ``kind`` "file" or "directory", the file's size,
    its root block, and whether a directory is a HAMT shard."""

    cid: CID
    kind: str
    size: int
    data: bytes
    shard: bool = False

    @functools.cached_property
    def links(self) -> tuple[Link, ...]:
        """The root block's links, decoded on first use (a big directory has thousands)."""
        if self.cid.codec != DAG_PB:
            return ()
        try:
            return tuple(decode_pbnode(self.data).links)
        except ValueError as exc:
            raise IntegrityError(f"block {self.cid} is not valid dag-pb: {exc}") from None


def _pb_data(buf: bytes) -> bytes:
    """The Data field of a dag-pb node, skipping over the links without decoding them."""
    pos, data = 0, b""
    while pos < len(buf):
        key, pos = decode_varint(buf, pos)
        if key & 7 != 2:
            raise ValueError(f"unexpected dag-pb field {key >> 3}")
        length, pos = decode_varint(buf, pos)
        if pos + length > len(buf):
            raise ValueError("truncated dag-pb field")
        if key >> 3 == 1:
            data = buf[pos : pos + length]
        elif key >> 3 != 2:
            raise ValueError(f"unexpected dag-pb field {key >> 3}")
        pos += length
    return data


def stat(get_block: GetBlock, cid: CID) -> Node:
    """Read a CID's root block: a file (with its size) or a directory (basic or HAMT)."""
    data = get_block(cid)
    if cid.codec == RAW:
        return Node(cid, "file", len(data), data)
    if cid.codec != DAG_PB:
        raise InvalidParameter("cid", f"{cid} is {cid.codec_name}, not UnixFS")
    try:
        meta = decode_unixfs(_pb_data(data))
    except ValueError as exc:
        raise IntegrityError(f"block {cid} is not valid dag-pb/UnixFS: {exc}") from None
    if meta.type in (TYPE_FILE, TYPE_RAW):
        size = meta.filesize if meta.filesize is not None else len(meta.data) + sum(meta.blocksizes)
        return Node(cid, "file", size, data)
    if meta.type in (TYPE_DIRECTORY, TYPE_HAMT_SHARD):
        return Node(cid, "directory", 0, data, shard=meta.type == TYPE_HAMT_SHARD)
    raise InvalidParameter("cid", f"{cid} is a UnixFS node of type {meta.type} (not served)")


def _shard_links(
    get_block: GetBlock, cid: CID, links: tuple[Link, ...] | list[Link]
) -> Iterator[tuple[str, Link]]:
    """Every (name, link) of a HAMT shard and its child shards, depth first."""
    for link in links:
        if len(link.name) > _PREFIX_CHARS:
            yield link.name[_PREFIX_CHARS:], link
        elif len(link.name) == _PREFIX_CHARS:
            child = decode_pbnode(get_block(link.cid)).links
            yield from _shard_links(get_block, link.cid, child)
        else:
            raise IntegrityError(f"HAMT shard {cid} has a link named {link.name!r}")


def list_directory(get_block: GetBlock, directory: Node) -> list[tuple[str, Link]]:
    """Every entry of a directory, basic or sharded, sorted by name."""
    if not directory.shard:
        found = [(link.name, link) for link in directory.links]
    else:
        try:
            found = list(_shard_links(get_block, directory.cid, directory.links))
        except ValueError as exc:
            raise IntegrityError(f"directory {directory.cid} is malformed: {exc}") from None
    return sorted(found, key=lambda item: item[0].encode())


def _child(get_block: GetBlock, directory: Node, name: str) -> CID | None:
    """The CID under ``name`` in a directory (a HAMT is looked up by hash), or None."""
    if not directory.shard:
        return next((link.cid for link in directory.links if link.name == name), None)
    hashed = murmur3_x64_64(name.encode())
    links: tuple[Link, ...] | list[Link] = directory.links
    try:
        for depth in range(8):
            prefix = f"{hashed[depth]:02X}"
            match = next((ln for ln in links if ln.name[:_PREFIX_CHARS] == prefix), None)
            if match is None:
                return None
            if len(match.name) > _PREFIX_CHARS:
                return match.cid if match.name[_PREFIX_CHARS:] == name else None
            links = decode_pbnode(get_block(match.cid)).links
    except ValueError as exc:
        raise IntegrityError(f"directory {directory.cid} is malformed: {exc}") from None
    return None


Index = Callable[[Node], Mapping[str, CID]]
"""A directory's names -> CIDs (a cache may answer it: what a CID names never changes)."""


def index_of(get_block: GetBlock, directory: Node) -> dict[str, CID]:
    """Every name of a directory -> its CID (for an :data:`Index` cache to keep)."""
    return {name: link.cid for name, link in list_directory(get_block, directory)}


def resolve(
    get_block: GetBlock, root: CID, parts: list[str], *, index: Index | None = None
) -> Node:
    """The node at ``root``/``parts``; NotFound when a name is missing on the way.
    With ``index``, names are looked up in it instead of in the blocks."""
    node = stat(get_block, root)
    walked = str(root)
    for part in parts:
        check_part(part)
        if node.kind != "directory":
            raise NotFound(f"/ipfs/{walked} is a file: no {part!r} under it")
        child = index(node).get(part) if index else _child(get_block, node, part)
        if child is None:
            raise NotFound(f"no {part!r} in /ipfs/{walked}")
        walked += "/" + part
        node = stat(get_block, child)
    return node


def iter_range(get_block: GetBlock, node: Node, start: int, end: int) -> Iterator[bytes]:
    """Stream bytes ``[start, end)`` of a file, reading only the blocks that hold them."""
    stack: list[tuple[CID, bytes | None, int]] = [(node.cid, node.data, 0)]
    while stack:
        cid, data, offset = stack.pop()
        if data is None:
            data = get_block(cid)
        if cid.codec == RAW:
            piece = data[max(start - offset, 0) : max(end - offset, 0)]
            if piece:
                yield piece
            continue
        try:
            pb = decode_pbnode(data)
            meta = decode_unixfs(pb.data or b"")
        except ValueError as exc:
            raise IntegrityError(f"block {cid} is not valid dag-pb/UnixFS: {exc}") from None
        if meta.data:
            piece = meta.data[max(start - offset, 0) : max(end - offset, 0)]
            if piece:
                yield piece
        position = offset + len(meta.data)
        if len(meta.blocksizes) != len(pb.links):
            raise IntegrityError(f"block {cid}: {len(pb.links)} links but blocksizes differ")
        children = []
        for link, size in zip(pb.links, meta.blocksizes, strict=True):
            if position < end and position + size > start:
                children.append((link.cid, None, position))
            position += size
        stack.extend(reversed(children))


def put_tree(store: Any, files: Mapping[str, Entry]) -> str:
    """Store the directory blocks over ``files`` (already stored themselves: nothing is
    copied, the directories link the very blocks) and return the root's CID."""
    return str(put_tree_entry(store, files).cid)


def put_tree_entry(store: Any, files: Mapping[str, Entry]) -> Entry:
    """:func:`put_tree`, returning the root's entry (CID and cumulative size): what a
    parent directory links, so a tree stored apart can be a subdirectory of another
    (an entry of ``files`` may be a directory's, linked as it is)."""
    root, blocks = tree_blocks(files)
    for cid, data in blocks:
        stored = store.block_put(bytes(data), codec=DAG_PB)
        if stored != str(cid):
            raise IntegrityError(f"the store keeps directory block {cid} as {stored}")
    return root
