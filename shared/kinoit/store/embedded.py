"""The embedded blockstore: the default backend, under ``$KINOIT_HOME/store``.

On disk::

    store/
      lock                       flock: shared by writers, exclusive for gc
      blocks/<xx>/<cidv1>        one file per block; xx = first digest byte in hex
      pins/<cidv1>.json          one record per pin: name, expires_at
      tmp/                       left over by older versions; gc empties it

Every write goes to a dot-file in the directory of its final name and is renamed
into place, so a reader never sees a partial block or pin. The rename stays
within one directory: a rename across directories takes the filesystem-wide
rename lock, which every other process on that filesystem contends for, and
measurably slowed adds on a busy machine. Durability is tied to pins, batched: blocks are not
fsynced one by one (that costs a disk flush per 256 KiB and caps adds far below
200 MB/s); one ``syncfs`` of the store's filesystem runs before any pin record
is written, so a pin on disk only ever refers to blocks on disk. A pinned add
keeps a background thread flushing while it streams, so that final ``syncfs``
has little left to do; an unpinned add (``pin=False``) does not wait for the
disk at all: gc may delete its blocks anyway until something pins them. Pin
records are fsynced individually.
Every block read is hashed and compared to its CID (IntegrityError if not).

Several processes may share one store: every operation that writes blocks or
pins holds a shared ``flock``; gc holds it exclusively, so it never deletes the
blocks of an add that has not pinned them yet. Blocks that are not pinned when
gc runs are deleted, as in Kubo: pin what you want to keep.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from kinoit.errors import IntegrityError, InvalidCAR, InvalidParameter, NotFound
from kinoit.store import car, dagcbor, unixfs
from kinoit.store.base import Pin, save_chunks, source_stream
from kinoit.store.cid import CID, DAG_CBOR, RAW, parse_cid
from kinoit.store.disk import BackgroundFlusher, fill_buffer, fsync_dir, syncfs

# Chunk buffers in flight between the hashing and the writing thread of one add.
_RING = 8
# Threads writing block files (the part that waits on the kernel most).
_WRITERS = 2


class EmbeddedStore:
    """A local, multi-process-safe blockstore computing the same CIDs as Kubo."""

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = Path(root)
        self.durable = durable
        self._blocks = self.root / "blocks"
        self._pins = self.root / "pins"
        self._tmp = self.root / "tmp"
        for directory in (self._blocks, self._pins, self._tmp):
            directory.mkdir(parents=True, exist_ok=True)
        self._lock_path = self.root / "lock"
        self._lock_path.touch(exist_ok=True)
        self._blocks_prefix = f"{self._blocks}/"
        self._counter = itertools.count()
        self._shards: set[int] = set()

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.root)!r})"

    # -- locking and low-level blocks -------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, exclusive: bool = False) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _path(self, cid: CID) -> Path:
        return Path(self._block_path(cid))

    def _block_path(self, cid: CID) -> str:
        if cid.version == 0:
            cid = cid.to_v1()
        return f"{self._blocks_prefix}{cid.digest[0]:02x}/{cid}"

    def _write_atomic(self, path: str | Path, data: bytes | memoryview, *, fsync: bool) -> None:
        """Write to a fresh dot-file beside ``path``, then rename it over ``path``."""
        directory, _, _ = str(path).rpartition("/")
        tmp = f"{directory}/.{os.getpid()}.{threading.get_ident()}.{next(self._counter)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        os.rename(tmp, path)

    def _put_block(self, cid: CID, data: bytes | memoryview) -> None:
        """Store one block (caller holds the shared lock and has computed ``cid``)."""
        shard = cid.digest[0]
        if shard not in self._shards:
            os.makedirs(f"{self._blocks_prefix}{shard:02x}", exist_ok=True)
            self._shards.add(shard)
        path = self._block_path(cid)
        try:
            os.utime(path)  # already stored: mark it fresh for gc's grace period
            return
        except FileNotFoundError:
            pass
        self._write_atomic(path, data, fsync=False)

    def _flush(self) -> None:
        if self.durable:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                syncfs(fd)
            finally:
                os.close(fd)

    def _get(self, cid: CID) -> bytes:
        path = self._path(cid)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"block {cid} not found in the store") from None
        try:
            cid.verify(data)
        except IntegrityError:
            raise IntegrityError(f"block {cid} is corrupted on disk ({path})") from None
        return data

    # -- files ------------------------------------------------------------------------

    def add(self, source: IO[bytes] | Path, *, pin: bool = True, name: str = "") -> str:
        """Import a file as UnixFS (like ``ipfs add --cid-version=1``); return its CID."""
        if isinstance(source, Path | str):
            with source_stream(source) as stream:
                return self.add(stream, pin=pin, name=name)
        with self._locked():
            root = self._import(source, flush_early=pin and self.durable)
            if pin:
                self._ensure_pin(root, name)
        return str(root)

    def _import(self, source: IO[bytes], *, flush_early: bool = False) -> CID:
        """Chunk, hash and store a file; return its root.

        Reading and hashing happen on this thread while ``_WRITERS`` threads write
        the block files (all of it releases the GIL), through a small ring of reused
        chunk buffers, so memory stays at ``_RING`` chunks whatever the file size. With
        ``flush_early`` a third thread keeps flushing the filesystem while the file
        streams in, so the ``syncfs`` before the pin has little left to wait for.
        """
        with BackgroundFlusher(self.root) if flush_early else contextlib.nullcontext():
            return self._import_chunks(source)

    def _import_chunks(self, source: IO[bytes]) -> CID:
        importer = unixfs.FileImporter()
        buffers = [memoryview(bytearray(unixfs.CHUNK_SIZE)) for _ in range(_RING)]
        pending: list[Future[None] | None] = [None] * _RING
        with ThreadPoolExecutor(max_workers=_WRITERS, thread_name_prefix="kinoit-store") as writer:
            try:
                for n in itertools.count():
                    slot = n % _RING
                    previous = pending[slot]
                    if previous is not None:
                        previous.result()  # that buffer is free again (or its write failed)
                    filled = fill_buffer(source, buffers[slot])
                    if filled:
                        blocks = importer.push(buffers[slot][:filled])
                        pending[slot] = writer.submit(self._put_blocks, blocks)
                    if filled < unixfs.CHUNK_SIZE:
                        break
            finally:
                for future in pending:
                    if future is not None:
                        future.result()
        self._put_blocks(importer.finish())
        assert importer.root is not None
        return importer.root

    def _put_blocks(self, blocks: list[unixfs.Block]) -> None:
        for cid, data in blocks:
            self._put_block(cid, data)

    def add_bytes(self, data: bytes, *, pin: bool = True, name: str = "") -> str:
        """Import bytes as a UnixFS file; return its CID."""
        return self.add(io.BytesIO(data), pin=pin, name=name)

    def cat(self, cid: str) -> Iterator[bytes]:
        """Stream a UnixFS file's bytes, each block verified against its CID."""
        root = parse_cid(cid)
        return unixfs.iter_file(lambda block, _size: self._get(block), root)

    def get_file(self, cid: str, dest: Path) -> Path:
        """Write a UnixFS file to ``dest`` atomically and return ``dest`` (not fsynced)."""
        return save_chunks(self.cat(cid), Path(dest))

    # -- blocks and DAG-CBOR ----------------------------------------------------------

    def block_get(self, cid: str) -> bytes:
        """The raw bytes of one block, verified against its CID."""
        return self._get(parse_cid(cid))

    def block_put(self, data: bytes, *, codec: int = RAW) -> str:
        """Store one block as-is with ``codec``; return its CID (not pinned)."""
        cid = CID.for_block(codec, data)
        with self._locked():
            self._put_block(cid, data)
        return str(cid)

    def has(self, cid: str) -> bool:
        """Whether the block is present locally (not verified)."""
        return self._path(parse_cid(cid)).exists()

    def dag_put(self, value: Any, *, pin: bool = False) -> str:
        """Store one strict DAG-CBOR block; return its CID."""
        data = dagcbor.encode(value)
        cid = CID.for_block(DAG_CBOR, data)
        with self._locked():
            self._put_block(cid, data)
            if pin:
                self._check_complete(cid)
                self._ensure_pin(cid, "")
        return str(cid)

    def dag_get(self, cid: str) -> Any:
        """Decode one DAG-CBOR block (links come back as CID objects)."""
        parsed = parse_cid(cid)
        if parsed.codec != DAG_CBOR:
            raise InvalidParameter("cid", f"{parsed} is {parsed.codec_name}, not dag-cbor")
        return dagcbor.decode(self._get(parsed))

    # -- DAG walks --------------------------------------------------------------------

    def _walk(
        self, root: CID, *, read_leaves: bool, missing_ok: bool = False
    ) -> Iterator[tuple[CID, bytes | None]]:
        """Depth-first pre-order over a DAG, each block once; raw leaves unread unless asked.

        A missing block raises NotFound, unless ``missing_ok`` (gc must go on): then it
        is yielded without data and what lies under it is skipped.
        """
        seen: set[CID] = set()
        stack = [root.to_v1()]
        while stack:
            cid = stack.pop()
            if cid in seen:
                continue
            seen.add(cid)
            if cid.codec == RAW and not read_leaves:
                if not missing_ok and not self._path(cid).exists():
                    raise NotFound(f"block {cid} not found in the store")
                yield cid, None
                continue
            try:
                data = self._get(cid)
            except NotFound:
                if not missing_ok:
                    raise
                yield cid, None
                continue
            yield cid, data
            stack.extend(reversed([link.to_v1() for link in unixfs.iter_links(cid, data)]))

    def _check_complete(self, root: CID) -> None:
        for _ in self._walk(root, read_leaves=False):
            pass

    # -- pins -------------------------------------------------------------------------

    def _pin_path(self, cid: CID) -> Path:
        return self._pins / f"{cid.to_v1()}.json"

    def _write_pin(self, pin: Pin) -> None:
        """Make every block written so far durable, then write the pin record durably."""
        self._flush()
        record = {"cid": pin.cid, "name": pin.name, "expires_at": pin.expires_at}
        path = self._pin_path(CID.parse(pin.cid))
        self._write_atomic(path, json.dumps(record).encode(), fsync=self.durable)
        if self.durable:
            fsync_dir(self._pins)

    def _read_pin(self, path: Path) -> Pin | None:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (ValueError, OSError) as exc:
            raise IntegrityError(f"pin record {path} is unreadable: {exc}") from None
        expires = record.get("expires_at")
        return Pin(str(record["cid"]), str(record.get("name", "")), expires)

    def _ensure_pin(self, cid: CID, name: str) -> None:
        """Pin after an add or import, keeping an existing live pin's name and expiry."""
        existing = self._read_pin(self._pin_path(cid))
        live = existing is not None and self._live(existing, time.time())
        if existing is not None and live and existing.expires_at is None and not name:
            return
        keep_name = existing.name if existing is not None and live else ""
        self._write_pin(Pin(str(cid.to_v1()), name or keep_name, None))

    @staticmethod
    def _live(pin: Pin, now: float) -> bool:
        return pin.expires_at is None or pin.expires_at > now

    def pin_add(self, cid: str, *, name: str = "", expire_in: float | None = None) -> Pin:
        """Pin a DAG recursively (all its blocks must be present), optionally expiring."""
        root = parse_cid(cid).to_v1()
        if expire_in is not None and not expire_in > 0:
            raise InvalidParameter("expire_in", f"must be a positive number, got {expire_in}")
        pin = Pin(str(root), name, None if expire_in is None else time.time() + expire_in)
        with self._locked():
            self._check_complete(root)
            self._write_pin(pin)
        return pin

    def pin_rm(self, cid: str) -> None:
        """Remove a pin (NotFound when it is not pinned or has expired)."""
        root = parse_cid(cid).to_v1()
        path = self._pin_path(root)
        with self._locked():
            pin = self._read_pin(path)
            if pin is None or not self._live(pin, time.time()):
                raise NotFound(f"{root} is not pinned")
            path.unlink()

    def pin_ls(self) -> list[Pin]:
        """Every live pin, in CID order (expired pins are not listed)."""
        now = time.time()
        pins = [self._read_pin(path) for path in sorted(self._pins.glob("*.json"))]
        live = [p for p in pins if p is not None and self._live(p, now)]
        return sorted(live, key=lambda p: p.cid)

    # -- gc ---------------------------------------------------------------------------

    def gc(self, *, min_age: float = 0.0) -> int:
        """Delete blocks no live pin reaches (and expired pin records); return blocks removed.

        Blocks written (or added again) less than ``min_age`` seconds ago are kept
        even when unpinned: a grace period for work that adds first and pins later.
        """
        if not min_age >= 0:
            raise InvalidParameter("min_age", f"must be >= 0 seconds, got {min_age}")
        with self._locked(exclusive=True):
            now = time.time()
            live: set[str] = set()
            for path in self._pins.glob("*.json"):
                pin = self._read_pin(path)
                if pin is None:
                    continue
                if not self._live(pin, now):
                    path.unlink()
                    continue
                for cid, _ in self._walk(CID.parse(pin.cid), read_leaves=False, missing_ok=True):
                    live.add(str(cid))
            removed = 0
            young = now - min_age
            for shard in self._blocks.iterdir():
                for block in shard.iterdir():
                    if block.name.startswith("."):
                        block.unlink()  # a writer died mid-write (none runs during gc)
                    elif block.name in live or (min_age and block.stat().st_mtime > young):
                        continue
                    else:
                        block.unlink()
                        removed += 1
            for leftover in [*self._pins.glob(".*.tmp"), *self._tmp.iterdir()]:
                leftover.unlink()
        return removed

    # -- CAR --------------------------------------------------------------------------

    def car_export(self, root: str, out: IO[bytes]) -> None:
        """Write the DAG under ``root`` as a CAR v1 stream (depth-first, each block once)."""
        cid = parse_cid(root)
        out.write(car.encode_header([cid]))
        for block_cid, data in self._walk(cid, read_leaves=True):
            assert data is not None
            out.write(car.encode_section(block_cid, data))

    def car_import(self, source: IO[bytes], *, pin: bool = True) -> list[str]:
        """Import a CAR v1 stream; pin its roots only once every block is stored and verified.

        A CAR that is malformed, truncated, has a block not matching its CID, or does
        not hold the complete DAG of each root raises InvalidCAR and pins nothing.
        Blocks already written stay unpinned until gc.
        """
        with self._locked():
            reader = car.CarReader(source)
            for cid, data in reader:
                self._put_block(cid.to_v1(), data)
            roots = [r.to_v1() for r in reader.roots]
            for root in roots:
                try:
                    self._check_complete(root)
                except NotFound as exc:
                    raise InvalidCAR(
                        f"CAR does not hold the whole DAG of {root}: {exc.message}"
                    ) from None
            if pin:
                for root in roots:
                    self._ensure_pin(root, "")
        return [str(r) for r in roots]
