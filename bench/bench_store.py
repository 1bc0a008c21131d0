"""Content store throughput and peak memory: embedded store vs Kubo, same files, same run.

Each measurement runs in a fresh child process (so its peak RSS is its own, read
from ``wait4``): ``add`` imports a file and pins it (so it waits until the blocks
are on disk), ``--no-pin`` adds without pinning (page cache speed), ``cat``
streams the file back, verifying every block, to /dev/null. For Kubo the RSS is
the client's; the daemon's memory is not counted. Files of 64 MiB and 256 MiB show that
memory does not grow with the file. Baselines in the same run: copying the file
and sha2-256 over it (what any content store must at least do), and Kubo itself,
through kinoit's Kubo backend and through ``ipfs add``/``ipfs cat``.

Usage: .venv/bin/python bench/bench_store.py [--sizes 64,256] [--no-kubo] [--repeat 2]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20


# -- what the children run ---------------------------------------------------------------


def _child(argv: list[str]) -> None:
    """Run one operation and print its wall time in seconds on stdout (imports not timed)."""
    op, backend, target = argv[0], argv[1], argv[2]
    extra = argv[3] if len(argv) > 3 else ""
    from kinoit.store.embedded import EmbeddedStore
    from kinoit.store.kubo import KuboStore

    store: EmbeddedStore | KuboStore | None = None
    if op in ("add", "add-unpinned", "cat"):
        store = EmbeddedStore(Path(extra)) if backend == "embedded" else KuboStore(extra)
    start = time.perf_counter()
    if op == "copy":
        shutil.copyfile(target, extra)
    elif op == "sha256":
        with open(target, "rb") as f:
            hashlib.file_digest(f, "sha256")
    elif store is None:
        raise SystemExit(f"unknown op {op}")
    elif op in ("add", "add-unpinned"):
        print(store.add(Path(target), pin=op == "add"), file=sys.stderr)
    elif op == "cat":
        with open(os.devnull, "wb") as sink:
            for chunk in store.cat(target):
                sink.write(chunk)
    else:
        raise SystemExit(f"unknown op {op}")
    print(f"{time.perf_counter() - start:.6f}")


@dataclass
class Sample:
    seconds: float
    peak_rss_mib: float
    detail: str = ""


def run_child(args: list[str], env: dict[str, str] | None = None) -> Sample:
    """Run this script as a child for one operation; wall time and peak RSS from wait4."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed: {err.decode()[-2000:]}")
    return Sample(float(out.split()[-1]), usage.ru_maxrss / 1024, err.decode().strip())


