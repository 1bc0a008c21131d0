"""Orchestration cost with stage functions that do nothing.

Starts a private redis-server, then measures the job engine alone:

- fan-out: add + lease + build dispatch records (with callback tokens) for every task;
- completions per second through Redis (one client, then several threads);
- Redis round trips per task and per segment (counted on the client socket);
- Redis bytes per segment (INFO used_memory delta and MEMORY USAGE of the job keys),
  at the peak (everything leased) and when done (with CID-sized results);
- orchestrator memory (tracemalloc peak, RSS) while fanning out the whole job.

Baselines in the same run: the same number of plain HSETs pipelined in batches
(the cheapest way to write one record per task), and one plain HSET per round
trip (the floor for a one-call-per-callback completion).

    .venv/bin/python bench/bench_orchestration.py [--segments 100000] [--threads 4]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import redis
from kinoit.jobs import EngineConfig, JobEngine, callback_token, keys
from loopback import start_redis  # bench/ is sys.path[0] when a script runs

# A segment is fanned out to these stages, as the product does.
STAGES = ("transcode", "thumbnail", "checksum")
# CID-sized fake results: what each stage reports back per segment.
CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
RESULTS: dict[str, dict[str, Any]] = {
    "transcode": {"renditions": {r: CID for r in ("1080p", "720p", "480p", "360p")}},
    "thumbnail": {"thumbnail": CID},
    "checksum": {"phash": "c3a5e1f00f0f3c3c", "distances": {"720p": 2, "480p": 3}},
}
SECRET = b"bench-secret-bench-secret-bench!"
# Task ids are "<letter><segment number>", one letter per stage.
PREFIX = {"transcode": "v", "thumbnail": "i", "checksum": "c"}


class CountingConnection(redis.Connection):
    """A redis connection that counts network round trips (packed sends)."""

    sends = 0
    _lock = threading.Lock()

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        with CountingConnection._lock:
            CountingConnection.sends += 1
        super().send_packed_command(command, check_health)


def used_memory(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def job_key_bytes(r: redis.Redis, job_id: str) -> int:
    total = 0
    for key in keys.job_keys(job_id):
        total += int(r.memory_usage(key, samples=0) or 0)
    return total


def server_usec(r: redis.Redis, command: str) -> tuple[int, float]:
    """(calls, total microseconds) Redis spent in ``command`` since the last CONFIG RESETSTAT."""
    stats = r.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0)), float(stats.get("usec", 0))


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def task_ids(segments: int) -> Iterator[tuple[str, str]]:
    for stage in STAGES:
        for i in range(segments):
            yield stage, f"{PREFIX[stage]}{i:06d}"


def bench_baseline_hset(r: redis.Redis, n: int) -> dict[str, float]:
    r.flushall()
    before = used_memory(r)
    start = time.perf_counter()
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.hset("baseline:tasks", f"t{i:06d}", "P1|transcode|")
        if (i + 1) % 1000 == 0:
            pipe.execute()
    pipe.execute()
    pipelined = time.perf_counter() - start
    bytes_per = (used_memory(r) - before) / n
    k = min(n, 20_000)
    r.config_resetstat()
    start = time.perf_counter()
    for i in range(k):
        r.hset("baseline:tasks", f"t{i:06d}", "D1|transcode|{}")
    single = k / (time.perf_counter() - start)
    calls, usec = server_usec(r, "hset")
    r.flushall()
    return {
        "pipelined_s": pipelined,
        "bytes_per_task": bytes_per,
        "single_ops_s": single,
        "hset_usec": usec / max(calls, 1),
    }


def fan_out(engine: JobEngine, segments: int, window: int) -> tuple[str, float, int]:
    """Create a job, add every task, lease them all and build their dispatch records.

    Returns (job id, time the adds finished, number of dispatch records).
    """
    job_id = engine.create_job({"source": CID, "profile": "default"})
    engine.promote()
    for stage in STAGES:
        engine.add_tasks(job_id, stage, ((t, None) for s, t in task_ids(segments) if s == stage))
    t_added = time.perf_counter()
    dispatched = 0
    while True:
        batch = engine.lease_next(job_id, window)
        if not batch:
            break
        # A dispatch record: what orchestrate POSTs to /async-function/<stage>.
        for d in batch:
            token = callback_token(SECRET, d.job_id, d.task_id, d.attempt)
            record = (d.stage, f"/callback/{d.job_id}/{d.task_id}/{d.attempt}?t={token}")
            del record
        dispatched += len(batch)
    return job_id, t_added, dispatched


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--window", type=int, default=1000, help="tasks leased per call")
    args = parser.parse_args()
    n_tasks = args.segments * len(STAGES)

    workdir = tempfile.mkdtemp(prefix="kinoit-bench-redis-")
    proc, port = start_redis(workdir)
    try:
        pool = redis.ConnectionPool(
            host="127.0.0.1",
            port=port,
            connection_class=CountingConnection,
            max_connections=args.threads + 4,
        )
        r = redis.Redis(connection_pool=pool)
        base = bench_baseline_hset(r, n_tasks)

        engine = JobEngine(r, EngineConfig(max_active_jobs=1, lease_seconds=3600.0))
        mem0 = used_memory(r)
        sends0 = CountingConnection.sends
        r.config_resetstat()
        t0 = time.perf_counter()
        job_id, t_added, dispatched = fan_out(engine, args.segments, args.window)
        t_fanout = time.perf_counter()
        fanout_sends = CountingConnection.sends - sends0
        fanout_usec = server_usec(r, "evalsha")[1] + server_usec(r, "eval")[1]
        assert dispatched == n_tasks, (dispatched, n_tasks)
        mem_peak = used_memory(r) - mem0
        keys_peak = job_key_bytes(r, job_id)

        # Completions: one client, one call per callback (as an HTTP handler does).
        all_ids = [t for _, t in task_ids(args.segments)]
        stage_of = {v: k for k, v in PREFIX.items()}
        single_n = min(len(all_ids), 20_000)
        sends1 = CountingConnection.sends
        r.config_resetstat()
        c0 = time.perf_counter()
        finished = 0
        for t in all_ids[:single_n]:
            finished += engine.complete(job_id, t, 1, RESULTS[stage_of[t[0]]]).all_done
        single_s = time.perf_counter() - c0
        complete_sends = CountingConnection.sends - sends1
        ev_calls, ev_usec = server_usec(r, "evalsha")

        # Then several threads at once (replicas / waitress threads).
        rest = all_ids[single_n:]
        counts = [0] * args.threads

        def worker(k: int) -> None:
            own = JobEngine(r, engine.config)
            n = 0
            for t in rest[k :: args.threads]:
                n += own.complete(job_id, t, 1, RESULTS[stage_of[t[0]]]).all_done
            counts[k] = n

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.threads)]
        c1 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        multi_s = time.perf_counter() - c1
        finished += sum(counts)
        job = engine.get_job(job_id)
        assert finished == 1 and job.total.done == n_tasks, (finished, job.total)
        mem_done = used_memory(r) - mem0
        keys_done = job_key_bytes(r, job_id)
        events_bytes = int(r.memory_usage(keys.events_key(job_id), samples=0) or 0)

        # Orchestrator memory: the same fan-out again under tracemalloc (which slows
        # Python down, hence not during the timed run), on an emptied Redis.
        r.flushall()
        rss0 = rss_mib()
        tracemalloc.start()
        fan_out(JobEngine(r, engine.config), args.segments, args.window)
        _, py_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss1 = rss_mib()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

    seg = args.segments
    rows = [
        ("segments / tasks", f"{seg:,} / {n_tasks:,}", ""),
        ("fan-out: add tasks", f"{t_added - t0:.2f} s", ""),
        (
            "fan-out: add + lease + dispatch records",
            f"{t_fanout - t0:.2f} s",
            f"baseline pipelined HSET x{n_tasks:,}: {base['pipelined_s']:.2f} s",
        ),
        (
            "fan-out rate",
            f"{n_tasks / (t_fanout - t0):,.0f} tasks/s",
            f"baseline {n_tasks / base['pipelined_s']:,.0f} HSET/s",
        ),
        (
            "completions, 1 client",
            f"{single_n / single_s:,.0f} /s",
            f"baseline 1 HSET per round trip: {base['single_ops_s']:,.0f} /s",
        ),
        (f"completions, {args.threads} threads", f"{len(rest) / multi_s:,.0f} /s", ""),
        (
            "Redis CPU per task, fan-out (commandstats)",
            f"{fanout_usec / n_tasks:.1f} us",
            "",
        ),
        (
            "Redis CPU per completion (commandstats)",
            f"{ev_usec / max(ev_calls, 1):.1f} us",
            f"baseline HSET {base['hset_usec']:.1f} us",
        ),
        ("round trips per task, fan-out", f"{fanout_sends / n_tasks:.4f}", ""),
        ("round trips per completion", f"{complete_sends / single_n:.2f}", ""),
        (
            "round trips per segment (fan-out + 3 callbacks)",
            f"{fanout_sends / seg + len(STAGES) * complete_sends / single_n:.2f}",
            "",
        ),
        (
            "Redis bytes per segment, all leased (used_memory)",
            f"{mem_peak / seg:,.0f} B",
            f"baseline HSET {base['bytes_per_task'] * len(STAGES):,.0f} B per 3 tasks",
        ),
        ("Redis bytes per segment, all leased (MEMORY USAGE)", f"{keys_peak / seg:,.0f} B", ""),
        (
            "Redis bytes per segment, done with results (used_memory)",
            f"{mem_done / seg:,.0f} B",
            "",
        ),
        (
            "Redis bytes per segment, done (MEMORY USAGE)",
            f"{keys_done / seg:,.0f} B",
            f"of which event stream {events_bytes / seg:,.0f} B",
        ),
        (
            "orchestrator Python peak during fan-out (tracemalloc)",
            f"{py_peak / 2**20:,.1f} MiB",
            "",
        ),
        (
            "orchestrator RSS (max, before -> after that fan-out)",
            f"{rss0:,.0f} -> {rss1:,.0f} MiB",
            "includes the task-id list the bench itself keeps",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"{'measure':<{width}}  {'kinoit':>{vwidth}}  baseline / note")
    print("-" * (width + vwidth + 30))
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>{vwidth}}  {note}")
    print(
        f"\npython {sys.version.split()[0]}, redis-py {redis.__version__}, cores {os.cpu_count()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
