"""UnixFS files: a streaming importer identical to ``ipfs add --cid-version=1``, and a reader.

Layout (Kubo's defaults for CIDv1): fixed 256 KiB chunks stored as raw leaves;
a single chunk is the file's CID itself; more chunks hang under dag-pb nodes
with up to 174 links each, all leaves at the same depth ("balanced"), filled
left to right. The importer builds the tree bottom-up while chunks stream in,
keeping at most 174 links per level, so memory does not grow with file size.

dag-pb and the UnixFS ``Data`` message are protobuf, encoded here by hand in
the canonical order (PBNode: Links then Data; PBLink: Hash, Name, Tsize;
UnixFS Data: Type, filesize, blocksizes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from kinoit.errors import IntegrityError, InvalidParameter
from kinoit.store.cid import CID, DAG_PB, RAW, decode_varint, encode_varint

CHUNK_SIZE = 256 * 1024
"""Kubo's default fixed chunker (``size-262144``)."""
MAX_LINKS = 174
"""Kubo's default links per node in the balanced layout."""

# UnixFS Data.Type values.
TYPE_RAW = 0
TYPE_DIRECTORY = 1
TYPE_FILE = 2

Block = tuple[CID, bytes | memoryview]
"""A block as the importer emits it: its CID and its bytes (a raw leaf may be a
memoryview of the caller's chunk, valid as long as the chunk is)."""


# -- protobuf, by hand ------------------------------------------------------------------


def _field_bytes(number: int, value: bytes) -> bytes:
    return encode_varint(number << 3 | 2) + encode_varint(len(value)) + value


def _field_varint(number: int, value: int) -> bytes:
    return encode_varint(number << 3) + encode_varint(value)


@dataclass(frozen=True)
class Link:
    """One dag-pb link: target CID, name and cumulative size of the target DAG."""

    cid: CID
    tsize: int
    name: str = ""


@dataclass
class PBNode:
    """A decoded dag-pb node."""

    links: list[Link] = field(default_factory=list)
    data: bytes | None = None


@dataclass
class UnixFSData:
    """The fields of the UnixFS ``Data`` message that files use."""

    type: int
    data: bytes = b""
    filesize: int | None = None
    blocksizes: list[int] = field(default_factory=list)


def encode_pbnode(links: Iterable[Link], data: bytes | None) -> bytes:
    """Canonical dag-pb bytes: every link (Hash, Name, Tsize), then Data."""
    out = bytearray()
    for link in links:
        body = (
            _field_bytes(1, bytes(link.cid))
            + _field_bytes(2, link.name.encode("utf-8"))
            + _field_varint(3, link.tsize)
        )
        out += _field_bytes(2, body)
    if data is not None:
        out += _field_bytes(1, data)
    return bytes(out)


def encode_unixfs_file(filesize: int, blocksizes: Iterable[int]) -> bytes:
    """UnixFS Data of an internal file node (Type=File, no inline data)."""
    out = bytearray(_field_varint(1, TYPE_FILE))
    out += _field_varint(3, filesize)
    for size in blocksizes:
        out += _field_varint(4, size)
    return bytes(out)