def run_command(argv: list[str], env: dict[str, str]) -> Sample:
    """Time an external command (Kubo's own CLI) and read its peak RSS."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv} failed: {err.decode()[-2000:]}")
    return Sample(seconds, usage.ru_maxrss / 1024)


# -- Kubo --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _find_ipfs() -> str | None:
    found = shutil.which("ipfs")
    if found:
        return found
    candidate = Path(os.environ.get("GOPATH", Path.home() / "go")) / "bin" / "ipfs"
    return str(candidate) if candidate.exists() else None


@contextmanager
def kubo_daemon(workdir: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A Kubo daemon on a fresh repo (flatfs, the default), offline, loopback only."""
    binary = _find_ipfs()
    if binary is None:
        raise FileNotFoundError("ipfs")
    repo = workdir / "kubo-repo"
    env = dict(os.environ, IPFS_PATH=str(repo))
    subprocess.run([binary, "init", "--empty-repo"], env=env, check=True, capture_output=True)
    port = _free_port()
    for key, value in (
        ("Addresses.API", f"/ip4/127.0.0.1/tcp/{port}"),
        ("Addresses.Gateway", f"/ip4/127.0.0.1/tcp/{_free_port()}"),
    ):
        subprocess.run([binary, "config", key, value], env=env, check=True, capture_output=True)
    subprocess.run(
        [binary, "config", "--json", "Bootstrap", "[]"], env=env, check=True, capture_output=True
    )
    proc = subprocess.Popen(
        [binary, "daemon", "--offline"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("Kubo daemon did not start") from None
                time.sleep(0.1)
        env["KINOIT_BENCH_IPFS"] = binary
        yield f"http://127.0.0.1:{port}", env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


# -- the run -----------------------------------------------------------------------------


@dataclass
class Row:
    what: str
    size_mib: int
    add: Sample | None
    cat: Sample | None


def best(samples: list[Sample]) -> Sample:
    """The fastest of repeated runs (the least disturbed by a noisy, shared machine)."""
    return min(samples, key=lambda s: s.seconds)


def repeat(n: int, fn: Callable[[], Sample]) -> Sample:
    return best([fn() for _ in range(n)])


def measure(sizes: list[int], use_kubo: bool, repeats: int, workdir: Path) -> list[Row]:
    rows: list[Row] = []
    files = {}
    for size in sizes:
        path = workdir / f"input-{size}.bin"
        with open(path, "wb") as f:
            for _ in range(size):
                f.write(os.urandom(MIB))
        files[size] = path
    for size, path in files.items():
        copy = repeat(repeats, lambda p=path: run_child(["copy", "-", str(p), str(workdir / "c")]))
        sha = repeat(repeats, lambda p=path: run_child(["sha256", "-", str(p)]))
        rows.append(Row("baseline: copy file", size, copy, None))
        rows.append(Row("baseline: sha2-256 of file", size, sha, None))

        def add_embedded(p: Path = path) -> Sample:
            store_dir = workdir / "embedded"
            shutil.rmtree(store_dir, ignore_errors=True)
            return run_child(["add", "embedded", str(p), str(store_dir)])

        def add_embedded_unpinned(p: Path = path) -> Sample:
            store_dir = workdir / "embedded-unpinned"
            shutil.rmtree(store_dir, ignore_errors=True)
            return run_child(["add-unpinned", "embedded", str(p), str(store_dir)])

        add = repeat(repeats, add_embedded)
        cid = add.detail
        cat = repeat(
            repeats, lambda c=cid: run_child(["cat", "embedded", c, str(workdir / "embedded")])
        )
        rows.append(Row("kinoit embedded (pinned)", size, add, cat))
        rows.append(
            Row("kinoit embedded (--no-pin)", size, repeat(repeats, add_embedded_unpinned), None)
        )
    if use_kubo:
        with kubo_daemon(workdir) as (api, env):
            ipfs = env["KINOIT_BENCH_IPFS"]
            for size, path in files.items():
                add = repeat(repeats, lambda p=path: run_child(["add", "kubo", str(p), api]))
                cid = add.detail
                cat = repeat(repeats, lambda c=cid: run_child(["cat", "kubo", c, api]))
                rows.append(Row("kinoit -> Kubo RPC", size, add, cat))
                cli_add = repeat(
                    repeats,
                    lambda p=path: run_command(
                        [ipfs, "add", "-Q", "--cid-version=1", "--chunker=size-262144", str(p)],
                        env,
                    ),
                )
                cli_cat = repeat(repeats, lambda c=cid: run_command([ipfs, "cat", c], env))
                rows.append(Row("Kubo CLI (ipfs add/cat)", size, cli_add, cli_cat))
    return rows


def format_table(rows: list[Row]) -> str:
    def rate(size_mb: float, s: Sample | None) -> str:
        return f"{size_mb / s.seconds:8.0f}" if s else "       -"

    def rss(s: Sample | None) -> str:
        return f"{s.peak_rss_mib:8.0f}" if s else "       -"

    head = (
        f"| {'what':<28} | {'MiB':>4} | {'add MB/s':>8} | {'cat MB/s':>8} "
        f"| {'add RSS':>8} | {'cat RSS':>8} |"
    )
    lines = [head, "|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|"]
    for r in rows:
        size_mb = r.size_mib * MIB / 1e6
        lines.append(
            f"| {r.what:<28} | {r.size_mib:>4} | {rate(size_mb, r.add)} "
            f"| {rate(size_mb, r.cat)} | {rss(r.add)} | {rss(r.cat)} |"
        )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="64,256", help="file sizes in MiB")
    parser.add_argument("--no-kubo", action="store_true", help="skip the Kubo rows")
    parser.add_argument("--repeat", type=int, default=2, help="runs per cell; the best counts")
    parser.add_argument("--workdir", default=None, help="where files and stores go")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    use_kubo = not args.no_kubo and _find_ipfs() is not None
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="kinoit-bench-") as tmp:
        rows = measure(sizes, use_kubo, args.repeat, Path(tmp))
    print(format_table(rows))
    print("MB/s = 10^6 bytes per second; RSS = peak resident memory of the process in MiB.")
    if not use_kubo:
        print("(Kubo rows skipped: no ipfs binary, or --no-kubo)")


if __name__ == "__main__":
    main()
