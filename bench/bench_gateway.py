"""What serving outputs through orchestrate's /ipfs/ gateway costs, against Kubo's gateway.

Builds one outputs-like UnixFS directory in an embedded store: a ``--mib`` MiB
``big.mp4`` and ``hls/720p/`` with ``--segments`` small segments (past 5,957 of
them the folder is a HAMT, as a film of over 99 minutes gives), then serves it

- from `kinoit dev` (a subprocess, fresh home): ``/function/orchestrate/ipfs/…``;
- baseline in the same run: Kubo's own gateway (``ipfs daemon --offline``, fresh
  repo) holding the very same blocks, imported as a CAR.

First, in-process: how long building the directory of a 2-hour film's layout
takes (five rungs of 7,200 segments, 7,200 thumbnails, two MP4s), as merge does
it from the files' CIDs and sizes.

Then, per gateway: whole-file throughput, a 1 MiB range in the middle, the
median and 95th percentile time of a segment request walked by path (as a player
asks for each segment in turn), and for `kinoit dev` the process's peak RSS
(VmHWM) before and after: the file is streamed, never held.

    .venv/bin/python bench/bench_gateway.py [--mib 200] [--segments 7200]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {port}")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build(store_root: Path, mib: int, segments: int) -> tuple[str, list[str]]:
    """The directory's CID and the paths of its segments."""
    from kinoit.store import EmbeddedStore
    from kinoit.store.directory import file_entry, put_tree

    store = EmbeddedStore(store_root)
    entries = {}
    with tempfile.TemporaryFile() as big:
        for _ in range(mib):
            big.write(os.urandom(1 << 20))
        big.seek(0)
        entries["big.mp4"] = file_entry(store.add(big, pin=False), mib << 20)
    paths = []
    for i in range(segments):
        data = i.to_bytes(4, "big") * 2048  # 8 KiB
        rel = f"hls/720p/{i:05d}.ts"
        entries[rel] = file_entry(store.add_bytes(data, pin=False), len(data))
        paths.append(rel)
    root = put_tree(store, entries)
    store.pin_add(root)
    return root, paths


def film_directory_seconds() -> tuple[float, int, int]:
    """Seconds to build a 2-hour film's outputs directory; its files and blocks."""
    from kinoit.store.cid import CID, RAW
    from kinoit.store.directory import file_entry, tree_blocks

    files = {}
    for i in range(7200):
        for rung in ("1080p", "720p", "480p", "360p", "240p"):
            files[f"hls/{rung}/{i:05d}.ts"] = file_entry(CID.for_block(RAW, b"%d" % i), 600_000)
        files[f"thumbs/{i:05d}.jpg"] = file_entry(CID.for_block(RAW, b"t%d" % i), 9000)
    for rung in ("1080p", "720p"):
        files[f"{rung}.mp4"] = file_entry(CID.for_block(RAW, rung.encode()), 4_000_000_000)
    start = time.perf_counter()
    _, blocks = tree_blocks(files)
    return time.perf_counter() - start, len(files), len(blocks)


