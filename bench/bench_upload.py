"""What uploading a source through the web page's endpoint costs.

Starts `kinoit dev` (a subprocess, fresh home), then uploads one file of
``--mib`` MiB through ``POST /sources`` + ``PUT /sources/<id>`` in pieces, as the
page does, and reports the time, the throughput and the gateway process's peak
RSS (VmHWM) before and after: the upload must not hold the file in memory.
Also measures ``GET /jobs/<id>/segments`` (the page polls it every second) on a
synthetic job of ``--segments`` segments, in-process.

Baseline in the same run: ``kinoit add`` of the same file into an embedded store
(one streaming import, no HTTP, no second pass).

    .venv/bin/python bench/bench_upload.py [--mib 256] [--segments 3600]
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_file(path: Path, mib: int) -> None:
    with path.open("wb") as out:
        out.write(HEAD)
        for _ in range(mib):
            out.write(secrets.token_bytes(1 << 20))


def upload(base: str, token: str, path: Path) -> tuple[str, float, float]:
    headers = {"Authorization": f"Bearer {token}"}
    size = path.stat().st_size
    start = time.perf_counter()
    session = requests.post(
        f"{base}/sources", json={"size": size, "name": path.name}, headers=headers, timeout=60
    ).json()
    chunk = session["chunk_bytes"]
    reply: dict[str, object] = {}
    last = 0.0
    with path.open("rb") as f:
        for offset in range(0, size, chunk):
            piece_start = time.perf_counter()
            r = requests.put(
                f"{base}/sources/{session['upload_id']}?offset={offset}",
                data=f.read(chunk), headers=headers, timeout=600,
            )  # fmt: skip
            r.raise_for_status()
            reply = r.json()
            last = time.perf_counter() - piece_start
    return str(reply["cid"]), time.perf_counter() - start, last


def bench_segments(segments: int, workdir: Path) -> tuple[float, float, int]:
    """Seconds and reply bytes of one GET /jobs/<id>/segments over a finished job of
    ``segments`` segments: the task hash read from a real Redis, decoded, reduced."""
    import json

    import redis
    from kinoit.jobs import JobRecord, JobState, keys
    from kinoit.service.segments import read_grid_tasks, segment_view
    from loopback import start_redis  # bench/ is sys.path[0] when a script runs

    names = ("720p", "480p", "360p")
    rung = {"verdict": "match", "failed": None, "reason": "match", "max_distance": 3,
            "mean_distance": 1.2, "distances": [3] * 25, "frames": 25,
            "scores": {"psnr_luma": 41.2, "misplaced": 0.0}}  # fmt: skip
    checksum = {"algorithm": "phash-v2", "hashes": ["0f" * 8] * 25, "ok": True,
                "rungs": dict.fromkeys(names, rung), "failed": [], "reason": "match"}  # fmt: skip
    cid = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    proc, port = start_redis(str(workdir))
    try:
        connection = redis.Redis(port=port)
        tasks_key = keys.JOB_TASKS_KEY.format(job_id="j")
        pipe = connection.pipeline(transaction=False)
        pipe.hset(tasks_key, "split", "D1|split|" + json.dumps({"segments": segments}))
        for i in range(segments):
            renditions = {"renditions": dict.fromkeys(names, cid)}
            pipe.hset(tasks_key, mapping={
                f"transcode.{i}": "D1|transcode|" + json.dumps(renditions),
                f"thumbnail.{i}": "D1|thumbnail|" + json.dumps({"thumbnail": cid}),
                f"checksum.{i}": "D1|checksum|" + json.dumps(checksum),
            })  # fmt: skip
        pipe.execute()
        ladder = {"rungs": [{"name": r, "height": int(r[:-1])} for r in names]}
        record = JobRecord("j", JobState.COMPLETED, {"ladder": ladder}, {}, 0.0)
        times = []
        for _ in range(2):  # the first poll reads every result, later ones only news
            start = time.perf_counter()
            view = segment_view(record, read_grid_tasks(connection, "j"))
            body = json.dumps(view, separators=(",", ":"))
            times.append(time.perf_counter() - start)
        return times[0], times[1], len(body)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--segments", type=int, default=3600)
    args = parser.parse_args()
    from kinoit.store import EmbeddedStore

    with tempfile.TemporaryDirectory(prefix="kinoit-bench-upload-") as tmp:
        root = Path(tmp)
        source = root / "source.mp4"
        write_file(source, args.mib)
        secrets_dir = root / "secrets"
        secrets_dir.mkdir()
        token = "bench-token"
        (secrets_dir / "kinoit-api-token").write_text(token)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KINOIT_")}
        env.update(KINOIT_HOME=str(root / "home"), KINOIT_SECRETS_DIR=str(secrets_dir))
        log = (root / "dev.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "kinoit.cli", "dev", "--port", str(port), "--workers", "1"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}/function/orchestrate"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if requests.get(f"{base}/healthz", timeout=2).ok:
                        break
                except requests.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("kinoit dev did not start")
                time.sleep(0.2)
            requests.post(f"{base}/session", json={"token": token}, timeout=10)
            before = peak_rss_mib(proc.pid)
            cid, seconds, closing = upload(base, token, source)
            after = peak_rss_mib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        start = time.perf_counter()
        baseline_cid = EmbeddedStore(root / "baseline", durable=True).add(source)
        baseline = time.perf_counter() - start
        first, later, view_bytes = bench_segments(args.segments, root)
    assert cid == baseline_cid, (cid, baseline_cid)
    print(f"| what | {args.mib} MiB file |")
    print("|---|---|")
    print(f"| upload through POST /sources (pieces of 1 MiB) | {seconds:.2f} s, "
          f"{args.mib / seconds:.0f} MiB/s |")  # fmt: skip
    print(f"| the last piece's request (closes the file) | {closing * 1000:.0f} ms |")
    print(f"| baseline: `kinoit add` of the same file | {baseline:.2f} s, "
          f"{args.mib / baseline:.0f} MiB/s |")  # fmt: skip
    print(f"| gateway peak RSS before / after the upload | {before:.0f} / {after:.0f} MiB |")
    print(f"| same CID as `kinoit add` | {cid == baseline_cid} |")
    print(f"| GET /jobs/<id>/segments of {args.segments} segments x 3 rungs (Redis read, "
          f"decode, reduce, JSON) | first poll {first * 1000:.0f} ms, later polls "
          f"{later * 1000:.0f} ms; {view_bytes / 1024:.0f} KiB |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
