"""Media benchmarks: split modes, and the per-segment path against one plain ffmpeg.

1. split modes (raw / lossless / copy) on a 1080p source: x realtime (seconds of
   video per wall second), CPU seconds, and bytes stored per second of video.
2. the headline: the whole per-segment path (split, transcode every segment with
   up to nproc segments in parallel, merge every rung + HLS) against ONE plain
   ffmpeg process rendering the same ladder from the whole source with the same
   encoder settings (same GOP, same rate control, same scaler). CPU is measured
   with getrusage(RUSAGE_CHILDREN): every ffmpeg/ffprobe the path starts counts.

    .venv/bin/python bench/bench_media.py [--seconds 30] [--size 1920x1080] [--fps 25]
        [--source-gop 50] [--modes raw,lossless,copy] [--path-modes auto,lossless]
        [--threads 1,auto]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from kinoit.config import load_settings
from kinoit.media import load_ladder, make_clip, probe, split_video, transcode_segment
from kinoit.media.ladder import Ladder, encoder_args
from kinoit.media.merge_job import merge_job, rendition_segments
from kinoit.media.plan import frames_per_segment


@dataclass
class Cost:
    wall: float = 0.0
    cpu: float = 0.0
    name: str = ""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def measure(cost: Cost) -> Iterator[None]:
    cpu0, wall0 = _children_cpu(), time.perf_counter()
    yield
    cost.wall += time.perf_counter() - wall0
    cost.cpu += _children_cpu() - cpu0


def baseline_argv(
    src: Path, ladder: Ladder, width: int, height: int, gop: int, outdir: Path,
    threads: int | None = None,
) -> list[str]:  # fmt: skip
    """One plain ffmpeg: one decode, split to every rung, the same encoder arguments."""
    n = len(ladder.rungs)
    graph = "[0:v:0]split=" + str(n) + "".join(f"[s{i}]" for i in range(n))
    for i, rung in enumerate(ladder.rungs):
        w, h = rung.output_size(width, height)
        graph += f";[s{i}]scale={w}:{h}:flags=bicubic,setsar=1,format={rung.pix_fmt}[o{i}]"
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(src)]
    argv += ["-filter_complex", graph]
    for i, rung in enumerate(ladder.rungs):
        argv += ["-map", f"[o{i}]", *encoder_args(rung, gop)]
        if threads is not None:
            argv += ["-threads", str(threads)]
        argv += ["-map", "0:a:0", "-c:a", "aac"]
        argv += ["-b:a", "128k", "-movflags", "+faststart", str(outdir / f"{rung.name}.mp4")]
    return argv


def dir_bytes(path: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file())


def bench_split(src: Path, seconds: float, modes: list[str], work: Path) -> list[dict[str, Any]]:
    rows = []
    settings = load_settings()
    info = probe(src, settings=settings)
    for mode in modes:
        out = work / f"split-{mode}"
        cost = Cost()
        with measure(cost):
            result = split_video(src, out, mode=mode, settings=settings, info=info)  # type: ignore[arg-type]
        video_bytes = sum(s.path.stat().st_size for s in result.segments)
        rows.append(
            {"mode": mode, "wall": cost.wall, "cpu": cost.cpu, "realtime": seconds / cost.wall,
             "bytes_per_s": video_bytes / seconds, "segments": len(result.segments)}
        )  # fmt: skip
        shutil.rmtree(out)
    return rows


def segment_path(
    src: Path, mode: str, work: Path, ladder: Ladder, jobs: int, threads: int | None
) -> dict[str, Cost]:
    """split -> parallel transcode -> merge (MP4 per rung + HLS); cost per stage."""
    settings = load_settings()
    costs = {"split": Cost(), "transcode": Cost(), "merge": Cost(), "total": Cost()}
    out = work / f"path-{mode}"
    with measure(costs["total"]):
        with measure(costs["split"]):
            split = split_video(src, out / "split", mode=mode, settings=settings)  # type: ignore[arg-type]

        def one(i: int) -> None:
            seg = split.segments[i]
            transcode_segment(
                seg.path, ladder, out / "rend", fps=split.fps, start_frame=seg.start_frame,
                frame_range=seg.frame_range, size=(split.width, split.height),
                frames=None if seg.frame_range else seg.frames, threads=threads,
                settings=settings,
            )  # fmt: skip

        with measure(costs["transcode"]), ThreadPoolExecutor(jobs) as pool:
            list(pool.map(one, range(len(split.segments))))
        with measure(costs["merge"]):
            renditions = rendition_segments(out / "rend", [s.path.stem for s in split.segments])
            merge_job(
                renditions, split.audio, out / "merged", fps=split.fps,
                segment_frames=[s.frames for s in split.segments], settings=settings,
            )  # fmt: skip
    costs["bytes"] = Cost(wall=dir_bytes(out / "merged", "*.mp4"))
    costs["mode"] = Cost(name=mode if mode != "auto" else f"auto ({split.mode})")
    shutil.rmtree(out)
    return costs


def baseline(
    src: Path, work: Path, ladder: Ladder, gop: int, threads: int | None = None
) -> tuple[Cost, int]:
    info = probe(src)
    out = work / "baseline"
    out.mkdir(parents=True, exist_ok=True)
    cost = Cost()
    argv = baseline_argv(src, ladder, info.display_width, info.display_height, gop, out, threads)
    with measure(cost):
        subprocess.run(argv, check=True, timeout=24 * 3600)
    size = dir_bytes(out, "*.mp4")
    shutil.rmtree(out)
    return cost, size


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--split-seconds", type=float, default=10.0, help="source length for part 1"
    )
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--fps", default="25")
    parser.add_argument("--source-gop", type=int, default=50)
    parser.add_argument("--modes", default="raw,lossless,copy")
    parser.add_argument("--path-modes", default="auto,lossless")
    parser.add_argument(
        "--threads", default="1", help="encoder threads per segment, e.g. 1,auto (each is a run)"
    )
    parser.add_argument("--ladder", default="default")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-split", action="store_true")
    parser.add_argument("--skip-path", action="store_true")
    args = parser.parse_args(argv)
    width, height = (int(x) for x in args.size.split("x"))
    ladder = load_ladder(args.ladder).for_source(width, height)
    work = Path(tempfile.mkdtemp(prefix="kinoit-bench-"))
    say: Callable[[str], None] = lambda s: print(s, flush=True)  # noqa: E731
    try:
        say(f"machine: {os.cpu_count()} cores; ffmpeg: {ffmpeg_version()}")
        if not args.skip_split:
            src = make_clip(work / "split-src.mp4", seconds=args.split_seconds, fps=args.fps,
                            width=width, height=height, gop=args.source_gop, preset="veryfast",
                            crf=23)  # fmt: skip
            rows = bench_split(src, args.split_seconds, args.modes.split(","), work)
            say(f"\n### split modes ({args.size}, {args.split_seconds:g} s, {args.fps} fps)\n")
            say(table(
                ["mode", "wall s", "CPU s", "x realtime", "MB per s of video"],
                [[r["mode"], f"{r['wall']:.2f}", f"{r['cpu']:.2f}", f"{r['realtime']:.2f}",
                  f"{r['bytes_per_s'] / 1e6:.2f}"] for r in rows],
            ))  # fmt: skip
            src.unlink()
        if args.skip_path:
            return 0
        src = make_clip(work / "src.mp4", seconds=args.seconds, fps=args.fps, width=width,
                        height=height, gop=args.source_gop, preset="veryfast", crf=23)  # fmt: skip
        gop = frames_per_segment(Fraction(args.fps), 1)
        say(f"\n### per-segment path vs one ffmpeg ({args.size}, {args.seconds:g} s, "
            f"ladder {[r.name for r in ladder.rungs]}, {args.jobs} parallel)\n")  # fmt: skip
        base, base_bytes = baseline(src, work, ladder, gop)
        rows2 = [["one ffmpeg (baseline)", f"{base.cpu:.1f}", f"{base.wall:.1f}", "1.00", "1.00",
                  f"{base_bytes / 1e6:.1f}", "-"]]  # fmt: skip
        thread_choices = [None if t == "auto" else int(t) for t in args.threads.split(",")]
        for threads in thread_choices:
            if threads is None:
                continue
            b1, b1_bytes = baseline(src, work, ladder, gop, threads)
            rows2.append([
                f"one ffmpeg, encoder threads={threads}", f"{b1.cpu:.1f}", f"{b1.wall:.1f}",
                f"{b1.cpu / base.cpu:.2f}", f"{b1.wall / base.wall:.2f}",
                f"{b1_bytes / 1e6:.1f}", "-",
            ])  # fmt: skip
        runs = [(m, t) for m in args.path_modes.split(",") for t in thread_choices]
        for mode, threads in runs:
            c = segment_path(src, mode, work, ladder, args.jobs, threads)
            detail = ", ".join(
                f"{k} {c[k].cpu:.1f}/{c[k].wall:.1f}" for k in ("split", "transcode", "merge")
            )
            rows2.append([
                f"per-segment, split={c['mode'].name}, threads={threads or 'auto'}",
                f"{c['total'].cpu:.1f}", f"{c['total'].wall:.1f}",
                f"{c['total'].cpu / base.cpu:.2f}", f"{c['total'].wall / base.wall:.2f}",
                f"{c['bytes'].wall / 1e6:.1f}", detail,
            ])  # fmt: skip
        say(table(
            ["path", "CPU s", "wall s", "CPU ratio", "wall ratio", "MP4 MB", "stages CPU/wall s"],
            rows2,
        ))  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def ffmpeg_version() -> str:
    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, check=True, timeout=30)
    return out.stdout.decode().split("\n", 1)[0].split(" ")[2]


if __name__ == "__main__":
    sys.exit(main())
