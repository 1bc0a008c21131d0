"""The product's orchestration overhead, with stage functions that do nothing.

Drives orchestrate's pipeline (callback -> verify token -> record result ->
add follow-up tasks -> refill the dispatch window -> "send") for a job of N
segments against a private redis-server and a scratch embedded store. The
functions are replaced by instant answers, so what is timed is kinoit's own
work per completion. Baseline in the same run: the job engine alone completing
the same number of tasks (``JobEngine.complete``, one call per task).

    .venv/bin/python bench/bench_pipeline.py [--segments 2000]

Wall-clock rates move with the machine's load; the instructions orchestrate
executes per callback do not. To count them (the callbacks only, not the fake
functions or the set-up; Redis's own work is not counted):

    valgrind --tool=callgrind --toggle-collect=sys_call_tracing \
        .venv/bin/python bench/bench_pipeline.py --segments 100
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import redis
from kinoit.config import load_settings
from kinoit.jobs import EngineConfig, JobEngine, ResultCache, callback_secret
from kinoit.local.redis_server import ensure_private_redis
from kinoit.metrics import MetricsRecorder
from kinoit.service import HttpRequest, OrchestrateService, RedisNotifier
from kinoit.service.pipeline import Pipeline
from kinoit.store import EmbeddedStore
from kinoit.store.cid import CID

# The CID of the empty file.
CIDS = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
LADDER = {"name": "b", "rungs": [{"name": "360p", "codec": "h264", "height": 360, "crf": 25}]}


class Calls:
    def __init__(self) -> None:
        self.pending: list[tuple[str, dict[str, Any], str]] = []

    def post(self, url: str, data: str, headers: dict[str, str], timeout: float) -> Any:
        self.pending.append((url.rsplit("/", 1)[1], json.loads(data), headers["X-Callback-Url"]))
        return type("R", (), {"status_code": 202})()


def answer(store: EmbeddedStore, function: str, body: dict[str, Any], n: int) -> dict[str, Any]:
    if function == "split":
        # distinct segments (identical ones would be served from the result cache)
        entries = [
            {
                "index": i,
                "cid": CID.parse(store.add_bytes(f"segment {i}".encode(), pin=False)),
                "start_frame": 25 * i,
                "end_frame": 25 * i + 25,
            }
            for i in range(n)
        ]
        pages = [CID.parse(store.dag_put(entries[i : i + 1024])) for i in range(0, n, 1024)]
        source = {"frames": 25 * n, "fps": "25/1", "width": 640, "height": 360}
        index = store.dag_put({"pages": pages, "count": n})
        return {"index": index, "segments": n, "audio": None, "source": source}
    if function == "transcode-segment":
        return {"segment": body["segment"], "renditions": {"360p": CIDS},
                "start_frame": body["start_frame"], "fps": body["fps"]}  # fmt: skip
    if function == "thumbnail":
        return {"segment": body["segment"], "thumbnail": CIDS}
    if function == "checksum":
        rung = {"max_distance": 1, "mean_distance": 0.5, "verdict": "match"}
        return {"segment": body["segment"], "renditions": body["renditions"], "hashes": [],
                "algorithm": "phash", "rungs": {"360p": rung}, "ok": True}  # fmt: skip
    hls = store.dag_put({"type": "kinoit/directory", "entries": {}})
    return {"plan": body["plan"], "mp4": {"360p": CIDS}, "hls": hls, "storyboard": None}


# Seconds of the one-off callbacks (split: fan-out; merge plan; merge: manifest and
# pins), and the result cache's bytes.
STEPS: dict[str, float] = {}


class RoundTrips:
    """Counts requests written to Redis (a pipeline or a command: one round trip each)."""

    count = 0

    @classmethod
    def install(cls) -> None:
        send = redis.connection.Connection.send_packed_command

        def counted(self: Any, command: Any, check_health: bool = True) -> None:
            cls.count += 1
            send(self, command, check_health)

        redis.connection.Connection.send_packed_command = counted  # type: ignore[method-assign]


def run_pipeline(url: str, root: Path, segments: int) -> tuple[float, int, int, int, int]:
    secrets = root / "secrets"
    secrets.mkdir()
    (secrets / "kinoit-api-token").write_text("t")
    (secrets / "kinoit-webhook-secret").write_text("whsec_YmVuY2gtYmVuY2gtYmVuY2gtYmVuY2g=")
    (secrets / "kinoit-stage-secret").write_text("bench-stage-signing-secret")
    settings = load_settings(
        {"KINOIT_HOME": str(root / "home"), "KINOIT_SECRETS_DIR": str(secrets),
         "KINOIT_REDIS_URL": url, "KINOIT_DISPATCH_WINDOW": "64"}
    )  # fmt: skip
    connection = redis.Redis.from_url(url)
    store = EmbeddedStore(settings.store_dir, durable=False)
    assert store.add_bytes(b"", pin=False) == CIDS  # every fake output is the empty file
    calls = Calls()
    engine = JobEngine(connection, EngineConfig.from_settings(settings))
    pipeline = Pipeline(
        settings, engine, ResultCache(connection), store, RedisNotifier(connection, settings),
        MetricsRecorder(connection), callback_secret(settings), post=calls.post,
    )  # fmt: skip
    service = OrchestrateService(settings, pipeline, connection)
    source = store.add_bytes(f"bench source {time.time()}".encode(), pin=False)
    body = json.dumps({"source": source, "ladder": LADDER}).encode()
    headers = {"authorization": "Bearer t"}
    service.handle(HttpRequest("POST", "/", headers, {}, body))
    # the fake split's own work (writing the segment index) is not orchestrate's: done first
    split_answer = json.dumps(answer(store, "split", {}, segments)).encode()
    completions = 0
    commands_before = int(connection.info("stats")["total_commands_processed"])
    trips_before = RoundTrips.count
    started = time.perf_counter()
    while calls.pending:
        function, request, callback = calls.pending.pop(0)
        parts = urllib.parse.urlsplit(callback)
        path = parts.path.split("/function/orchestrate", 1)[1]
        query = dict(urllib.parse.parse_qsl(parts.query))
        if function == "split":
            result = split_answer
        else:
            result = json.dumps(answer(store, function, request, segments)).encode()
        before = time.perf_counter()
        request = HttpRequest("POST", path, {"x-function-status": "200"}, query, result)
        # through sys.call_tracing, which nothing else calls: callgrind's
        # --toggle-collect=sys_call_tracing then counts exactly orchestrate's callbacks
        sys.call_tracing(service.handle, (request,))
        took = time.perf_counter() - before
        if function in ("split", "merge"):
            STEPS[function] = took
        else:
            # the slowest segment callback is the last one: it builds the merge plan
            STEPS["merge plan"] = max(STEPS.get("merge plan", 0.0), took)
        completions += 1
    elapsed = time.perf_counter() - started
    trips = RoundTrips.count - trips_before
    commands = int(connection.info("stats")["total_commands_processed"]) - commands_before
    memory = sum(
        int(connection.memory_usage(key, samples=0) or 0)
        for key in connection.scan_iter("kinoit:job:*")
    )
    STEPS["cache bytes"] = sum(
        int(connection.memory_usage(key, samples=0) or 0)
        for key in connection.scan_iter("kinoit:cache:*")
    )
    connection.close()
    return elapsed, completions, memory, commands, trips


def run_engine_baseline(url: str, tasks: int) -> float:
    connection = redis.Redis.from_url(url)
    engine = JobEngine(connection, EngineConfig(max_active_jobs=1000))
    job_id = engine.create_job({"bench": True})
    engine.promote()
    engine.add_tasks(job_id, "t", ((f"t.{i}", None) for i in range(tasks)))
    dispatches = engine.lease_next(job_id, tasks)
    started = time.perf_counter()
    for d in dispatches:
        engine.complete(job_id, d.task_id, d.attempt, {"thumbnail": CIDS})
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kinoit-bench-") as tmp:
        root = Path(tmp)
        private = ensure_private_redis(root / "redis-home")
        try:
            RoundTrips.install()
            elapsed, completions, memory, commands, trips = run_pipeline(
                private.url, root, args.segments
            )
            baseline = run_engine_baseline(private.url, completions)
        finally:
            private.stop()
    rate, base_rate = completions / elapsed, completions / baseline
    print(f"segments: {args.segments}, completions: {completions}")
    print("| path | completions/s | vs baseline |\n|---|---:|---:|")
    print(f"| orchestrate pipeline (callback route, follow-ups, window) | {rate:,.0f} "
          f"| {rate / base_rate:.2f}x |")  # fmt: skip
    print(f"| JobEngine.complete alone (baseline) | {base_rate:,.0f} | 1.00x |")
    print(f"Redis round trips per completion (pipeline): {trips / completions:.2f}")
    print(f"Redis commands per completion (pipeline): {commands / completions:.1f}")
    print(f"Redis memory of the finished job: {memory / args.segments:,.0f} bytes per segment")
    print(
        f"result cache entries (kept for reuse, not job state): "
        f"{STEPS.pop('cache bytes') / args.segments:,.0f} bytes per segment"
    )
    one_off = sum(STEPS.values())
    steps = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in STEPS.items())
    print(f"one-off callbacks: {steps}")
    print(f"segment callbacks alone: {(completions - 3) / (elapsed - one_off):,.0f} completions/s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process (orchestrate + fake functions + store): {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
