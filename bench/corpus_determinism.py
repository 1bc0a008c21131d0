"""Does every source of the calibration corpus come out the same on every build?

Builds each generated source of bench/media_calibrate.py (and each excerpt of the
real clips) twice, each time into an empty folder, exactly as the corpus build makes
it (`make_source`, `make_excerpt`), and compares the decoded frames (ffmpeg's
framemd5) of the two builds, and of each with the cached corpus's copy where there
is one. A source whose two builds differ is a new draw on every build: thresholds
calibrated on it cannot be derived again.

    .venv/bin/python bench/corpus_determinism.py [--jobs 2] [NAME ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import media_calibrate as mc


def framemd5(video: Path) -> str:
    """The decoded frames' checksums (one line a frame), without ffmpeg's header."""
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(video),
         "-map", "0:v", "-f", "framemd5", "-"],
        check=True, capture_output=True, text=True, timeout=600,
    ).stdout  # fmt: skip
    return "\n".join(line for line in out.splitlines() if not line.startswith("#"))


def build(name: str, work: Path) -> Path:
    for table in (mc.CALIBRATION, mc.HELD_OUT_GENERATED, mc.FRESH_GENERATED):
        if name in table:
            graph, fps = table[name]
            return mc.make_source(name, graph, fps, work)
    file, first, frames, _ = mc.FRESH_REAL[name]
    return mc.make_excerpt(name, mc.WORK / "real" / file, first, frames, work)


def check(name: str) -> tuple[str, int, bool, str]:
    """(name, frames, the two builds' frames identical, against the cached copy)."""
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        one, two = framemd5(build(name, Path(a))), framemd5(build(name, Path(b)))
    cached = next((mc.WORK / "sources").glob(f"{name}.*"), None)
    versus = "not cached"
    if cached is not None:
        versus = "same" if framemd5(cached) == one else "different"
    return name, len(one.splitlines()), one == two, versus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="build every corpus source twice, compare")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("names", nargs="*")
    args = parser.parse_args(argv)
    names = args.names or [
        *mc.CALIBRATION,
        *mc.HELD_OUT_GENERATED,
        *mc.FRESH_GENERATED,
        *mc.FRESH_REAL,
    ]
    print("| source | frames | two builds | cached copy |\n|---|---|---|---|")
    bad = 0
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for name, frames, same, versus in pool.map(check, names):
            bad += not same
            print(f"| {name} | {frames} | {'identical' if same else 'DIFFERENT'} | {versus} |",
                  flush=True)  # fmt: skip
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
