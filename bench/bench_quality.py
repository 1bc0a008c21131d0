"""Quality per bit: what kinoit's closed, fixed GOPs of one segment cost, by segment length.

For each source and each ``segment_seconds`` (1, 2, 4 by default) this runs
`kinoit run SOURCE --segment-seconds S --out DIR` as a user runs it, and per rung
of the default ladder measures the video stream's bytes (the sum of its packet
sizes: the MP4s also carry the audio, which is not what is compared) and its
PSNR against the source scaled to the rung's size with the same scaler
(ffmpeg's ``psnr`` filter, the Y/U/V average over all frames). Against it, in the
same run, ONE plain ffmpeg encodes every rung from one decode of the source
with the same encoder settings and one encoder thread per rung, as the
transcode stage does:

- ``own GOP``: the encoder's own GOP (x264's default 250 frames, scene cuts):
  what a plain encode of the file costs;
- ``same GOP``: kinoit's GOP options (one closed GOP of ``S x fps`` frames, no
  scene cuts), continuous: what the segment length alone costs, apart from
  encoding each segment in its own encoder;
- ``same GOP, CRF +d``: the same at a CRF ``d`` higher (``--crf-step``), so that
  the continuous encode's PSNR at kinoit's bytes can be interpolated: the
  quality that encoding each segment separately loses at equal bytes;
- ``own GOP, CRF +d``: likewise, so that the bytes the plain encode needs for
  kinoit's PSNR can be interpolated (linear in log bytes): what kinoit's output
  costs in bytes at equal quality, everything included.

Left out: the audio (both keep it as it is), the thumbnails, and CPU (see
bench_pipeline_cost.py). Sources are bench_pipeline_cost's generated camera-like
clips (a grainy pan with a cut every 6 s).

    .venv/bin/python bench/bench_quality.py [--sources 720p,1080p] [--seconds 12]
        [--segment-seconds 1,2,4] [--crf-step 0.7] [--work DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from bench_pipeline_cost import (
    SOURCES,
    kinoit_argv,
    make_source,
    plain_encoder_args,
    rung_filters,
    table,
    video_bytes,
)
from kinoit.config import load_settings
from kinoit.media import load_ladder, probe
from kinoit.media.ladder import Ladder, encoder_args

PSNR_AVERAGE = re.compile(r"PSNR .*average:([0-9.]+|inf)")


def psnr(encoded: Path, source: Path, width: int, height: int, pix_fmt: str) -> float:
    """PSNR (Y/U/V average) of ``encoded`` against ``source`` scaled as kinoit scales it."""
    graph = (
        f"[1:v:0]scale={width}:{height}:flags=bicubic,setsar=1,format={pix_fmt}[ref];"
        "[0:v:0]setsar=1[enc];[enc][ref]psnr"
    )
    done = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-i", str(encoded), "-i", str(source),
         "-lavfi", graph, "-f", "null", "-"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    found = PSNR_AVERAGE.findall(done.stderr)
    if not found:
        raise RuntimeError(f"no PSNR for {encoded}: {done.stderr[-500:]}")
    return float(found[-1])


def baseline(src: Path, out: Path, ladder: Ladder, info: Any, gop: int | None) -> None:
    """ONE ffmpeg, one decode, every rung; ``gop=None`` keeps the encoder's own GOP."""
    n = len(ladder.rungs)
    graph = ["[0:v:0]split=" + str(n) + "".join(f"[s{i}]" for i in range(n))]
    graph += rung_filters(ladder, info)
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(src)]
    argv += ["-filter_complex", ";".join(graph)]
    for i, rung in enumerate(ladder.rungs):
        args = encoder_args(rung, gop or 1)
        args = plain_encoder_args(args) if gop is None else args
        argv += ["-map", f"[o{i}]", *args, "-threads", "1", "-an"]
        argv += ["-movflags", "+faststart", str(out / f"{rung.name}.mp4")]
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(argv, check=True, timeout=3600)


def kinoit_run(src: Path, out: Path, home: Path, seconds: str) -> None:
    """`kinoit run` as a user types it, in a fresh KINOIT_HOME, no KINOIT_* inherited."""
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINOIT_")}
    env["KINOIT_HOME"] = str(home)
    argv = [*kinoit_argv(), "run", str(src), "--out", str(out), "--segment-seconds", seconds]
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=3600)


def interpolate(x: float, points: list[tuple[float, float]]) -> float:
    """Linear inter/extrapolation of y at x through the two (x, y) points (pure)."""
    (x0, y0), (x1, y1) = sorted(points)
    return y0 + (x - x0) * (y1 - y0) / (x1 - x0)


