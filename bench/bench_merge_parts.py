"""merge per rung, measured for the scaling projection (docs/benchmarks.md, "Scaling
projection"; issue 9 item 4): the merge stage's own ``run`` for each rung task
(``{"plan", "rung"}``), the media part (``{"plan", "part": "media"}``: audio
renditions, storyboard), the final task (``{"plan", "rungs", "media"}``) and, in the
same run, the whole merge in one task (``{"plan"}``), on 12 segments and on every
segment of SECONDS of the 1080p source of bench_pipeline_cost, each task's CPU
seconds (this process and the ffmpeg runs it waits for, getrusage) and wall
seconds; the slope between the two lengths is the cost per second of video. The
passes alternate which runs first, the one-task merge or the parts (the first to run
reads the store's files from disk, the others from the page cache); each runs in a
fresh store of its own (an MP4's blocks are new to the store that adds it, as in a
job: with one shared store the second to run found them there and cost half as
much), after one untimed run on 2 segments (imports). ``--steps RUNG`` splits that
rung's task by step instead; ``--preset ladder`` makes the renditions at the
ladder's own presets (what a job writes).

The renditions are the default ladder's rungs made by bench_split_ranges (x264
ultrafast: more bytes for merge to copy than the default presets, an upper bound),
with their thumbnails, in an embedded store; the plan marks every rung verified by
the checksum (merge counts packets, as in a pipeline job). Each task fetches its
inputs from the store, as the functions do. The final task's result is checked equal
to the one-task merge's (the same outputs directory, every file the same bytes).

    nice -n 10 .venv/bin/python bench/bench_merge_parts.py --seconds 60
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline_cost import SOURCES, make_source, run_ffmpeg
from bench_split_ranges import cpu_now
from kinoit.config import Settings, load_settings
from kinoit.documents import link, write_merge_plan
from kinoit.manifest import build_segment_entry
from kinoit.media.ladder import load_ladder
from kinoit.media.probe import probe
from kinoit.media.split import Segment, load_split, split_video
from kinoit.media.thumbnail import make_thumbnail
from kinoit.media.transcode import transcode_segment
from kinoit.stages import merge
from kinoit.stages.merge_media import MEDIA_FIELDS
from kinoit.stages.merge_parts import PART_FIELDS
from kinoit.store import open_store


def renditions(
    work: Path, seconds: float, settings: Settings, preset: str = "ultrafast"
) -> tuple[Any, Path, Any]:
    """The source, its one-task split and every segment's renditions and thumbnail
    (kept between runs under ``work``); ``preset`` "ladder" keeps the ladder's own."""
    src = make_source(SOURCES["1080p"], seconds, work)
    info = probe(src, settings=settings)
    if (work / "whole" / "segments.json").exists():
        whole = load_split(work / "whole")
    else:
        whole = split_video(src, work / "whole", seconds=1, mode="aligned", settings=settings,
                            signatures=True, info=info)  # fmt: skip
    ladder = load_ladder("default").to_json()
    if preset != "ladder":
        for rung in ladder["rungs"]:
            rung["preset"] = preset
    rendered = work / ("renditions" if preset == "ultrafast" else f"renditions-{preset}")
    if not (rendered / "done").exists():
        for seg in whole.segments:
            transcode_segment(
                seg.path, ladder, rendered, fps=info.fps, start_frame=seg.start_frame,
                frames=seg.frames, size=(info.width, info.height), threads=1, settings=settings,
            )  # fmt: skip
            thumb = work / "thumbs" / f"{seg.path.stem}.jpg"
            thumb.parent.mkdir(exist_ok=True)
            if not thumb.exists():
                make_thumbnail(seg.path, thumb, settings=settings)
        (rendered / "done").write_text("")
    return info, rendered, whole


def plan_of(
    store: Any, work: Path, rendered: Path, whole: Any, count: int, info: Any, ladder: Any
) -> str:
    """The merge plan of the first ``count`` segments (their renditions, thumbnails and
    the audio of those seconds stored first: not measured)."""
    segments: list[Segment] = list(whole.segments[:count])
    audio = whole.audio
    if audio is not None and count < len(whole.segments):
        audio = work / f"audio-{count}.m4a"
        seconds = float(Fraction(sum(s.frames for s in segments)) / info.fps)
        run_ffmpeg(["ffmpeg", "-v", "error", "-y", "-i", str(whole.audio), "-t", str(seconds),
                    "-c", "copy", str(audio)])  # fmt: skip
    rungs = sorted(p.name for p in rendered.iterdir() if p.is_dir())
    entries = []
    for seg in segments:
        files = {r: next((rendered / r).glob(f"{seg.path.stem}.*")) for r in rungs}
        verdict = {r: {"verdict": "match", "frames": seg.frames} for r in rungs}
        entries.append(
            build_segment_entry(
                index=seg.index, start_frame=seg.start_frame,
                end_frame=seg.start_frame + seg.frames, segment=store.add(seg.path, pin=False),
                renditions={r: store.add(path, pin=False) for r, path in files.items()},
                thumbnail=store.add(work / "thumbs" / f"{seg.path.stem}.jpg", pin=False),
                checksum={"algorithm": "bench", "rungs": verdict}, attempts=1, link=link,
            )
        )  # fmt: skip
    source = {"fps": f"{info.fps.numerator}/{info.fps.denominator}", "frames": info.frames}
    return str(write_merge_plan(
        store, entries, source=source, audio=store.add(audio, pin=False) if audio else None,
        segment_seconds="1", ladder=ladder,
    ))  # fmt: skip


