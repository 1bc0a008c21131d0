"""Local workers forked from one parent that has imported their code once.

A worker process spends about 0.65 CPU s importing its code (RQ, redis, requests,
NumPy, PyAV, Pillow and the stages; measured on this project's 2-core machine)
before it takes its first call: ``kinoit run --workers 16`` paid that sixteen
times. ``python -m kinoit.local.pool REDIS_URL --workers N`` imports it all once,
then forks the N workers (:func:`kinoit.local.worker.run_worker`), which share the
imported pages copy-on-write. The parent stays single-threaded and holds no
connection, so a fork copies nothing half-done; it replaces a worker that dies,
and on SIGTERM (or SIGINT) passes SIGTERM on (RQ finishes the call in hand), waits
:data:`STOP_GRACE_SECONDS`, then kills what is left. A worker dies with the parent
(``PR_SET_PDEATHSIG``), so killing the pool never leaves a worker behind, and the
pool stops when the process that started it dies. Each
worker writes ``worker-<index>.log`` in ``--log-dir``; every process it forks is
waited for, so its CPU shows in the parent's ``RUSAGE_CHILDREN``.

:func:`fork_pool` is the same pool forked from a process that has already imported
most of it (``kinoit run``'s, which runs the gateway and orchestrate): there it
imports 0.17 CPU s more instead of 0.65.

On OpenFaaS none of this applies: each function replica is its own process.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

# What a worker would otherwise import on its first calls (the stages import most of
# it lazily, so that a CLI command loads only what it uses).
PRELOAD = (
    "kinoit.local.worker",
    "numpy",
    "av",
    "av.filter",
    "PIL.Image",
    "kinoit.store",
    "kinoit.media.checksum",
    "kinoit.media.direct",
    "kinoit.media.merge",
    "kinoit.media.ranges",
    "kinoit.media.split",
    "kinoit.media.thumbnail",
    "kinoit.media.transcode",
    "kinoit.stages.merge_media",
    "kinoit.stages.merge_parts",
)
# A worker finishing the call in hand gets this long after SIGTERM.
STOP_GRACE_SECONDS = 3.0
# A worker lives at least this long, so that one failing at its start is replaced at
# most this often.
MIN_WORKER_SECONDS = 1.0
# What the parent waits for: a worker's exit, or the signal to stop.
WATCHED = frozenset({signal.SIGCHLD, signal.SIGTERM, signal.SIGINT})
# Linux's prctl option that signals a child when its parent dies.
PR_SET_PDEATHSIG = 1


def preload(functions_dir: Path | None) -> None:
    """Import :data:`PRELOAD` and every function handler but orchestrate's (which the
    gateway runs): what forked workers then share."""
    for name in PRELOAD:
        importlib.import_module(name)
    if functions_dir is None:
        return
    from kinoit.local.functions import handler_path, load_handler

    for folder in sorted(functions_dir.iterdir()):
        if folder.name.startswith("orchestrate"):
            continue
        with contextlib.suppress(Exception):  # a broken handler fails its own calls
            if handler_path(functions_dir, folder.name).is_file():
                load_handler(functions_dir, folder.name)


def die_with_parent(parent: int, sig: int) -> None:
    """Have the kernel send ``sig`` to this process when ``parent`` dies (Linux); exit
    at once if it already has."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def run_child(body: Callable[[], None], what: str) -> NoReturn:
    """Run ``body`` in a forked child, then end the child with its exit code (a crash
    logged as ``what``'s): it never returns into the code that forked it."""
    code = 0
    try:
        body()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        logging.getLogger(__name__).exception("%s crashed", what)
        code = 1
    finally:
        os._exit(code)