def measure(folder: Path, src: Path, ladder: Ladder, info: Any) -> dict[str, list[float]]:
    result = {}
    for rung in ladder.rungs:
        path = folder / f"{rung.name}.mp4"
        w, h = rung.output_size(info.display_width, info.display_height)
        result[rung.name] = [video_bytes(path), psnr(path, src, w, h, rung.pix_fmt)]
    return result


def bench_source(kind: str, seconds: float, lengths: list[str], step: float, work: Path) -> Any:
    src = make_source(SOURCES[kind], seconds, work)
    info = probe(src, settings=load_settings({}))
    ladder = load_ladder("default").for_source(info.display_width, info.display_height)
    raised = Ladder(ladder.name, tuple(replace(r, crf=(r.crf or 0) + step) for r in ladder.rungs))
    fps = info.fps
    print(f"### {kind}: {info.width}x{info.height} {fps} fps, {seconds:g} s", flush=True)
    own, own_up = work / f"q-{kind}-own", work / f"q-{kind}-own-up"
    baseline(src, own, ladder, info, None)
    baseline(src, own_up, raised, info, None)
    result: dict[str, Any] = {
        "source": kind, "own": measure(own, src, ladder, info),
        "own_up": measure(own_up, src, raised, info), "by": {},
    }  # fmt: skip
    for length in lengths:
        gop = int(Fraction(length) * fps)
        same, same_up = work / f"q-{kind}-same{length}", work / f"q-{kind}-same{length}-up"
        baseline(src, same, ladder, info, gop)
        baseline(src, same_up, raised, info, gop)
        kin = work / f"q-{kind}-kinoit{length}"
        kinoit_run(src, kin, work / f"q-{kind}-home{length}", length)
        result["by"][length] = {
            "gop": gop,
            "same": measure(same, src, ladder, info),
            "same_up": measure(same_up, src, raised, info),
            "kinoit": measure(kin, src, ladder, info),
        }
        print(f"  segment_seconds {length} done", flush=True)
    return result


def report(result: dict[str, Any], step: float) -> str:
    rows = []
    for length, by in result["by"].items():
        for rung, (own_b, own_p) in result["own"].items():
            same_b, same_p = by["same"][rung]
            kin_b, kin_p = by["kinoit"][rung]
            at_equal = interpolate(kin_b, [(same_b, same_p), tuple(by["same_up"][rung])])
            up_b, up_p = result["own_up"][rung]
            own_bytes = math.exp(
                interpolate(kin_p, [(own_p, math.log(own_b)), (up_p, math.log(up_b))])
            )
            rows.append([
                length, rung, f"{own_b / 1000:.0f}", f"{own_p:.2f}",
                f"{same_b / 1000:.0f} ({same_b / own_b:.2f})", f"{same_p:.2f}",
                f"{kin_b / 1000:.0f} ({kin_b / own_b:.2f})", f"{kin_p:.2f}",
                f"{kin_p - at_equal:+.2f}", f"{kin_b / own_bytes:.2f}",
            ])  # fmt: skip
    header = [
        "segment s", "rung", "own GOP kB", "PSNR", "same GOP kB (x own)", "PSNR",
        "kinoit kB (x own)", "PSNR", "kinoit vs same GOP at equal bytes, dB",
        "kinoit bytes vs own GOP at equal PSNR",
    ]  # fmt: skip
    return table(header, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", default="720p,1080p", help="comma list of kinds")
    parser.add_argument("--seconds", type=float, default=12.0, help="source length (default 12)")
    parser.add_argument("--segment-seconds", default="1,2,4", help="comma list of lengths")
    parser.add_argument("--crf-step", type=float, default=0.7, help="CRF step for equal bytes")
    parser.add_argument("--work", type=Path, default=None, help="work folder (kept)")
    parser.add_argument("--json", type=Path, default=None, help="write the raw results here")
    args = parser.parse_args(argv)
    work = args.work or Path(os.environ.get("TMPDIR", "/tmp")) / "kinoit-bench-quality"
    work.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {os.getloadavg()}", flush=True)
    lengths = [s for s in args.segment_seconds.split(",") if s]
    results = []
    for kind in [k for k in args.sources.split(",") if k]:
        result = bench_source(kind, args.seconds, lengths, args.crf_step, work)
        results.append(result)
        print(report(result, args.crf_step) + "\n", flush=True)
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
