"""The serial parts of a job on a longer source, for the scaling projection
(docs/benchmarks.md, "Scaling projection"; issue 9 item 4).

On SECONDS of the 1080p source of bench_pipeline_cost (a grainy pan, x264 with its
own GOP and B-frames, 5.1 AAC), each measured as CPU seconds (this process and the
ffmpeg/ffprobe runs it waits for, getrusage) and wall seconds, per second of video:

- plan: what the first split task did for a split in ranges (probe, the keyframe
  scan, plan_ranges: two reads of the source), and ``plan_one_read`` what it does now
  (``probe_and_scan``: one ffprobe for both), alternated three times with ``plan``;
- whole: the split as one task (``split_video`` aligned, lossless with signatures);
- ranges: every range task of a split in ranges of RANGE seconds (``split_range``),
  one after another, each checked byte for byte against the whole split's segments;
- audio: the audio task (the AAC encode of the whole source and its preview cut);
- merge: what the merge stage runs (:func:`stage_merge`) over renditions of the
  default ladder's rungs (made here with x264 ultrafast, which gives more bytes for
  merge to copy than the default presets: an upper bound), MP4s, HLS, the
  storyboard, the outputs added to an embedded store.

    .venv/bin/python bench/bench_split_ranges.py --seconds 60 --range 20
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline_cost import SOURCES, make_source, run_ffmpeg
from kinoit.config import load_settings
from kinoit.media.keyframes import probe_and_scan, scan_keyframes
from kinoit.media.ladder import load_ladder
from kinoit.media.merge import audio_segment_seconds, cut_audio_hls
from kinoit.media.plan import plan_segments
from kinoit.media.probe import probe
from kinoit.media.ranges import plan_ranges, split_range, write_audio
from kinoit.media.split import load_split, split_video
from kinoit.media.thumbnail import make_thumbnail
from kinoit.media.transcode import transcode_segment


def cpu_now() -> float:
    """CPU seconds of this process and its waited-for children so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@contextmanager
def measured(into: dict[str, Any], name: str, video_seconds: float) -> Iterator[None]:
    cpu, wall = cpu_now(), time.monotonic()
    yield
    cpu, wall = cpu_now() - cpu, time.monotonic() - wall
    into[name] = {
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "cpu_per_video_s": round(cpu / video_seconds, 4),
        "wall_per_video_s": round(wall / video_seconds, 4),
        "load": round(os.getloadavg()[0], 1),
    }
    print(name, into[name], flush=True)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def stage_merge(
    renditions: dict[str, list[Path]], audio: Path | None, frames: list[int], thumbs: list[Path],
    out: Path, fps: Fraction, settings: Any,
) -> tuple[float, float]:  # fmt: skip
    """What the merge stage runs (stages/merge.py) once the renditions are fetched:
    the rungs' facts, each rung concatenated with the audio (packets counted, not
    decoded: the checksum stage decoded them), the HLS packaging, the storyboard, the
    MP4s and the HLS files added to a store (the HLS segments, links to the fetched
    renditions, by their known CIDs)."""
    from kinoit.media.merge import merge_rung, package_hls, probe_facts
    from kinoit.media.thumbnail import make_storyboard
    from kinoit.stages.merge import add_files, fetched_files
    from kinoit.store import EmbeddedStore

    store = EmbeddedStore(out / "store", durable=False)
    cids = {
        rung: [store.add(p, pin=False) for p in paths] for rung, paths in renditions.items()
    }  # fetched from the store in the stage: their CIDs are known, not measured here
    cpu, wall = cpu_now(), time.monotonic()
    facts = {rung: probe_facts(paths[0], settings) for rung, paths in renditions.items()}
    for rung, paths in renditions.items():
        merged = merge_rung(
            paths, audio, out / f"{rung}.mp4", fps=fps, segment_frames=frames,
            facts=facts[rung], decode_check=False, settings=settings,
        )  # fmt: skip
        store.add(merged.path, pin=False)
    package_hls(
        renditions, out / "hls", fps=fps, segment_frames=frames, audio_path=audio,
        facts=facts, settings=settings,
    )  # fmt: skip
    add_files(store, out / "hls", fetched_files(renditions, cids))
    make_storyboard(
        thumbs, out / "storyboard", durations=[float(Fraction(n) / fps) for n in frames]
    )
    return cpu_now() - cpu, time.monotonic() - wall