def _iter_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for varint and length-delimited fields."""
    pos = 0
    while pos < len(buf):
        key, pos = decode_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = decode_varint(buf, pos)
            yield number, wire, value
        elif wire == 2:
            length, pos = decode_varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated protobuf field")
            yield number, wire, buf[pos : pos + length]
            pos += length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def decode_pbnode(buf: bytes) -> PBNode:
    """Decode dag-pb bytes (ValueError when malformed)."""
    node = PBNode()
    for number, wire, value in _iter_fields(buf):
        if number == 2 and wire == 2:
            assert isinstance(value, bytes)
            cid: CID | None = None
            name = ""
            tsize = 0
            for n, w, v in _iter_fields(value):
                if n == 1 and w == 2:
                    assert isinstance(v, bytes)
                    cid = CID.from_bytes(v)
                elif n == 2 and w == 2:
                    assert isinstance(v, bytes)
                    name = v.decode("utf-8")
                elif n == 3 and w == 0:
                    assert isinstance(v, int)
                    tsize = v
            if cid is None:
                raise ValueError("dag-pb link without a Hash")
            node.links.append(Link(cid, tsize, name))
        elif number == 1 and wire == 2:
            assert isinstance(value, bytes)
            node.data = value
        else:
            raise ValueError(f"unexpected dag-pb field {number}")
    return node


def decode_unixfs(buf: bytes) -> UnixFSData:
    """Decode a UnixFS Data message (ValueError when malformed)."""
    kind: int | None = None
    result = UnixFSData(type=-1)
    for number, wire, value in _iter_fields(buf):
        if number == 1 and wire == 0:
            assert isinstance(value, int)
            kind = value
        elif number == 2 and wire == 2:
            assert isinstance(value, bytes)
            result.data = value
        elif number == 3 and wire == 0:
            assert isinstance(value, int)
            result.filesize = value
        elif number == 4 and wire == 0:
            assert isinstance(value, int)
            result.blocksizes.append(value)
        elif number == 4 and wire == 2:  # packed form, accepted when reading
            assert isinstance(value, bytes)
            pos = 0
            while pos < len(value):
                size, pos = decode_varint(value, pos)
                result.blocksizes.append(size)
    if kind is None:
        raise ValueError("UnixFS Data without a Type")
    result.type = kind
    return result


# -- importer ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    cid: CID
    tsize: int  # bytes of the whole sub-DAG (blocks included)
    filesize: int  # bytes of file content under it


class FileImporter:
    """Turns a stream of chunks into UnixFS blocks, emitted as soon as they are final.

    ``push(chunk)`` and ``finish()`` return the blocks that became final; the
    last block ``finish()`` returns is the root. At most ``MAX_LINKS`` entries
    per tree level are held, whatever the file size.
    """

    def __init__(self, max_links: int = MAX_LINKS) -> None:
        self._max_links = max_links
        self._levels: list[list[_Entry]] = [[]]
        self._chunks = 0
        self.root: CID | None = None
        self.size = 0

    def push(self, chunk: bytes | memoryview) -> list[Block]:
        """Add one chunk (every chunk but the last must be ``CHUNK_SIZE`` bytes)."""
        if self.root is not None:
            raise RuntimeError("importer already finished")
        cid = CID.for_block(RAW, chunk)
        self._chunks += 1
        self.size += len(chunk)
        blocks: list[Block] = [(cid, chunk)]
        self._levels[0].append(_Entry(cid, len(chunk), len(chunk)))
        self._cascade(0, blocks)
        return blocks

    def push_stored(self, cid: CID, size: int) -> list[Block]:
        """Add one chunk already stored as the raw leaf ``cid`` of ``size`` bytes (the
        same rule as :meth:`push`); return only the parent nodes that became final."""
        if self.root is not None:
            raise RuntimeError("importer already finished")
        if cid.codec != RAW:
            raise ValueError(f"a file's leaf must be a raw block, got {cid}")
        self._chunks += 1
        self.size += size
        blocks: list[Block] = []
        self._levels[0].append(_Entry(cid, size, size))
        self._cascade(0, blocks)
        return blocks

    def _cascade(self, level: int, blocks: list[Block]) -> None:
        """While a level holds more than max_links entries, its first ones form a full node."""
        while len(self._levels[level]) > self._max_links:
            full = self._levels[level][: self._max_links]
            del self._levels[level][: self._max_links]
            blocks.append(self._add_parent(level, full))
            level += 1

    def _add_parent(self, level: int, entries: list[_Entry]) -> Block:
        """Encode the node over ``entries`` and append its entry to the level above."""
        filesize = sum(e.filesize for e in entries)
        data = encode_unixfs_file(filesize, [e.filesize for e in entries])
        node = encode_pbnode((Link(e.cid, e.tsize) for e in entries), data)
        cid = CID.for_block(DAG_PB, node)
        if level + 1 == len(self._levels):
            self._levels.append([])
        self._levels[level + 1].append(
            _Entry(cid, len(node) + sum(e.tsize for e in entries), filesize)
        )
        return cid, node

    def finish(self) -> list[Block]:
        """Close the tree and set ``self.root``.

        The last block emitted overall (by ``push`` for a one-chunk file) is the root.
        """
        if self.root is not None:
            raise RuntimeError("importer already finished")
        blocks: list[Block] = []
        if self._chunks == 0:
            # The empty file is one empty raw leaf, as in Kubo.
            blocks += self.push(b"")
        level = 0
        while True:
            entries = self._levels[level]
            if level == len(self._levels) - 1 and len(entries) == 1:
                break
            if entries:
                # Close this level's last, partial node; the level above may overflow.
                self._levels[level] = []
                blocks.append(self._add_parent(level, entries))
                self._cascade(level + 1, blocks)
            level += 1
        self.root = self._levels[level][0].cid
        return blocks


def import_chunks(chunks: Iterable[bytes]) -> Iterator[Block]:
    """Yield every block of the file made of ``chunks``; the last yielded is the root."""
    importer = FileImporter()
    for chunk in chunks:
        yield from importer.push(chunk)
    yield from importer.finish()


# -- reader -----------------------------------------------------------------------------

BlockGetter = Callable[[CID, "int | None"], bytes]
"""Returns the verified bytes of a block; the second argument is the file-content size
the parent node declares for it (None for the root or when unknown)."""


def iter_file(get_block: BlockGetter, root: CID) -> Iterator[bytes]:
    """Stream the bytes of the UnixFS file at ``root``.

    ``get_block`` must return verified bytes. Raises InvalidParameter when the
    DAG is not a UnixFS file, IntegrityError when a node is malformed or its sizes
    disagree with its children.
    """
    stack: list[tuple[CID, int | None]] = [(root, None)]
    while stack:
        cid, expected = stack.pop()
        data = get_block(cid, expected)
        if cid.codec == RAW:
            if expected is not None and expected != len(data):
                raise IntegrityError(f"block {cid}: {len(data)} bytes, parent says {expected}")
            if data:
                yield data
            continue
        if cid.codec != DAG_PB:
            raise InvalidParameter("cid", f"{cid} is {cid.codec_name}, not a UnixFS file")
        try:
            node = decode_pbnode(data)
            meta = decode_unixfs(node.data or b"")
        except ValueError as exc:
            raise IntegrityError(f"block {cid} is not valid dag-pb/UnixFS: {exc}") from None
        if meta.type not in (TYPE_FILE, TYPE_RAW):
            raise InvalidParameter("cid", f"{cid} is a UnixFS node of type {meta.type}, not a file")
        if meta.blocksizes and len(meta.blocksizes) != len(node.links):
            raise IntegrityError(f"block {cid}: {len(node.links)} links but blocksizes differ")
        total = len(meta.data) + sum(meta.blocksizes)
        if expected is not None and expected != total:
            raise IntegrityError(f"block {cid}: holds {total} bytes, parent says {expected}")
        if meta.data:
            yield meta.data
        sizes: list[int | None] = list(meta.blocksizes) or [None] * len(node.links)
        for link, size in reversed(list(zip(node.links, sizes, strict=True))):
            stack.append((link.cid, size))


def iter_links(cid: CID, data: bytes) -> list[CID]:
    """The CIDs a dag-pb, dag-cbor or raw block links to (for pin, gc and CAR walks)."""
    if cid.codec == RAW:
        return []
    if cid.codec == DAG_PB:
        try:
            return [link.cid for link in decode_pbnode(data).links]
        except ValueError as exc:
            raise IntegrityError(f"block {cid} is not valid dag-pb: {exc}") from None
    from kinoit.store.dagcbor import decode, links_of

    return list(links_of(decode(data)))
