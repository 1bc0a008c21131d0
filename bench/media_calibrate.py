"""Calibrate the visual-checksum verdict on a corpus built here, and write the report.

Corpus: several synthetic sources (moving test pattern, fractal zoom, cellular
automaton, smooth gradients, colour bars with noise), cut into 1-second
segments. For every segment:

- legitimate candidates: renditions on every rung and codec of a wide ladder
  (H.264 at three sizes and three qualities, HEVC, VP9, AV1), which must match;
- bad candidates, which must not: another segment of the same source, a
  segment of another source, horizontally and vertically flipped, black,
  inverted colours, a frozen first frame, heavy noise, truncated to half.

Distances come from kinoit.media.checksum; the script sweeps the two
thresholds (max and mean distance per segment), prints the false-positive and
false-negative rates, and with --write rewrites docs/checksum-calibration.md.

    .venv/bin/python bench/media_calibrate.py [--write]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from kinoit.config import load_settings
from kinoit.media import compare_checksums, split_video, transcode_segment
from kinoit.media.checksum import (
    ALGORITHM,
    ALGORITHMS,
    HASH_SIDE,
    THRESHOLDS,
    gray_frames,
    hash_gray_frames,
)

# Fixed seeds: the random generators give the same corpus on every run.
SOURCES = {
    "testsrc2": "testsrc2=size=640x360:rate=25",
    "mandelbrot": "mandelbrot=size=640x360:rate=25",
    "life": (
        "life=size=640x360:rate=25:mold=10:ratio=0.2:seed=7:death_color=#202020:life_color=#e0e0a0"
    ),
    "gradients": "gradients=size=640x360:rate=25:speed=0.05:seed=7",
    "sierpinski": "sierpinski=size=640x360:rate=25:seed=7",
}
SECONDS = 3
LADDER = {
    "rungs": [
        {"name": "h264-360-crf23", "codec": "h264", "height": 360, "crf": 23, "preset": "veryfast"},
        {"name": "h264-240-crf28", "codec": "h264", "height": 240, "crf": 28, "preset": "veryfast"},
        {"name": "h264-144-crf35", "codec": "h264", "height": 144, "crf": 35, "preset": "veryfast"},
        {
            "name": "h264-360-400k",
            "codec": "h264",
            "height": 360,
            "bitrate": "400k",
            "preset": "veryfast",
        },
        {"name": "hevc-240-crf30", "codec": "hevc", "height": 240, "crf": 30, "preset": "fast"},
        {"name": "vp9-240-crf40", "codec": "vp9", "height": 240, "crf": 40, "preset": 6},
        {"name": "av1-240-crf45", "codec": "av1", "height": 240, "crf": 45, "preset": 10},
    ]
}
FRAME = HASH_SIDE * HASH_SIDE  # bytes of one raw 32x32 luma frame
BAD_FILTERS = {
    "hflip": "hflip",
    "vflip": "vflip",
    "black": "drawbox=t=fill:c=black",
    "inverted": "negate",
    "frozen": "loop=loop=-1:size=1:start=0",
    "one black frame": "drawbox=t=fill:c=black:enable='eq(n,12)'",
    "noise": "noise=alls=100:allf=t",
}


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
                   check=True, timeout=600)  # fmt: skip


def build_corpus(work: Path) -> list[dict[str, Any]]:
    """Every (category, reference hashes, candidate hashes) case."""
    settings = load_settings()
    cases: list[dict[str, Any]] = []  # ref/cand: raw 32x32 luma frames, hashed per algorithm
    splits = {}
    for name, graph in SOURCES.items():
        src = work / f"{name}.mp4"
        ffmpeg("-f", "lavfi", "-i", f"{graph},format=yuv420p", "-t", str(SECONDS),
               "-c:v", "libx264", "-preset", "veryfast", "-crf", "16", str(src))  # fmt: skip
        splits[name] = split_video(src, work / f"split-{name}", settings=settings)
    hashes = {
        (name, seg.index): gray_frames(seg.path, settings=settings)
        for name, split in splits.items()
        for seg in split.segments
    }
    names = list(SOURCES)
    for name, split in splits.items():
        for seg in split.segments:
            ref = hashes[(name, seg.index)]
            out = transcode_segment(seg.path, LADDER, work / f"rend-{name}", settings=settings)
            for rung, rendition in out.items():
                cand = gray_frames(rendition.path, settings=settings)
                cases.append(
                    {"source": name, "kind": "legit", "what": rung, "cand": cand, "ref": ref}
                )
            other_seg = (seg.index + 1) % len(split.segments)
            cases.append({"source": name, "kind": "bad", "what": "wrong segment",
                          "cand": hashes[(name, other_seg)], "ref": ref})  # fmt: skip
            other = names[(names.index(name) + 1) % len(names)]
            cases.append({"source": name, "kind": "bad", "what": "other video",
                          "cand": hashes[(other, seg.index)], "ref": ref})  # fmt: skip
            for what, vf in BAD_FILTERS.items():
                bad = work / f"bad-{name}-{seg.index}-{what}.mkv"
                ffmpeg("-i", str(seg.path), "-vf", f"{vf},trim=end_frame={seg.frames}",
                       "-c:v", "ffv1", str(bad))  # fmt: skip
                cand = gray_frames(bad, settings=settings)
                cases.append(
                    {"source": name, "kind": "bad", "what": what, "cand": cand, "ref": ref}
                )
            cases.append({"source": name, "kind": "bad", "what": "truncated",
                          "cand": ref[: (len(ref) // FRAME // 2) * FRAME], "ref": ref})  # fmt: skip
    return cases


def hashed(cases: list[dict[str, Any]], algorithm: str) -> list[dict[str, Any]]:
    """The corpus with raw luma frames replaced by one algorithm's hashes."""
    return [
        {
            **c,
            "ref": hash_gray_frames(c["ref"], algorithm),
            "cand": hash_gray_frames(c["cand"], algorithm),
        }
        for c in cases
    ]