def measure(base: str, root: str, paths: list[str], mib: int, samples: int) -> dict[str, float]:
    session = requests.Session()
    url = f"{base}/ipfs/{root}"
    start = time.perf_counter()
    size = 0
    with session.get(f"{url}/big.mp4", stream=True, timeout=600) as reply:
        reply.raise_for_status()
        for piece in reply.iter_content(1 << 20):
            size += len(piece)
    whole = time.perf_counter() - start
    assert size == mib << 20, size
    middle = (mib << 20) // 2
    start = time.perf_counter()
    ranged = session.get(
        f"{url}/big.mp4", headers={"Range": f"bytes={middle}-{middle + (1 << 20) - 1}"}, timeout=60
    )
    range_s = time.perf_counter() - start
    assert ranged.status_code == 206 and len(ranged.content) == 1 << 20
    times = []
    step = max(1, len(paths) // samples)
    for rel in paths[::step][:samples]:
        start = time.perf_counter()
        reply = session.get(f"{url}/{rel}", timeout=60)
        times.append(time.perf_counter() - start)
        assert reply.status_code == 200 and len(reply.content) == 8192
    times.sort()
    return {
        "MiB/s": mib / whole,
        "range ms": range_s * 1000,
        "segment p50 ms": statistics.median(times) * 1000,
        "segment p95 ms": times[int(0.95 * (len(times) - 1))] * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--segments", type=int, default=7200)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    ipfs = shutil.which("ipfs") or str(Path.home() / "go" / "bin" / "ipfs")
    seconds, files, blocks = film_directory_seconds()
    print(f"2-hour film layout: {files} files -> {blocks} directory blocks in {seconds:.2f}s")
    with tempfile.TemporaryDirectory(prefix="kinoit-bench-gateway-") as tmp:
        root_dir = Path(tmp)
        home = root_dir / "home"
        started = time.perf_counter()
        root, paths = build(home / "store", args.mib, args.segments)
        print(f"built {root} ({args.mib} MiB file, {args.segments} segments) "
              f"in {time.perf_counter() - started:.1f}s", file=sys.stderr)  # fmt: skip
        results: dict[str, dict[str, float]] = {}
        env = {k: v for k, v in os.environ.items() if not k.startswith("KINOIT_")}
        env.update(KINOIT_HOME=str(home), KINOIT_SECRETS_DIR=str(root_dir / "secrets"))
        port = free_port()
        log = (root_dir / "dev.log").open("wb")
        dev = subprocess.Popen(
            [sys.executable, "-m", "kinoit.cli", "dev", "--port", str(port), "--workers", "1"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_port(port)
            base = f"http://127.0.0.1:{port}/function/orchestrate"
            requests.get(f"{base}/ipfs/{root}/", timeout=60)  # warm: imports, first index
            rss_before = peak_rss_mib(dev.pid)
            results["kinoit dev"] = measure(base, root, paths, args.mib, args.samples)
            results["kinoit dev"]["peak RSS MiB"] = peak_rss_mib(dev.pid)
            print(f"kinoit dev peak RSS before {rss_before:.0f} MiB", file=sys.stderr)
        finally:
            dev.terminate()
            dev.wait(timeout=30)
        repo = root_dir / "kubo"
        kenv = dict(os.environ, IPFS_PATH=str(repo))
        subprocess.run([ipfs, "init", "--profile=test", "--empty-repo"], env=kenv,
                       check=True, capture_output=True)  # fmt: skip
        gateway_port, api_port = free_port(), free_port()
        for key, value in (("Addresses.Gateway", f"/ip4/127.0.0.1/tcp/{gateway_port}"),
                           ("Addresses.API", f"/ip4/127.0.0.1/tcp/{api_port}")):  # fmt: skip
            subprocess.run([ipfs, "config", key, value], env=kenv, check=True)
        from kinoit.store import EmbeddedStore

        car = io.BytesIO()
        EmbeddedStore(home / "store").car_export(root, car)
        subprocess.run([ipfs, "dag", "import"], input=car.getvalue(), env=kenv, check=True,
                       capture_output=True)  # fmt: skip
        kubo = subprocess.Popen([ipfs, "daemon", "--offline"], env=kenv,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            wait_port(gateway_port)
            base = f"http://127.0.0.1:{gateway_port}"
            requests.get(f"{base}/ipfs/{root}/", timeout=60)
            results["Kubo gateway"] = measure(base, root, paths, args.mib, args.samples)
            results["Kubo gateway"]["peak RSS MiB"] = peak_rss_mib(kubo.pid)
        finally:
            kubo.terminate()
            kubo.wait(timeout=30)
    columns = ["MiB/s", "range ms", "segment p50 ms", "segment p95 ms", "peak RSS MiB"]
    print(f"| gateway | {' | '.join(columns)} |")
    print("|---" * (len(columns) + 1) + "|")
    for name, row in results.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.1f}" for c in columns) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
