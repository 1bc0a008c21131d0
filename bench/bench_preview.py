"""Time to the first playable preview segment on `kinoit dev` (issue 11, part 4).

Each run starts a fresh `kinoit dev --workers 2` (its own home: nothing cached),
adds a synthetic clip with sound, submits it over HTTP with the default
profile, then polls every 20 ms: the job status until ``preview.hls`` appears,
then the first rung's EVENT playlist until it lists a segment that fetches.
Printed per run and as medians, from the submit:

- split done (the status's ``stages.split.done``),
- first playable (the playlist lists segment 0 and it answers 200),
- split done -> first playable (the target: within 3 s),
- the job completed (the baseline: what a viewer waited for without a preview).

    .venv/bin/python bench/bench_preview.py [--runs 3] [--seconds 10] [--height 480]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

TOKEN = "bench-api-token"
POLL_SECONDS = 0.02


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_dev(root: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    secrets = root / "secrets"
    secrets.mkdir()
    (secrets / "kinoit-api-token").write_text(TOKEN)
    (secrets / "kinoit-webhook-secret").write_text("whsec_YmVuY2gtd2ViaG9vay1zZWNyZXQtYnl0ZXM=")
    (secrets / "kinoit-stage-secret").write_text("bench-stage-secret")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINOIT_")}
    env.update(KINOIT_HOME=str(root / "home"), KINOIT_SECRETS_DIR=str(secrets))
    port = free_port()
    log = (root / "dev.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kinoit.cli", "dev", "--port", str(port),
         "--workers", str(workers)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/function/orchestrate"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/healthz", timeout=5).ok:
                return proc, url
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"kinoit dev did not start; see {root / 'dev.log'}")


def stop_dev(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def one_run(clip: Path, workers: int) -> dict[str, float]:
    from kinoit.store import EmbeddedStore

    root = Path(tempfile.mkdtemp(prefix="kinoit-bench-preview-"))
    proc, url = start_dev(root, workers)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        source = str(EmbeddedStore(root / "home" / "store").add(clip))
        t0 = time.monotonic()
        job_id = requests.post(
            url, json={"source": source, "profile": "default"}, headers=auth, timeout=30
        ).json()["job_id"]
        marks: dict[str, float] = {}
        playlist = None
        while "completed" not in marks:
            status: dict[str, Any] = requests.get(
                f"{url}/jobs/{job_id}", headers=auth, timeout=30
            ).json()
            now = time.monotonic() - t0
            if status["state"] in ("failed", "cancelled"):
                raise SystemExit(f"job {job_id} {status['state']}: {status.get('error')}")
            if "split" not in marks and status["stages"].get("split", {}).get("done"):
                marks["split"] = now
            if status.get("preview") and playlist is None:
                master = requests.get(status["preview"]["hls"], timeout=30).text
                first = next(x for x in master.splitlines() if x and not x.startswith("#"))
                playlist = status["preview"]["hls"].rsplit("/", 1)[0] + "/" + first
            if playlist and "playable" not in marks:
                text = requests.get(playlist, timeout=30).text
                if "00000.ts" in text:
                    segment = playlist.rsplit("/", 1)[0] + "/00000.ts"
                    if requests.get(segment, timeout=30).status_code == 200:
                        marks["playable"] = time.monotonic() - t0
            if status["state"] == "completed":
                marks["completed"] = now
            time.sleep(POLL_SECONDS)
        marks["split_to_playable"] = marks["playable"] - marks["split"]
        return marks
    finally:
        stop_dev(proc)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from kinoit.media.synth import make_clip

    width = (args.height * 16 // 9) // 2 * 2
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(
            Path(tmp) / "clip.mp4", seconds=args.seconds, width=width, height=args.height
        )
        runs = [one_run(clip, args.workers) for _ in range(args.runs)]
    cols = ("split", "playable", "split_to_playable", "completed")
    print(f"{args.seconds:g} s {width}x{args.height} clip, default profile, {args.workers} workers")
    print(f"{'run':>6} " + " ".join(f"{c:>18}" for c in cols) + "   (seconds from submit)")
    for i, marks in enumerate(runs, 1):
        print(f"{i:>6} " + " ".join(f"{marks[c]:>18.2f}" for c in cols))
    medians = [statistics.median(m[c] for m in runs) for c in cols]
    print(f"{'median':>6} " + " ".join(f"{v:>18.2f}" for v in medians))


if __name__ == "__main__":
    main()