def segment_stages(whole: Any, info: Any, work: Path, count: int) -> dict[str, Any]:
    """The per-segment stages as the functions run them (transcode with the default
    ladder, thumbnail, checksum; their ``run`` on an embedded store), on ``count``
    segments from the middle of the source: CPU s per second of video."""
    from kinoit.config import load_settings
    from kinoit.stages import checksum, thumbnail, transcode
    from kinoit.store import open_store

    settings = load_settings({"KINOIT_HOME": str(work / "stage-home")})
    store = open_store(settings)
    middle = len(whole.segments) // 2
    chosen = whole.segments[middle : middle + count]
    fps = f"{info.fps.numerator}/{info.fps.denominator}"
    ladder = load_ladder("default").to_json()
    spent = {"transcode": 0.0, "thumbnail": 0.0, "checksum": 0.0}
    for seg in chosen:
        cid = store.add(seg.path, pin=False)
        sig = store.add(seg.signature, pin=False)
        body = {"segment": cid, "ladder": ladder, "start_frame": seg.start_frame, "fps": fps,
                "frames": seg.frames, "width": info.width, "height": info.height,
                "signature": sig}  # fmt: skip
        cpu = cpu_now()
        result = transcode.run(transcode.parse_request(body), settings)
        spent["transcode"] += cpu_now() - cpu
        cpu = cpu_now()
        thumbnail.run(thumbnail.parse_request({"segment": cid, "frames": seg.frames, "fps": fps}),
                      settings)  # fmt: skip
        spent["thumbnail"] += cpu_now() - cpu
        cpu = cpu_now()
        checksum.run(checksum.parse_request({"segment": cid, "renditions": result["renditions"],
                                             "signature": sig}), settings)  # fmt: skip
        spent["checksum"] += cpu_now() - cpu
    video = float(Fraction(sum(s.frames for s in chosen)) / info.fps)
    per = {k: round(v / video, 3) for k, v in spent.items()}
    return {**per, "all": round(sum(spent.values()) / video, 3), "video_s": video,
            "load": round(os.getloadavg()[0], 1)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="source length (60)")
    parser.add_argument("--range", type=float, default=20.0, help="range seconds (20)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/kinoit-bench-ranges"))
    parser.add_argument("--parts", default="plan,whole,ranges,audio,merge")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    settings = load_settings()
    args.work.mkdir(parents=True, exist_ok=True)
    src = make_source(SOURCES["1080p"], args.seconds, args.work)
    out: dict[str, Any] = {"source": str(src), "range_seconds": args.range}
    info = probe(src, settings=settings)
    video = float(Fraction(info.frames) / info.fps)
    out["video_seconds"] = video
    seconds = Fraction(1)
    plan = plan_segments(info.frames, info.fps, seconds)

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        with measured(out, name, video):
            return fn()

    ranges = timed(
        "plan",
        lambda: plan_ranges(
            plan_segments(probe(src, settings=settings).frames, info.fps, seconds),
            scan_keyframes(src, settings), info.fps, round(args.range),
        ),
    )  # fmt: skip

    def one_read() -> Any:  # what the first split task runs now: probe_and_scan
        probed, scan = probe_and_scan(src, settings)
        plan = plan_segments(probed.frames, info.fps, seconds)
        return plan_ranges(plan, scan, info.fps, round(args.range))

    assert timed("plan_one_read", one_read) == ranges
    for n in range(2, 4 if "plan" in parts else 2):  # alternated: the load changes
        timed(f"plan_{n}", lambda: plan_ranges(
            plan_segments(probe(src, settings=settings).frames, info.fps, seconds),
            scan_keyframes(src, settings), info.fps, round(args.range),
        ))  # fmt: skip
        timed(f"plan_one_read_{n}", one_read)
    out["ranges"] = [r.to_json() for r in ranges]
    whole = None
    if "whole" not in parts and (args.work / "whole" / "segments.json").exists():
        whole = load_split(args.work / "whole")  # a previous run's, for ranges or merge
    elif "ranges" in parts or "merge" in parts or "whole" in parts:
        whole = timed(
            "whole",
            lambda: split_video(src, args.work / "whole", seconds=1, mode="aligned",
                                settings=settings, signatures=True, info=info),
        )  # fmt: skip
    if "ranges" in parts and whole is not None:
        same = True
        for number, rng in enumerate(ranges):
            part = float(Fraction(rng.frames) / info.fps)
            cpu, wall = cpu_now(), time.monotonic()
            segments = split_range(
                src, args.work / f"range{number}", rng, fps=info.fps, seconds=seconds,
                pix_fmt=info.pix_fmt, settings=settings,
            )  # fmt: skip
            cpu, wall = cpu_now() - cpu, time.monotonic() - wall
            for mine in segments:
                theirs = whole.segments[mine.index]
                same = same and md5(mine.path) == md5(theirs.path)
            out[f"range{number}"] = {
                "first": rng.first, "last": rng.last, "video_s": round(part, 3),
                "decoded_before": rng.start_frame - rng.key_frame,
                "cpu_per_video_s": round(cpu / part, 4), "wall_per_video_s": round(wall / part, 4),
                "load": round(os.getloadavg()[0], 1),
            }  # fmt: skip
            print(f"range{number}", out[f"range{number}"], flush=True)
        out["ranges_identical_to_whole"] = same
        print("identical to the whole split:", same)
    if "audio" in parts:

        def audio() -> None:
            path = write_audio(src, args.work / "audio.m4a", info, info.frames, settings)
            assert path is not None
            step = audio_segment_seconds(info.fps, [p.frames for p in plan])
            cut_audio_hls(path, args.work / "audio-hls", step, 0, settings)

        timed("audio", audio)
    if "merge" in parts and whole is not None:
        ladder = load_ladder("default").to_json()
        for rung in ladder["rungs"]:
            rung["preset"] = "ultrafast"
        rendered = args.work / "renditions"
        thumbs = [args.work / "thumbs" / f"{seg.path.stem}.jpg" for seg in whole.segments]
        if not (rendered / "done").exists():  # kept between runs: --parts merge again
            with measured(out, "renditions_made_for_merge", video):
                for seg, thumb in zip(whole.segments, thumbs, strict=True):
                    transcode_segment(
                        seg.path, ladder, rendered, fps=info.fps, start_frame=seg.start_frame,
                        frames=seg.frames, size=(info.width, info.height), threads=1,
                        settings=settings,
                    )  # fmt: skip
                    thumb.parent.mkdir(exist_ok=True)
                    make_thumbnail(seg.path, thumb, settings=settings)
            (rendered / "done").write_text("")
        from kinoit.media.merge_job import rendition_segments

        stems = [s.path.stem for s in whole.segments]
        for count in sorted({min(12, len(stems)), len(stems)}):
            renditions = rendition_segments(rendered, stems[:count])
            audio_path = whole.audio
            if audio_path is not None and count < len(stems):  # the audio of those seconds
                audio_path = args.work / f"audio-{count}.m4a"
                run_ffmpeg(["ffmpeg", "-v", "error", "-y", "-i", str(whole.audio), "-t",
                            str(float(Fraction(12 * plan[0].frames) / info.fps)), "-c", "copy",
                            str(audio_path)])  # fmt: skip
            merged = args.work / f"merged-{count}"
            shutil.rmtree(merged, ignore_errors=True)
            cpu, wall = stage_merge(
                renditions, audio_path, [s.frames for s in whole.segments[:count]], thumbs[:count],
                merged, info.fps, settings,
            )  # fmt: skip
            out[f"merge_{count}_segments"] = {
                "cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
                "load": round(os.getloadavg()[0], 1),
            }  # fmt: skip
            print(f"merge_{count}_segments", out[f"merge_{count}_segments"], flush=True)
        if len(stems) > 12:
            short, full = out["merge_12_segments"], out[f"merge_{len(stems)}_segments"]
            video_s = float(Fraction(sum(s.frames for s in whole.segments[12:])) / info.fps)
            out["merge_cpu_per_video_s"] = round((full["cpu_s"] - short["cpu_s"]) / video_s, 4)
            print("merge CPU s per second of video (slope)", out["merge_cpu_per_video_s"])
    if "segments" in parts and whole is not None:
        out["segment_stages"] = segment_stages(whole, info, args.work, count=4)
        print("segment_stages", out["segment_stages"], flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
