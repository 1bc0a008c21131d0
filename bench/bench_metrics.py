"""What keeping the metrics in Redis costs, against prometheus_client's in-process metrics.

Starts a private redis-server on loopback and measures, in one run:

- recording one finished task (tasks_finished counter + duration histogram):
  kinoit's MetricsRecorder (one Lua script call per event), the same call queued on a
  caller's pipeline that carries 100 events, and the baseline, an in-process
  prometheus_client Counter.inc + Histogram.observe (what each replica would do
  if it did not have to agree with the others);
- one scrape: render_metrics over 7 stages and every state, against
  generate_latest of an in-process registry holding the same series.

    .venv/bin/python bench/bench_metrics.py [--events 20000] [--scrapes 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable

import redis
from kinoit.metrics import DURATION_BUCKETS, MetricsRecorder, Snapshot, render_metrics
from loopback import start_redis  # bench/ is sys.path[0] when a script runs
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

STAGES = ["split", "transcode", "thumbnail", "checksum", "merge", "orchestrate", "tick"]


def rate(count: int, fn: Callable[[int], None]) -> float:
    start = time.perf_counter()
    for i in range(count):
        fn(i)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--scrapes", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir:
        proc, port = start_redis(workdir)
        try:
            client = redis.Redis(port=port)
            recorder = MetricsRecorder(client)

            def own_transaction(i: int) -> None:
                recorder.task_finished(STAGES[i % 7], "done", (i % 997) / 100)

            batched_pipe = client.pipeline(transaction=True)

            def caller_pipeline(i: int) -> None:
                recorder.task_finished(STAGES[i % 7], "done", (i % 997) / 100, pipe=batched_pipe)
                if i % 100 == 99:
                    batched_pipe.execute()

            registry = CollectorRegistry()
            counter = Counter("t", "t", ["stage", "state"], registry=registry)
            histogram = Histogram(
                "d_seconds", "d", ["stage"], buckets=DURATION_BUCKETS, registry=registry
            )

            def in_process(i: int) -> None:
                counter.labels(STAGES[i % 7], "done").inc()
                histogram.labels(STAGES[i % 7]).observe((i % 997) / 100)

            n = args.events
            rows = [
                ("record: Redis, one script call", rate(n, own_transaction)),
                ("record: Redis, caller's pipeline", rate(n, caller_pipeline)),
                ("record: in-process (baseline)", rate(n, in_process)),
            ]
            batched_pipe.execute()
            snapshot = Snapshot(
                jobs={"queued": 3, "running": 1, "completed": 40},
                tasks={(s, st): 5 for s in STAGES for st in ("pending", "leased", "done")},
                queue_depth=3,
            )
            size = len(render_metrics(client, snapshot))
            scrape_rows = [
                ("scrape: render_metrics (Redis)",
                 rate(args.scrapes, lambda _: render_metrics(client, snapshot))),
                ("scrape: generate_latest (baseline)",
                 rate(args.scrapes, lambda _: generate_latest(registry))),
            ]  # fmt: skip
            used = int(client.info("memory")["used_memory"])
            keys = client.keys("kinoit:metrics:*")
            stored = sum(int(client.memory_usage(k) or 0) for k in keys)
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    baseline = rows[-1][1]
    print(f"{'operation':<38} {'per second':>12} {'vs baseline':>12}")
    for name, value in rows:
        print(f"{name:<38} {value:>12,.0f} {value / baseline:>11.3f}x")
    scrape_base = scrape_rows[-1][1]
    for name, value in scrape_rows:
        print(f"{name:<38} {value:>12,.0f} {value / scrape_base:>11.3f}x")
    print(f"\nscrape size {size:,} bytes; {len(keys)} metric keys use {stored:,} bytes in Redis "
          f"(used_memory {used:,})")  # fmt: skip


if __name__ == "__main__":
    main()
