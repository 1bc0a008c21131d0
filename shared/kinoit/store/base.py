"""The one storage interface every backend implements.

Backends: the embedded blockstore (default), Kubo over its RPC API, and Kubo
with pins delegated to IPFS Cluster. ``open_store(settings)`` in
``kinoit.store`` picks one from the environment, the same way for the CLI and
the functions.

CIDs cross this interface as CIDv1 base32 strings. DAG-CBOR values are plain
Python data (dict with str keys, list, str, bytes, int, float, bool, None) with
links as :class:`kinoit.store.cid.CID` objects.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from kinoit.errors import InvalidParameter, NotFound


@dataclass(frozen=True)
class Pin:
    """A named, recursive pin, optionally expiring at a UNIX time."""

    cid: str
    name: str = ""
    expires_at: float | None = None


@runtime_checkable
class Store(Protocol):
    """Content-addressed storage as kinoit uses it."""

    def add(self, source: IO[bytes] | Path, *, pin: bool = True, name: str = "") -> str:
        """Import a file as UnixFS (like ``ipfs add --cid-version=1``); return its CID."""
        ...

    def add_bytes(self, data: bytes, *, pin: bool = True, name: str = "") -> str:
        """Import bytes as a UnixFS file; return its CID."""
        ...

    def cat(self, cid: str) -> Iterator[bytes]:
        """Stream a UnixFS file's bytes, verified against their CIDs."""
        ...

    def get_file(self, cid: str, dest: Path) -> Path:
        """Write a UnixFS file to ``dest`` atomically and return ``dest``."""
        ...

    def dag_put(self, value: Any, *, pin: bool = False) -> str:
        """Store one strict DAG-CBOR block; return its CID."""
        ...

    def dag_get(self, cid: str) -> Any:
        """Decode one DAG-CBOR block (links come back as CID objects)."""
        ...

    def block_get(self, cid: str) -> bytes:
        """The raw bytes of one block, verified against its CID."""
        ...

    def block_put(self, data: bytes, *, codec: int = ...) -> str:
        """Store one block as-is with ``codec`` (raw by default); return its CID (not pinned)."""
        ...

    def has(self, cid: str) -> bool:
        """Whether the block is present locally."""
        ...

    def pin_add(self, cid: str, *, name: str = "", expire_in: float | None = None) -> Pin:
        """Pin a DAG recursively, optionally for ``expire_in`` seconds."""
        ...

    def pin_rm(self, cid: str) -> None:
        """Remove a pin (NotFound when it is not pinned)."""
        ...

    def pin_ls(self) -> list[Pin]:
        """Every pin, in CID order."""
        ...

    def gc(self, *, min_age: float = 0.0) -> int:
        """Delete blocks no live pin reaches; return how many were removed.

        ``min_age``: keep unpinned blocks written less than that many seconds ago
        (embedded store only; Kubo's repo/gc has no such grace period).
        """
        ...

    def car_export(self, root: str, out: IO[bytes]) -> None:
        """Write the DAG under ``root`` as a CAR v1 stream."""
        ...

    def car_import(self, source: IO[bytes], *, pin: bool = True) -> list[str]:
        """Import a CAR v1 stream atomically; return its roots."""
        ...


@contextlib.contextmanager
def source_stream(source: IO[bytes] | Path | str) -> Iterator[IO[bytes]]:
    """``source`` as a binary stream: a path is opened (and closed after), NotFound
    when it does not exist, InvalidParameter for a directory; a stream as it is."""
    if not isinstance(source, Path | str):
        yield source
        return
    try:
        stream = open(source, "rb")  # noqa: SIM115 (closed below, after the yield)
    except FileNotFoundError:
        raise NotFound(f"no such file: {source}") from None
    except IsADirectoryError:
        raise InvalidParameter("source", f"{source} is a directory") from None
    with stream:
        yield stream


def iter_chunks(stream: IO[bytes], size: int) -> Iterable[bytes]:
    """Yield exactly ``size``-byte chunks from ``stream`` (the last may be shorter)."""
    while True:
        buf = bytearray()
        while len(buf) < size:
            piece = stream.read(size - len(buf))
            if not piece:
                break
            buf += piece
        if not buf:
            return
        yield bytes(buf)
        if len(buf) < size:
            return


@contextlib.contextmanager
def atomic_output(dest: Path) -> Iterator[IO[bytes]]:
    """A file that appears at ``dest`` only if the block completes (never half-written).

    Not fsynced: it is for working copies and exports that can be made again. The file
    is created like any other (0666 less the umask: 0644 usually), not 0600 as
    ``mkstemp`` would, so a web server running as another user can read an export.
    """
    while True:
        tmp = str(dest.parent / f".{dest.name}.{secrets.token_hex(8)}.part")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_chunks(chunks: Iterable[bytes], dest: Path) -> Path:
    """Write ``chunks`` to ``dest`` atomically (a working copy, not fsynced); return ``dest``."""
    with atomic_output(dest) as out:
        for chunk in chunks:
            out.write(chunk)
    return dest
