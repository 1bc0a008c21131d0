"""Stage scratch directories that a killed worker cannot leave behind for good.

Every stage works in a directory under one scratch root (``$KINOIT_SCRATCH_DIR``,
else ``<system temp dir>/kinoit-scratch-<uid>``, owner-only) named
``<stage>.<pid>.<host>.<random>``: the stage, and the process and host that own it.
A stage removes its directory however it ends, but a SIGKILLed worker cannot; so
:func:`scratch_dir` (at most once a minute per process) and each async worker on
start sweep the root for directories whose owner on this host is gone and which
nobody has touched for :data:`STALE_AFTER_SECONDS`. Nothing outside the root, and
nothing in it whose name is not of that form, is ever removed; a directory of a live
process (or of a pid that was reused) is kept.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kinoit.config import Settings, load_settings
from kinoit.errors import ConfigurationError

SCRATCH_DIR_VAR = "KINOIT_SCRATCH_DIR"
# A dead owner's directory is removed once untouched this long (a grace period for
# clocks, pid namespaces and slow file systems; the pid check is the real guard).
STALE_AFTER_SECONDS = 15 * 60
# scratch_dir sweeps its root at most this often per process.
SWEEP_INTERVAL_SECONDS = 60.0

_STAGE = re.compile(r"^[a-z][a-z0-9-]*$")
_NAME = re.compile(
    r"^(?P<stage>[a-z][a-z0-9-]*)\.(?P<pid>[0-9]{1,10})\.(?P<host>[A-Za-z0-9-]{1,63})"
    r"\.[A-Za-z0-9_]+$"
)
_last_sweep: dict[Path, float] = {}


@dataclass(frozen=True)
class ScratchOwner:
    """Who made a scratch directory, as its name records it."""

    stage: str
    pid: int
    host: str


def host_tag(hostname: str | None = None) -> str:
    """The host name reduced to letters, digits and dashes (at most 63), as names carry it."""
    raw = socket.gethostname() if hostname is None else hostname
    tag = re.sub(r"[^A-Za-z0-9-]", "-", raw)[:63]
    return tag or "localhost"


def parse_scratch_name(name: str) -> ScratchOwner | None:
    """The owner recorded in a scratch directory's name; None for any other name (pure)."""
    match = _NAME.match(name)
    if match is None:
        return None
    return ScratchOwner(match["stage"], int(match["pid"]), match["host"])


def is_stale(
    owner: ScratchOwner, age_seconds: float, host: str, alive: Callable[[int], bool],
    min_age: float = STALE_AFTER_SECONDS,
) -> bool:  # fmt: skip
    """Whether a scratch directory may go: made on this host, untouched for ``min_age``,
    and its process gone (pure, given ``alive``)."""
    return owner.host == host and age_seconds >= min_age and not alive(owner.pid)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists here (one we may not signal counts)."""
    if pid <= 0:
        return True  # not a real owner: never treat it as gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def scratch_root(settings: Settings) -> Path:
    """The scratch root, created if needed. The default one, in the shared temp dir,
    must be a real directory owned by this user (ConfigurationError otherwise)."""
    if settings.scratch_dir is not None:
        root = settings.scratch_dir
        root.mkdir(parents=True, exist_ok=True)
        if not root.is_dir():
            raise ConfigurationError(f"{SCRATCH_DIR_VAR}={root} is not a directory")
        return root
    root = Path(tempfile.gettempdir()) / f"kinoit-scratch-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o700)
    info = os.lstat(root)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise ConfigurationError(
            f"scratch root {root} is not a directory owned by this user; "
            f"remove it or set {SCRATCH_DIR_VAR}"
        )
    return root


def sweep_stale_scratch(
    root: Path,
    *,
    min_age: float = STALE_AFTER_SECONDS,
    now: float | None = None,
    alive: Callable[[int], bool] = pid_alive,
    host: str | None = None,
) -> list[Path]:
    """Remove the stale scratch directories directly under ``root``; return them."""
    now = time.time() if now is None else now
    host = host_tag() if host is None else host
    removed: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return removed
    for entry in entries:
        owner = parse_scratch_name(entry.name)
        if owner is None or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            continue  # another sweeper got there first
        if is_stale(owner, age, host, alive, min_age):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


def sweep_now(settings: Settings | None = None) -> list[Path]:
    """Sweep the configured scratch root once (what a worker does on start)."""
    root = scratch_root(settings or load_settings())
    _last_sweep[root] = time.monotonic()
    return sweep_stale_scratch(root)


@contextlib.contextmanager
def scratch_dir(stage: str, settings: Settings | None = None) -> Iterator[Path]:
    """A private directory for one stage call, removed however the call ends; stale
    ones of dead processes are swept first (at most once a minute per process)."""
    if not _STAGE.match(stage):
        raise ValueError(f"bad stage name for a scratch directory: {stage!r}")
    root = scratch_root(settings or load_settings())
    last = _last_sweep.get(root)
    if last is None or time.monotonic() - last >= SWEEP_INTERVAL_SECONDS:
        _last_sweep[root] = time.monotonic()
        sweep_stale_scratch(root)
    path = Path(tempfile.mkdtemp(prefix=f"{stage}.{os.getpid()}.{host_tag()}.", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
