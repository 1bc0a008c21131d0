"""What the HLS audio renditions cost split (issue 11, part 3).

On a synthetic clip with a 5.1 tone track (and, as the common case, a mono one):
the audio encode as it was (one AAC of the source's layout) against as it is (a
stereo downmix plus the 5.1, one decode, one ffmpeg), and the stream-copy cut
into HLS segments that split now also stores for the preview, and adding each
of those segments to an embedded store. Wall and CPU seconds (getrusage of the
children; the adds: this process), best of ``--repeat``.

    .venv/bin/python bench/bench_audio.py [--seconds 60] [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from pathlib import Path

from kinoit.media import ffmpeg
from kinoit.media.merge import cut_audio_hls
from kinoit.media.split import AUDIO_BITRATE, build_audio_argv
from kinoit.media.synth import make_clip
from kinoit.store import EmbeddedStore


def before_argv(src: Path, out: Path, duration: Fraction) -> list[str]:
    """The audio encode before part 3: one AAC of the source's channels."""
    return [
        ffmpeg.FFMPEG, *ffmpeg.QUIET, "-y", "-i", str(src), "-map", "0:a:0", "-vn", "-sn", "-dn",
        "-af", "aresample=async=1:first_pts=0,apad", "-t", f"{float(duration):.6f}",
        "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-map_metadata", "-1",
        "-movflags", "+faststart", str(out),
    ]  # fmt: skip


def timed(action: Callable[[], object], repeat: int) -> tuple[float, float]:
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        action()
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    return best_wall, best_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from kinoit.config import load_settings

    settings = load_settings({})
    duration = Fraction(str(args.seconds))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for channels in (6, 1):
            src = make_clip(root / f"src{channels}.mp4", seconds=args.seconds, width=64,
                            height=36, channels=channels, language="eng")  # fmt: skip
            old, new = root / f"old{channels}.m4a", root / f"new{channels}.m4a"
            argv_before = before_argv(src, old, duration)
            argv_now = build_audio_argv(src, new, duration, channels=channels, language="eng")
            base = timed(partial(ffmpeg.run, argv_before, 600), args.repeat)
            now = timed(partial(ffmpeg.run, argv_now, 600), args.repeat)
            out = root / f"hls{channels}"
            cut = timed(partial(cut_audio_hls, new, out, 1.0, 0, settings), args.repeat)
            store = EmbeddedStore(root / f"store{channels}")
            segments = sorted(out.glob("*.ts"))
            t0, c0 = time.perf_counter(), time.process_time()
            for path in segments:
                store.add(path, pin=False)
            n = len(segments)
            add = ((time.perf_counter() - t0) / n, (time.process_time() - c0) / n)
            rows.append((channels, base, now, cut, add))
    print(f"{args.seconds:g} s of audio, best of {args.repeat}; wall / CPU seconds")
    print(
        f"{'source':>8} {'before: one AAC':>18} {'now: stereo (+5.1)':>20} {'HLS cut':>14}"
        f" {'store.add per segment, ms':>28}"
    )
    for channels, base, now, cut, add in rows:
        name = {6: "5.1", 1: "mono"}[channels]
        print(
            f"{name:>8} {base[0]:>8.2f} / {base[1]:<7.2f} {now[0]:>9.2f} / {now[1]:<8.2f}"
            f" {cut[0]:>6.2f} / {cut[1]:<5.2f} {add[0] * 1000:>14.1f} / {add[1] * 1000:<6.1f}"
        )


if __name__ == "__main__":
    main()