# --sync: flush the page cache's dirty pages before each timed task.
SYNC_FIRST = False


def timed(body: dict[str, Any], settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """The merge stage's ``run`` of one request: its result and its cost."""
    request = merge.parse_request(json.loads(json.dumps(body)))
    if SYNC_FIRST:
        os.sync()  # no dirty pages of the last task left to write back during this one
    cpu, wall = cpu_now(), time.monotonic()
    result = merge.run(request, settings)
    cost = {
        "cpu_s": round(cpu_now() - cpu, 3),
        "wall_s": round(time.monotonic() - wall, 3),
        "load": round(os.getloadavg()[0], 1),
    }
    return json.loads(json.dumps(result)), cost


class Steps:
    """Exclusive CPU and wall seconds of each named step of a task: a step's nested
    steps are subtracted from it, so the steps add up to the task."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = {}
        self._stack: list[list[float]] = []

    def wrap(self, name: Callable[..., str] | str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed_step(*args: Any, **kwargs: Any) -> Any:
            label = name(*args, **kwargs) if callable(name) else name
            cpu, wall = cpu_now(), time.monotonic()
            self._stack.append([0.0, 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                inner = self._stack.pop()
                cpu, wall = cpu_now() - cpu, time.monotonic() - wall
                total = self.totals.setdefault(label, [0.0, 0.0, 0])
                total[0] += cpu - inner[0]
                total[1] += wall - inner[1]
                total[2] += 1
                if self._stack:
                    self._stack[-1][0] += cpu
                    self._stack[-1][1] += wall

        return timed_step


@contextlib.contextmanager
def stepped(steps: Steps) -> Iterator[None]:
    """The merge rung task's parts wrapped in ``steps`` while the block runs."""
    from kinoit.media import ffmpeg
    from kinoit.media import merge as media_merge
    from kinoit.stages import merge_parts
    from kinoit.store import directory, embedded

    targets: list[tuple[Any, str, Callable[..., str] | str]] = [
        (merge_parts, "read_plan", "read plan"),
        (merge_parts, "fetch", "fetch from the store (per file)"),
        (media_merge, "probe_facts", "probe facts"),
        (ffmpeg, "run", lambda *a, **k: f"ffmpeg: {k.get('what', '')} (and threads feeding it)"),
        (media_merge, "count_packets", "count packets (PyAV demux)"),
        (media_merge, "merge_rung", "merge_rung (rest)"),
        (embedded.EmbeddedStore, "add", lambda _s, src, **k: "store add: "
         + ("mp4" if str(getattr(src, "name", src)).endswith(".mp4") else "other")),
        (media_merge, "link_or_copy", "hls: link segment"),
        (media_merge, "package_rung_hls", "hls: package (rest)"),
        (merge_parts, "fetched_files", "stat fetched files"),
        (merge_parts, "add_files", "add hls files (rest)"),
        (merge_parts, "store_directory", "hls listing (dag_put)"),
        (directory, "put_tree_entry", "hls directory (UnixFS)"),
    ]  # fmt: skip
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in targets]
    try:
        for owner, attr, name in targets:
            setattr(owner, attr, steps.wrap(name, getattr(owner, attr)))
        yield
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)


def step_breakdown(plan: str, rung: str, settings: Settings, video: float) -> dict[str, Any]:
    """One rung task's run, its CPU and wall split by step."""
    steps = Steps()
    with stepped(steps):
        _, cost = timed({"plan": plan, "rung": rung}, settings)
    ranked = sorted(steps.totals.items(), key=lambda kv: -kv[1][0])
    parts = {k: {"cpu_s": round(c, 3), "wall_s": round(w, 3), "calls": int(n),
                 "cpu_per_video_s": round(c / video, 5)} for k, (c, w, n) in ranked}  # fmt: skip
    rest_cpu = cost["cpu_s"] - sum(c for c, _, _ in steps.totals.values())
    rest_wall = cost["wall_s"] - sum(w for _, w, _ in steps.totals.values())
    parts["the rest (Python in run_rung)"] = {"cpu_s": round(rest_cpu, 3),
                                              "wall_s": round(rest_wall, 3)}  # fmt: skip
    return {"task": cost, "steps": parts}