def rates(
    cases: list[dict[str, Any]], algorithm: str, max_d: int, mean_d: float
) -> tuple[float, float, int, int]:
    fp = fn = legit = bad = 0
    for c in cases:
        verdict = compare_checksums(
            c["ref"], c["cand"], max_distance=max_d, mean_distance=mean_d, algorithm=algorithm
        ).verdict
        if c["kind"] == "legit":
            legit += 1
            fp += verdict == "mismatch"
        else:
            bad += 1
            fn += verdict == "match"
    return fp / legit, fn / bad, fp, fn


def report(raw_cases: list[dict[str, Any]], algorithm: str) -> str:
    cases = hashed(raw_cases, algorithm)
    chosen = THRESHOLDS[algorithm]
    by_what: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for c in cases:
        r = compare_checksums(c["ref"], c["cand"], algorithm=algorithm)
        by_what[(c["kind"], c["what"])].append((r.max, r.mean))
    default = " (the default)" if algorithm == ALGORITHM else ""
    lines = [
        f"## `{algorithm}`{default}",
        "",
        "### Distances per segment (worst frame / mean over frames)",
        "",
        "| kind | candidate | n | max: min..median..max | mean: min..median..max |",
        "|---|---|---|---|---|",
    ]
    for (kind, what), values in sorted(by_what.items()):
        maxes = [v[0] for v in values]
        means = [v[1] for v in values]
        lines.append(
            f"| {kind} | {what} | {len(values)} "
            f"| {min(maxes)}..{statistics.median(maxes):g}..{max(maxes)}"
            f" | {min(means):.2f}..{statistics.median(means):.2f}..{max(means):.2f} |"
        )
    lines += ["", "### Threshold sweep", "",
              "| max distance | mean distance | false positives (legit -> mismatch) | "
              "false negatives (bad -> match) |", "|---|---|---|---|"]  # fmt: skip
    grid = sorted(
        {*((m, a) for m in (12, 16, 20, 24, 28, 32) for a in (6.0, 8.0, 10.0, 12.0, 14.0)), chosen}
    )
    for max_d, mean_d in grid:
        fpr, fnr, fp, fn = rates(cases, algorithm, max_d, mean_d)
        mark = " **(chosen)**" if (max_d, mean_d) == chosen else ""
        lines.append(f"| {max_d} | {mean_d:g}{mark} | {fpr:.1%} ({fp}) | {fnr:.1%} ({fn}) |")
    title = f"### Errors at the chosen thresholds ({chosen[0]} / {chosen[1]:g}), per candidate"
    lines += ["", title,
              "", "| kind | candidate | wrong verdicts | rate |", "|---|---|---|---|"]  # fmt: skip
    wrong: dict[tuple[str, str], list[str]] = defaultdict(list)
    for c in cases:
        verdict = compare_checksums(c["ref"], c["cand"], algorithm=algorithm).verdict
        if (c["kind"] == "bad") == (verdict == "match"):
            wrong[(c["kind"], c["what"])].append(c["source"])
    for key, values in sorted(by_what.items()):
        sources = wrong.get(key, [])
        detail = f" ({', '.join(sorted(set(sources)))})" if sources else ""
        lines.append(
            f"| {key[0]} | {key[1]} | {len(sources)} of {len(values)}{detail} "
            f"| {len(sources) / len(values):.0%} |"
        )
    fpr, fnr, fp, fn = rates(cases, algorithm, *chosen)
    lines += ["", f"**Overall at the chosen thresholds: false positives {fpr:.1%} ({fp}), "
              f"false negatives {fnr:.1%} ({fn}).**", ""]  # fmt: skip
    return "\n".join(lines)


