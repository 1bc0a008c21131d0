"""The scaling projection of docs/benchmarks.md ("Scaling projection") from measured
per-second costs: a film of VIDEO seconds on N workers (one core, one task at a
time each), split in ranges of RANGE seconds, merged by one task per rung in
parallel and a final task (or, with ``--merge``, by one merge task).

    T1   = PLAN0 + V (plan + range + segment + audio) + MERGE
    T(N) = PLAN0 + V plan + max(V (range + segment + audio) / N,
                                RANGE range + segment,  # the last range, then a segment
                                V audio)                # the one audio task
           + MERGE(N)
    merge per rung:  MERGE    = sum over rungs (R0 + V r) + F0 + V final
                     MERGE(N) = max(max over rungs (R0 + V r), sum over rungs / N)
                                + F0 + V final
    one merge task:  MERGE = MERGE(N) = MERGE0 + V merge
    efficiency = T1 / (N T(N))

    .venv/bin/python bench/project_scaling.py --plan 0.0017 --range 1.22 --segment 3.46 \\
        --audio 0.051 --rung 0.014@0.3 --rung 0.006@0.2 --final 0.004 --final0 0.3
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def merge_phase(
    n: int, rungs: Sequence[tuple[float, float]], final: tuple[float, float], video: float
) -> tuple[float, float]:
    """(CPU seconds, wall seconds on ``n`` workers) of the rung tasks, each (per video
    second, fixed), then the final task (pure)."""
    each = [fixed + video * per_s for per_s, fixed in rungs]
    last = final[1] + video * final[0]
    return sum(each) + last, max(max(each, default=0.0), sum(each) / n) + last


def project(
    n: int, *, video: float, range_s: float, plan: float, split: float, segment: float,
    audio: float, merge: float = 0.0, plan0: float = 0.0, merge0: float = 0.0,
    rungs: Sequence[tuple[float, float]] = (), final: tuple[float, float] = (0.0, 0.0),
) -> tuple[float, float]:  # fmt: skip
    """(wall seconds, efficiency) on ``n`` workers (pure); merged per rung when ``rungs``
    is given, else by one task (``merge``, ``merge0``)."""
    if rungs:
        merge_cpu, merge_wall = merge_phase(n, rungs, final, video)
    else:
        merge_cpu = merge_wall = merge0 + video * merge
    t1 = plan0 + video * (plan + split + segment + audio) + merge_cpu
    parallel = max(video * (split + segment + audio) / n, range_s * split + segment, video * audio)
    tn = plan0 + video * plan + parallel + merge_wall
    return tn, t1 / (n * tn)


def per_second_and_fixed(text: str) -> tuple[float, float]:
    """``PER_S[@FIXED]``: CPU s per second of video and fixed CPU s."""
    per_s, _, fixed = text.partition("@")
    return float(per_s), float(fixed or 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=float, default=7200.0)
    parser.add_argument("--range-seconds", type=float, default=60.0)
    for name in ("plan", "range", "segment", "audio"):
        parser.add_argument(f"--{name}", type=float, required=True, help="CPU s per video s")
    parser.add_argument("--plan0", type=float, default=0.0, help="plan's fixed CPU s")
    parser.add_argument("--merge", type=float, default=None, help="one merge task: CPU s per s")
    parser.add_argument("--merge0", type=float, default=0.0, help="one merge task: fixed CPU s")
    parser.add_argument(
        "--rung", type=per_second_and_fixed, action="append", default=[],
        help="one rung task: PER_S[@FIXED] (repeat per rung)",
    )  # fmt: skip
    parser.add_argument("--final", type=float, default=0.0, help="final task: CPU s per s")
    parser.add_argument("--final0", type=float, default=0.0, help="final task: fixed CPU s")
    args = parser.parse_args()
    if args.merge is None and not args.rung:
        parser.error("give --merge (one merge task) or --rung per rung")
    common = {
        "video": args.video, "range_s": args.range_seconds, "plan": args.plan,
        "split": args.range, "segment": args.segment, "audio": args.audio, "plan0": args.plan0,
    }  # fmt: skip
    models = []
    if args.merge is not None:
        models.append(("one merge task", {"merge": args.merge, "merge0": args.merge0}))
    if args.rung:
        models.append(("merge per rung", {"rungs": args.rung, "final": (args.final, args.final0)}))
    for name, merge in models:
        print(name)
        for n in (1, 8, 64, 512):
            tn, eff = project(n, **common, **merge)  # type: ignore[arg-type]
            print(f"{n:4d} workers: {tn / 3600:6.2f} h ({tn:8.0f} s), efficiency {eff:5.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