def fresh_store(home: Path) -> tuple[Settings, Any]:
    """Settings for an empty ``KINOIT_HOME`` (removed first) and its store."""
    shutil.rmtree(home, ignore_errors=True)
    settings = load_settings(
        {"KINOIT_HOME": str(home), "KINOIT_SCRATCH_DIR": str(home / "scratch")}
    )
    return settings, open_store(settings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="source length (60)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/scale/bench-merge"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=2, help="passes, alternating the order")
    parser.add_argument("--preset", default="ultrafast",
                        help="the renditions' x264 preset; 'ladder': the ladder's own")  # fmt: skip
    parser.add_argument("--steps", metavar="RUNG", default=None,
                        help="only RUNG's task (every segment) by step, REPEAT times")  # fmt: skip
    parser.add_argument("--sync", action="store_true",
                        help="sync before each timed task (no write-back of the last)")  # fmt: skip
    args = parser.parse_args()
    global SYNC_FIRST
    SYNC_FIRST = args.sync
    args.work.mkdir(parents=True, exist_ok=True)
    base = load_settings()
    info, rendered, whole = renditions(args.work, args.seconds, base, args.preset)
    if args.steps:
        return steps_only(args, info, rendered, whole)
    ladder = load_ladder("default").to_json()
    out: dict[str, Any] = {"video_seconds": float(Fraction(info.frames) / info.fps)}
    rungs = sorted(p.name for p in rendered.iterdir() if p.is_dir())
    counts = sorted({min(12, len(whole.segments)), len(whole.segments)})
    # Untimed, on 2 segments: the imports and first opens, so no timed task pays them.
    warm, _ = fresh_store(args.work / "home-warm")
    warm_plan = plan_of(open_store(warm), args.work, rendered, whole, 2, info, ladder)
    for body in ({"plan": warm_plan}, {"plan": warm_plan, "rung": rungs[0]}):
        timed(body, warm)
    for rep in range(args.repeat):  # the one-task merge first, then the parts first, ...
        for count in counts:
            # The one-task merge and the parts each in a fresh store of their own: every
            # MP4's blocks are new to the store that adds them, as in a job.
            one, one_store = fresh_store(args.work / f"home-{count}-one")
            settings, store = fresh_store(args.work / f"home-{count}-parts")
            plan = plan_of(store, args.work, rendered, whole, count, info, ladder)
            if plan_of(one_store, args.work, rendered, whole, count, info, ladder) != plan:
                raise SystemExit("the two stores hold different plans")
            video = float(Fraction(sum(s.frames for s in whole.segments[:count])) / info.fps)
            row: dict[str, Any] = {"video_s": round(video, 3)}
            if rep % 2 == 0:
                one_task, row["one_task"] = timed({"plan": plan}, one)
            results = {}
            for rung in rungs:
                results[rung], row[f"rung {rung}"] = timed({"plan": plan, "rung": rung}, settings)
            media, row["media"] = timed({"plan": plan, "part": "media"}, settings)
            parts = {r: {k: res[k] for k in PART_FIELDS} for r, res in results.items()}
            final_body = {
                "plan": plan,
                "rungs": parts,
                "media": {k: media[k] for k in MEDIA_FIELDS},
            }
            final, row["final"] = timed(final_body, settings)
            if rep % 2 == 1:
                one_task, row["one_task"] = timed({"plan": plan}, one)
            row["final_equals_one_task"] = final == one_task
            out[f"pass {rep}: {count} segments"] = row
            print(f"pass {rep}:", count, "segments", json.dumps(row), flush=True)
        short, full = (out[f"pass {rep}: {count} segments"] for count in counts)
        span = full["video_s"] - short["video_s"]
        slopes = {}
        for task in (t for t in full if isinstance(full[t], dict)):
            per_s = (full[task]["cpu_s"] - short[task]["cpu_s"]) / span
            wall = (full[task]["wall_s"] - short[task]["wall_s"]) / span
            slopes[task] = {
                "cpu_per_video_s": round(per_s, 4),
                "fixed_cpu_s": round(short[task]["cpu_s"] - per_s * short["video_s"], 3),
                "wall_per_video_s": round(wall, 4),
            }
        out[f"pass {rep}: slopes"] = slopes
        print(f"pass {rep}: slopes", json.dumps(slopes, indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


def steps_only(args: argparse.Namespace, info: Any, rendered: Path, whole: Any) -> int:
    """``--steps RUNG``: that rung's task on every segment, by step, ``--repeat`` times,
    each in a fresh store (the MP4's blocks are new to it, as in a job), after one
    untimed task on 2 segments (imports, first opens)."""
    ladder = load_ladder("default").to_json()
    video = float(Fraction(sum(s.frames for s in whole.segments)) / info.fps)
    sizes = sum(p.stat().st_size for p in (rendered / args.steps).iterdir())
    out: dict[str, Any] = {"video_seconds": video, "rendition_bytes": sizes}
    for rep in range(-1, args.repeat):
        settings, store = fresh_store(args.work / "home-steps")
        count = 2 if rep < 0 else len(whole.segments)
        plan = plan_of(store, args.work, rendered, whole, count, info, ladder)
        if rep < 0:
            timed({"plan": plan, "rung": args.steps}, settings)
            continue
        out[f"pass {rep}"] = step_breakdown(plan, args.steps, settings, video)
        print(f"pass {rep}:", json.dumps(out[f"pass {rep}"], indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