DOC_HEAD = """# Visual checksum calibration

Every frame is decoded by ffmpeg and downsized to 32x32 luma (area average,
aspect ignored, so a 144p rendition hashes like its 1080p source); a 64-bit
hash is computed from that, and two frame sequences are compared frame by
frame by Hamming distance (a frame present on only one side counts as 64). A
candidate **matches** when the frame counts are equal, no frame is further
than the max threshold and the mean distance is at most the mean threshold
(`kinoit.media.checksum.THRESHOLDS`).

Three 64-bit hashes were measured on the same corpus:

- `phash-dct64`: imagehash's pHash (signs of the 8x8 lowest DCT frequencies
  around their median);
- `blockmean64`: 8x8 block means around their median (a block hash);
- `dct32-block32`: 32 pHash bits (the 4 lowest rows of the 8x8 DCT) + 32
  block-mean bits (4x8 blocks).

**Default: `{algorithm}`, match when max <= {max_d} and mean <= {mean_d:g}.**
pHash alone turns smooth content (gradients, fades, skies) into coin flips:
its bits follow DCT coefficients that are all close to their median. In the
two calibration runs made before the random sources had fixed seeds, the
gradient source drew smooth colours and pHash failed 16% and 20% of all
legitimate renditions (every one on that source; mean distances up to 32);
in the seeded run below the gradient happens to be less smooth and pHash
fails 1.9%. Block means alone are stable on smooth content but blind to motion
inside a static layout (a frozen frame, the wrong second of a test card) and
fail more legitimate low-rung renditions of fine detail. The hybrid had the
fewest false positives in all three runs at 28 / 10 (6.7%, 1.9%, and 0% below) at about
the same false negatives, so it is the default.

Reproduce with `.venv/bin/python bench/media_calibrate.py --write` (about ten
minutes on 2 busy cores).

"""

DOC_TAIL = """

### What it does and does not catch

A perceptual hash is a content check, not a quality metric. Measured here, it
reliably tells black, flipped, inverted, other-video and truncated candidates
(frame counts differ) from legitimate renditions at any size and codec, and
catches a single black frame through the max threshold. Its blind spots, also
measured: heavy noise (the 32x32 area average removes most of it, as it
removes compression artefacts: the same property), a frozen frame or the
wrong second of slowly moving content (the hash cannot tell what barely
changed), and subtle quality loss. The worst legitimate cases are the
lowest rungs of synthetic high-frequency content (a cellular automaton at
144p is, visually, a different picture). The corpus is synthetic (no camera
footage is stored in the repository).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="calibrate the visual checksum verdict")
    parser.add_argument("--write", action="store_true", help="rewrite docs/checksum-calibration.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kinoit-calib-") as tmp:
        cases = build_corpus(Path(tmp))
    legit = sum(1 for c in cases if c["kind"] == "legit")
    corpus = (
        f"Corpus: {len(SOURCES)} synthetic sources ({', '.join(SOURCES)}) x {SECONDS} one-second "
        f"segments at 640x360, 25 fps; {legit} legitimate renditions and "
        f"{len(cases) - legit} bad candidates."
    )
    order = [ALGORITHM, *(a for a in ALGORITHMS if a != ALGORITHM)]
    body = corpus + "\n\n" + "\n".join(report(cases, a) for a in order)
    print(body)
    if args.write:
        doc = Path(__file__).resolve().parent.parent / "docs" / "checksum-calibration.md"
        max_d, mean_d = THRESHOLDS[ALGORITHM]
        head = DOC_HEAD.format(algorithm=ALGORITHM, max_d=max_d, mean_d=mean_d)
        doc.write_text(head + body + DOC_TAIL, "utf-8")
        print(f"wrote {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
