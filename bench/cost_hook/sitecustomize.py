"""CPU accounting for bench/bench_pipeline_cost.py; kinoit itself never imports this.

The benchmark puts this folder on PYTHONPATH, so every Python process that
`kinoit run` starts (the run itself with its gateway and orchestrate, and each
worker) imports it at start-up as ``sitecustomize``. With BENCH_CPU_LOG set it
wraps four seams and appends JSON lines to that file:

- each function call through a handler (what ``load_handler`` returns): the
  calling thread's CPU, the CPU of the processes it ran and waited for, the wall
  time, and what it spent inside the two seams below;
- each ``kinoit.media.ffmpeg.run``: program and ``what``, its CPU (from
  RUSAGE_CHILDREN around the wait) and wall time;
- each call into the embedded store: the calling thread's CPU;
- the private redis-server: its CPU from /proc just before kinoit stops it.

At exit each process also writes its own CPU (RUSAGE_SELF) and its waited-for
children's (RUSAGE_CHILDREN). Records of a handler call are written when the
call ends, so a worker that is killed later still leaves them.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import resource
import sys
import threading
import time
from typing import Any

LOG = os.environ.get("BENCH_CPU_LOG", "")
STORE_METHODS = (
    "add", "add_bytes", "get_file", "dag_put", "dag_get", "has", "block_get", "block_put",
    "pin_add", "pin_rm",
)  # fmt: skip

_local = threading.local()
_lock = threading.Lock()
# What this process spent outside handler calls (the run's source add and export).
_outside: dict[str, Any] = {"ffmpeg": {}, "store_cpu": 0.0, "store_calls": 0}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _write(record: dict[str, Any]) -> None:
    record["pid"] = os.getpid()
    line = json.dumps(record) + "\n"
    with _lock, open(LOG, "a", encoding="utf-8") as out:
        out.write(line)


def _current() -> dict[str, Any]:
    call = getattr(_local, "call", None)
    return call if call is not None else _outside


def _stage(name: str, event: Any) -> str:
    """The row a call counts in: a direct transcode's range call has its own."""
    body = getattr(event, "body", b"") or b""
    if name == "transcode-segment" and isinstance(body, bytes | str):
        raw = body if isinstance(body, bytes) else body.encode()
        if b'"range"' in raw:
            return "transcode (direct)"
    return name


def _wrap_handle(name: str, handle: Any) -> Any:
    @functools.wraps(handle)
    def timed(event: Any, context: Any) -> Any:
        call: dict[str, Any] = {"ffmpeg": {}, "store_cpu": 0.0, "store_calls": 0}
        previous = getattr(_local, "call", None)
        _local.call = call
        cpu0, children0, wall0 = time.thread_time(), _children_cpu(), time.perf_counter()
        try:
            return handle(event, context)
        finally:
            _local.call = previous
            path = str(getattr(event, "path", "") or "/").strip("/").split("/")[0]
            call.update(
                type="call",
                stage=_stage(name, event),
                route=f"{getattr(event, 'method', '')} /{path}",
                thread_cpu=time.thread_time() - cpu0,
                children_cpu=_children_cpu() - children0,
                wall=time.perf_counter() - wall0,
            )
            _write(call)

    return timed


def _install() -> None:
    from kinoit.local import functions, redis_server
    from kinoit.media import ffmpeg
    from kinoit.store import embedded

    real_load = functions.load_handler
    wrapped: dict[str, Any] = {}

    def load_handler(functions_dir: Any, name: str) -> Any:
        handle = real_load(functions_dir, name)
        if name not in wrapped:
            wrapped[name] = _wrap_handle(name, handle)
        return wrapped[name]

    functions.load_handler = load_handler

    real_run = ffmpeg.run

    def run(argv: Any, timeout: float, *, what: str = "") -> Any:
        children0, wall0 = _children_cpu(), time.perf_counter()
        try:
            return real_run(argv, timeout, what=what)
        finally:
            key = f"{os.path.basename(str(argv[0]))}:{what or 'audio'}"
            slot = _current()["ffmpeg"].setdefault(key, [0, 0.0, 0.0])
            slot[0] += 1
            slot[1] += _children_cpu() - children0
            slot[2] += time.perf_counter() - wall0

    ffmpeg.run = run

    def timed_store(method: Any) -> Any:
        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if getattr(_local, "in_store", False):  # get_file -> cat -> blocks: once
                return method(*args, **kwargs)
            _local.in_store = True
            cpu0 = time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                _local.in_store = False
                slot = _current()
                slot["store_cpu"] += time.thread_time() - cpu0
                slot["store_calls"] += 1

        return timed

    for name in STORE_METHODS:
        setattr(embedded.EmbeddedStore, name, timed_store(getattr(embedded.EmbeddedStore, name)))

    real_stop = redis_server.PrivateRedis.stop

    def stop(self: Any) -> None:
        if self.process is not None:
            try:
                with open(f"/proc/{self.process.pid}/stat", encoding="ascii") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                ticks = os.sysconf("SC_CLK_TCK")
                _write({"type": "redis", "cpu": (int(fields[11]) + int(fields[12])) / ticks})
            except (OSError, IndexError, ValueError):
                pass
        real_stop(self)

    redis_server.PrivateRedis.stop = stop

    @atexit.register
    def at_exit() -> None:
        own = resource.getrusage(resource.RUSAGE_SELF)
        _write(
            {
                "type": "exit",
                "argv": list(sys.argv),
                "self_cpu": own.ru_utime + own.ru_stime,
                "children_cpu": _children_cpu(),
                **_outside,
            }
        )


if LOG:
    _install()
