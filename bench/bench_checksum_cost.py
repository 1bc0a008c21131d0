"""What verification costs against what it verifies: the checksum stage's CPU next to
the transcode stage's, per segment, in the same run, on the default ladder.

For a 720p and a 1080p source (camera-like: a panned fractal with grain, H.264 with
B-frames at x264's default GOP): split once (lossless, with the segment signatures
the pipeline's split writes), then per segment, one after the other, the transcode
stage's media work (every rung of the default ladder, one ffmpeg) and the checksum
stage's (every rendition decoded in this process by PyAV onto the grid, scored
against the split's signature). CPU is getrusage: this process (the in-process
decode, numpy scoring) plus every ffmpeg it waited for. Baselines in the same
run: the same checksum with the renditions decoded by one ffmpeg command for
all (the design before the in-process decode), the decode alone (one ffmpeg,
frames thrown away), the seed's design (the segment and each rendition decoded
by its own ffmpeg, hashes only), and what writing the signatures adds to split
(split with and without them).

Left out, as in the pipeline they are the same for both: fetching from the store,
the HTTP hop of each stage call, Python start-up of a worker, and ``import av``
(paid once per worker process, which serves many tasks: printed apart).

    .venv/bin/python bench/bench_checksum_cost.py [--seconds 8] [--sizes 1280x720,1920x1080]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kinoit.config import load_settings
from kinoit.media import load_ladder, split_video, transcode_segment
from kinoit.media.checksum import checksums, compare_signatures, video_signatures
from kinoit.media.signature import Signature


@dataclass
class Cost:
    cpu: float = 0.0
    wall: float = 0.0
    children: float = 0.0  # of cpu: the ffmpeg processes
    decode: float = 0.0  # of cpu: decoding onto the grid (the rest is scoring)


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


@contextmanager
def measure(cost: Cost) -> Iterator[None]:
    (own0, kids0), wall0 = _cpu(), time.perf_counter()
    yield
    own1, kids1 = _cpu()
    cost.cpu += own1 - own0 + kids1 - kids0
    cost.children += kids1 - kids0
    cost.wall += time.perf_counter() - wall0


def decode_floor(paths: list[Path]) -> None:
    """What decoding the renditions alone costs: one ffmpeg, one thread per decoder,
    frames thrown away (no scaling, no output)."""
    argv = ["ffmpeg", "-v", "error", "-nostdin"]
    for path in paths:
        argv += ["-threads", "1", "-i", str(path)]
    for i in range(len(paths)):
        argv += ["-map", f"{i}:v:0", "-f", "null", "-"]
    subprocess.run(argv, check=True, timeout=600)


def make_source(path: Path, size: str, seconds: float) -> Path:
    w, h = size.split("x")
    graph = (
        f"mandelbrot=size={int(w) * 2}x{int(h) * 2}:rate=25:maxiter=200,trim=end_frame=1,"
        f"loop=-1:1:0,crop={w}:{h}:x='mod(t*140,{w})':y='mod(t*40,{h})',noise=alls=8:allf=t,"
        "format=yuv420p"
    )
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", graph, "-t", str(seconds),
         "-c:v", "libx264", "-preset", "fast", "-crf", "18", str(path)],
        check=True, timeout=1200,
    )  # fmt: skip
    return path


def run_size(size: str, seconds: float, work: Path) -> dict[str, float]:
    settings = load_settings()
    src = make_source(work / f"src-{size}.mp4", size, seconds)
    split_plain, split_sig = Cost(), Cost()
    with measure(split_plain):
        split_video(src, work / f"plain-{size}", mode="lossless", settings=settings)
    with measure(split_sig):
        split = split_video(
            src, work / f"sig-{size}", mode="lossless", settings=settings, signatures=True
        )
    ladder = load_ladder("default")
    transcode, check, cli, seed, floor = Cost(), Cost(), Cost(), Cost(), Cost()
    for seg in split.segments:
        out_dir = work / f"r-{size}-{seg.index}"
        with measure(transcode):
            out = transcode_segment(
                seg.path, ladder, out_dir, fps=split.fps, start_frame=seg.start_frame,
                frames=seg.frames, size=(split.width, split.height), settings=settings,
            )  # fmt: skip
        paths = [r.path for r in out.values()]
        with measure(check):
            assert seg.signature is not None
            ref = Signature.from_bytes(seg.signature.read_bytes())
            decoded = Cost()
            with measure(decoded):
                sigs = video_signatures(paths, settings, work)
            check.decode += decoded.cpu
            verdicts = [compare_signatures(ref, s).verdict for s in sigs]
        assert all(v == "match" for v in verdicts), verdicts
        with measure(cli):  # the same with the command line's decode, one ffmpeg for all
            ref = Signature.from_bytes(seg.signature.read_bytes())
            sigs_cli = video_signatures(paths, settings, work, in_process=False)
            verdicts = [compare_signatures(ref, s).verdict for s in sigs_cli]
        assert all(v == "match" for v in verdicts), verdicts
        with measure(floor):
            decode_floor(paths)
        with measure(seed):  # the seed's shape: one ffmpeg decode per file, hashes only
            checksums(video_signatures([seg.path], settings, work, in_process=False)[0])
            for r in out.values():
                checksums(video_signatures([r.path], settings, work, in_process=False)[0])
    return {
        "segments": len(split.segments),
        "rungs": len(out),
        "transcode": transcode.cpu,
        "checksum": check.cpu,
        "checksum_decode": check.decode,
        "cli": cli.cpu,
        "floor": floor.cpu,
        "seed": seed.cpu,
        "split": split_plain.cpu,
        "split_sig": split_sig.cpu,
    }


def import_av() -> float:
    """CPU s of ``import av`` (and the numpy it loads), once per process: before the runs."""
    cost = Cost()
    with measure(cost):
        import av
        import av.filter  # noqa: F401
    return cost.cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--sizes", default="1280x720,1920x1080")
    args = parser.parse_args(argv)
    once = import_av()
    rows = []
    with tempfile.TemporaryDirectory(prefix="kinoit-bench-ck-") as tmp:
        for size in args.sizes.split(","):
            r = run_size(size, args.seconds, Path(tmp))
            t = r["transcode"]
            rows.append(
                f"| {size} | {r['segments']} x {r['rungs']} | {t:.1f} | "
                f"{r['checksum']:.1f} | **{r['checksum'] / t:.0%}** | "
                f"{r['checksum_decode']:.1f} + {r['checksum'] - r['checksum_decode']:.1f} | "
                f"{r['cli']:.1f} ({r['cli'] / t:.0%}) | "
                f"{r['floor']:.1f} ({r['floor'] / t:.0%}) | "
                f"{r['seed']:.1f} ({r['seed'] / t:.0%}) | "
                f"{r['split']:.1f} -> {r['split_sig']:.1f} "
                f"(+{(r['split_sig'] - r['split']) / t:.0%} of transcode) |"
            )
    print("| source | segments x rungs | transcode CPU s | checksum CPU s | checksum / "
          "transcode | of which decode + scoring | the same, decoded by one ffmpeg | "
          "decoding alone (ffmpeg -f null) | seed's design (decode each file, hash only) | "
          "split CPU s without -> with signatures |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nimport av, once per worker process: {once:.2f} CPU s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
