"""Disk durability for the embedded store: flushing a filesystem (``syncfs``), a
background flusher while a pinned add streams in, directory fsync, and filling a
buffer from a stream."""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path
from typing import IO, Any

# Linux's syncfs through libc; None until first use, False where it is absent.
_libc: Any = None
# While a pinned add streams in, flush the filesystem this often (seconds).
_FLUSH_INTERVAL_SECONDS = 0.25


def _load_libc() -> Any:
    global _libc
    if _libc is None:
        try:
            lib = ctypes.CDLL(None, use_errno=True)
            lib.syncfs.argtypes = [ctypes.c_int]
            _libc = lib
        except (OSError, AttributeError):
            _libc = False
    return _libc


def syncfs(fd: int) -> None:
    """Flush every dirty page of the filesystem holding ``fd`` (Linux), else sync all."""
    lib = _load_libc()
    if lib:
        lib.syncfs(fd)
    else:
        os.sync()


def fill_buffer(stream: IO[bytes], view: memoryview) -> int:
    """Read until ``view`` is full or the stream ends; return how many bytes were read."""
    readinto = getattr(stream, "readinto", None)
    filled = 0
    while filled < len(view):
        if readinto is not None:
            n = readinto(view[filled:])
        else:
            piece = stream.read(len(view) - filled)
            n = len(piece)
            view[filled : filled + n] = piece
        if not n:
            break
        filled += n
    return filled


class BackgroundFlusher:
    """A thread calling ``syncfs`` on a filesystem every so often until the block ends."""

    def __init__(self, root: Path, interval: float = _FLUSH_INTERVAL_SECONDS) -> None:
        self._root = root
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kinoit-flush", daemon=True)

    def _run(self) -> None:
        fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            while not self._stop.wait(self._interval):
                syncfs(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> BackgroundFlusher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