class Pool:
    """The parent: forks, replaces and stops the workers."""

    def __init__(self, redis_url: str, workers: int, prefix: str, log_dir: Path) -> None:
        self.redis_url = redis_url
        self.workers = workers
        self.prefix = prefix
        self.log_dir = log_dir
        self.children: dict[int, int] = {}  # pid -> worker index
        self.stopping = False

    def spawn(self, index: int) -> None:
        """Fork worker ``index``."""
        parent = os.getpid()
        pid = os.fork()
        if pid:
            self.children[pid] = index
            return
        run_child(lambda: self._work(parent, index), f"worker {index}")

    def _work(self, parent: int, index: int) -> None:
        """Worker ``index``'s life in the forked child. One that ends within
        :data:`MIN_WORKER_SECONDS` (Redis unreachable, say) waits that long before it
        exits: the pool replaces it at once, and would otherwise fork as fast as it can."""
        started = time.monotonic()
        try:
            self._serve(parent, index)
        finally:
            time.sleep(max(0.0, MIN_WORKER_SECONDS - (time.monotonic() - started)))

    def _serve(self, parent: int, index: int) -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, set())  # the parent blocks them
        die_with_parent(parent, signal.SIGKILL)
        path = self.log_dir / f"worker-{index}.log"
        log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        from kinoit.local.worker import configure_logging, run_worker

        configure_logging()
        run_worker(self.redis_url, name=f"{self.prefix}-{index}-{uuid.uuid4().hex[:8]}")

    def stop(self) -> None:
        """Pass SIGTERM on to every worker; :meth:`run` then reaps and kills stragglers."""
        self.stopping = True
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def reap(self) -> None:
        """Collect every worker that exited; replace it unless stopping."""
        while self.children:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            index = self.children.pop(pid, -1)
            if index >= 0 and not self.stopping:
                self.spawn(index)

    def run(self) -> None:
        """Fork every worker, replace any that dies, until SIGTERM (or SIGINT: Ctrl-C
        in `kinoit dev`'s terminal) and all are reaped. The parent sleeps in the kernel
        until a worker exits or a stop signal comes (the signals are blocked and
        waited for), so an idle pool costs no CPU."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)
        for index in range(self.workers):
            self.spawn(index)
        deadline: float | None = None
        while True:
            self.reap()
            if not self.children:
                return
            if deadline is None:
                info: Any = signal.sigwaitinfo(WATCHED)
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    for child in self.children:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(child, signal.SIGKILL)
                    left = STOP_GRACE_SECONDS  # killed: reap them
                info = signal.sigtimedwait(WATCHED, left)
            if info is not None and info.si_signo != signal.SIGCHLD and not self.stopping:
                self.stop()
                deadline = time.monotonic() + STOP_GRACE_SECONDS


class ForkedPool:
    """A pool forked from this process by :func:`fork_pool`, with the part of
    :class:`subprocess.Popen`'s interface a stack uses (``poll``, ``wait``,
    ``terminate``, ``kill``)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code once the pool has exited (and is reaped), else None."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: gone all the same
                self.returncode = -1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit; :class:`subprocess.TimeoutExpired` after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"worker pool {self.pid}", timeout or 0)
            time.sleep(0.02)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def can_fork() -> bool:
    """Whether this process may fork a pool of itself: only while it runs one thread.
    A fork copies the calling thread alone, and a lock another thread held (logging's,
    an import's, a connection pool's) would stay locked in the child forever."""
    return threading.active_count() == 1


def fork_pool(
    redis_url: str,
    workers: int,
    *,
    prefix: str,
    log_dir: Path,
    functions_dir: Path | None,
    log_fd: int,
    close_fds: Sequence[int] = (),
) -> ForkedPool:
    """The pool of :func:`main`, forked from this process instead of started as a new
    interpreter: what this process has imported already (redis, requests, NumPy, PyAV,
    the service) is not imported again. In `kinoit run`'s process the pool then
    imports 0.17 CPU s more, against 0.65 as a new interpreter (measured under load on
    the 2-core development VM). Only when :func:`can_fork`.

    The child writes to ``log_fd``, closes ``close_fds`` (this process's listening
    sockets, say), dies with this process like the started pool and never returns
    into the caller (``os._exit``)."""
    for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
        with contextlib.suppress(Exception):
            stream.flush()
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return ForkedPool(pid)

    def pool() -> None:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        for fd in close_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        for handler in logging.root.handlers[:]:  # as a fresh interpreter's: none
            logging.root.removeHandler(handler)
        # and a fresh interpreter's signal handlers: one the caller installed (kinoit
        # dev's SIGTERM sets its own stop event) would keep this pool alive instead
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        die_with_parent(parent, signal.SIGTERM)
        preload(functions_dir)
        Pool(redis_url, workers, prefix, log_dir).run()

    run_child(pool, "worker pool")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m kinoit.local.pool REDIS_URL --workers N [--prefix P] [--log-dir D]``."""
    parser = argparse.ArgumentParser(prog="kinoit-worker-pool")
    parser.add_argument("redis_url")
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--prefix", default="kinoit-dev")
    parser.add_argument("--log-dir", type=Path, default=Path("."))
    parser.add_argument("--functions-dir", type=Path, default=None)
    parser.add_argument(
        "--parent", type=int, default=None,
        help="the pid whose death stops the pool (default: the parent found at start)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    # A stack that dies without stopping us (killed, os._exit) stops us all the same:
    # SIGTERM, so the workers get their grace. The starter names itself: one that died
    # while this interpreter was still starting would otherwise go unnoticed (the pool
    # re-parented, its parent "alive"), and the pool would run on alone.
    die_with_parent(args.parent or os.getppid(), signal.SIGTERM)
    preload(args.functions_dir)
    sys.stdout.flush()
    Pool(args.redis_url, args.workers, args.prefix, args.log_dir).run()


if __name__ == "__main__":  # pragma: no cover
    main()
