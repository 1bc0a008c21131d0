"""The scaling projection of docs/benchmarks.md ("Scaling projection") from measured
per-second costs: a film of VIDEO seconds on N workers (one core, one task at a
time each), split in ranges of RANGE seconds.

    T1   = PLAN0 + MERGE0 + V (plan + range + segment + audio + merge)
    T(N) = PLAN0 + V plan + max(V (range + segment + audio) / N,
                                RANGE range + segment,  # the last range, then a segment
                                V audio)                # the one audio task
           + (MERGE0 + V merge) / MERGE_TASKS
    efficiency = T1 / (N T(N))

    .venv/bin/python bench/project_scaling.py --plan 0.01 --range 1.5 --segment 3.46 \\
        --audio 0.05 --merge 0.03
"""

from __future__ import annotations

import argparse


def project(
    n: int, *, video: float, range_s: float, plan: float, split: float, segment: float,
    audio: float, merge: float, merge_tasks: float = 1.0, plan0: float = 0.0, merge0: float = 0.0,
) -> tuple[float, float]:  # fmt: skip
    """(wall seconds, efficiency) on ``n`` workers (pure)."""
    t1 = plan0 + merge0 + video * (plan + split + segment + audio + merge)
    parallel = max(video * (split + segment + audio) / n, range_s * split + segment, video * audio)
    tn = plan0 + video * plan + parallel + (merge0 + video * merge) / merge_tasks
    return tn, t1 / (n * tn)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=float, default=7200.0)
    parser.add_argument("--range-seconds", type=float, default=60.0)
    for name in ("plan", "range", "segment", "audio", "merge"):
        parser.add_argument(f"--{name}", type=float, required=True, help="CPU s per video s")
    parser.add_argument("--merge-tasks", type=float, default=1.0, help="merge divided by")
    parser.add_argument("--plan0", type=float, default=0.0, help="plan's fixed CPU s")
    parser.add_argument("--merge0", type=float, default=0.0, help="merge's fixed CPU s")
    args = parser.parse_args()
    for n in (1, 8, 64, 512):
        tn, eff = project(
            n, video=args.video, range_s=args.range_seconds, plan=args.plan, split=args.range,
            segment=args.segment, audio=args.audio, merge=args.merge, merge_tasks=args.merge_tasks,
            plan0=args.plan0, merge0=args.merge0,
        )  # fmt: skip
        print(f"{n:4d} workers: {tn / 3600:6.2f} h ({tn:8.0f} s), efficiency {eff:5.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
