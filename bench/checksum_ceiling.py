"""How much of the verifier's misses could any full-reference test on the grid see?

Reads the corpus bench/media_calibrate.py built and cached (builds nothing), scores
it as that script does, and for every missed corrupted rendition of the chosen
corpora asks whether it differs at all, on the 160x96 luma grid, from the
legitimate renditions of the same second at the same rung.

For a re-timing (the source frames m(i) the corruption really shows, from
kinoit.media.corrupt's recipe; frames beyond the judged second are the source's
own neighbours, decoded from the whole source as split decodes it), over the
frames it moves:

- ``s``: mean (S(m(i)) - S(i))^2, 8-bit levels squared per pixel: how much the
  re-timing changes the source's picture (motion plus the source's grain);
- ``follow`` of a rendition X: mean (X(i) - (S(i) + S(m(i))) / 2) . (S(m(i)) - S(i))
  over s, the share of that change X follows towards the re-timed frames:
  -0.5 for a perfect copy of the source, +0.5 for a perfect copy of the re-timed
  frames, 0 for a picture that carries none of the change (an encode that holds a
  near-still shot still). Every full-reference comparison of X with the two
  candidate timings is a function of this projection (the error difference is
  2 x follow x s), so a corrupted rendition whose ``follow`` lies within the
  legitimate renditions' (under the same m) cannot be told from them by comparing
  frames, at any threshold;
- ``error``: mean (X(i) - S(m(i)))^2 for the corrupted rendition (its distance to
  the source under the right timing) against mean (L(i) - S(i))^2 of the
  legitimate CRF-35/50 renditions (their distance under theirs);
- ``carried``: sqrt(change energy of X / change energy of the source), over the
  whole second: how much of the shot's frame-to-frame change a rendition keeps.

    .venv/bin/python bench/checksum_ceiling.py [--corpus fresh] [--corpus held-out]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from kinoit.config import load_settings
from kinoit.media.signature import Signature
from media_calibrate import (  # bench/ is sys.path[0] when a script runs
    CORPORA,
    REAL_FOOTAGE,
    THRESHOLDS,
    WORK,
    Case,
    calibrate,
    reference_signature,
    score,
    verdicts,
)


def source_map(what: str, n: int) -> np.ndarray[Any, Any] | None:
    """Source frame (relative to the judged second's first) shown at each of the n
    frames of corruption ``what`` (kinoit.media.corrupt), None if it re-times nothing."""
    i, h = np.arange(n), n // 2
    if what.startswith("shift"):
        return i + int(what.split()[1])
    table = {
        "adjacent second": i + n,
        "reversed": n - 1 - i,
        "frozen": np.zeros(n, dtype=int),
        "half frozen": np.minimum(i, h),
        "duplicated frame": np.where(i <= h, i, i - 1),
        "dropped frame (count kept)": np.where(i < h, i, i + 1),
    }
    return table.get(what)


def luma(sig: Signature) -> np.ndarray[Any, Any]:
    return sig.luma().astype(np.float64).reshape(sig.frames, -1)


def carried(x: np.ndarray[Any, Any], s: np.ndarray[Any, Any]) -> float:
    dx, ds = np.diff(x, axis=0), np.diff(s, axis=0)
    return float(np.sqrt((dx * dx).sum() / max((ds * ds).sum(), 1e-9)))


def follow(
    x: np.ndarray[Any, Any], own: np.ndarray[Any, Any], moved: np.ndarray[Any, Any]
) -> tuple[float, float]:
    """``follow`` pooled over the frames, and its standard error from the frames' spread
    (a ratio estimator: sqrt(sum (num_i - f den_i)^2) / sum den_i)."""
    delta = moved - own
    num = ((x - (own + moved) / 2) * delta).sum(axis=1)
    den = (delta * delta).sum(axis=1)
    f = float(num.sum() / max(float(den.sum()), 1e-9))
    return f, float(np.sqrt(((num - f * den) ** 2).sum()) / max(float(den.sum()), 1e-9))


def load_cases() -> list[Case]:
    cases = []
    for f in sorted((WORK / "cases").glob("*.json")):
        cases += [Case(**c) for c in json.loads(f.read_text())]
    return cases


def source_path(name: str) -> Path:
    for file, real in REAL_FOOTAGE.items():
        if real == name:
            return WORK / "real" / file
    for ext in (".mp4", ".mkv"):
        if (p := WORK / "sources" / f"{name}{ext}").exists():
            return p
    raise SystemExit(f"{name}: no source file in {WORK / 'sources'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", action="append", choices=CORPORA)
    parser.add_argument("--json", type=Path, help="write every row here")
    parser.add_argument(
        "--recalibrate",
        action="store_true",
        help="judge with thresholds re-derived from the cached calibration corpus",
    )
    args = parser.parse_args(argv)
    corpora = args.corpus or ["fresh"]
    cases = load_cases()
    have = {c.corpus for c in cases}
    rows = score([c for c in cases if c.corpus in {"calibration", *corpora}])
    if args.recalibrate and "calibration" in have:
        table = calibrate(rows)
        print("thresholds: re-derived from the cached calibration corpus", file=sys.stderr)
    else:
        table = dict(THRESHOLDS)
        print("thresholds: the shipped ones (kinoit.media.checksum.THRESHOLDS)", file=sys.stderr)
    settings = load_settings()
    full: dict[str, np.ndarray[Any, Any]] = {}
    sigs: dict[str, np.ndarray[Any, Any]] = {}

    def grid(path: str) -> np.ndarray[Any, Any]:
        if path not in sigs:
            sigs[path] = luma(Signature.from_bytes(Path(path).read_bytes()))
        return sigs[path]

    by_second: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_second[(r["ref"], r["height"])].append(r)
    out = []
    for r, failed, _ in verdicts(rows, table):
        if r["corpus"] not in corpora or r["kind"] != "bad" or failed:
            continue
        ref = grid(r["ref"])
        n = len(ref)
        if r["source"] not in full:
            full[r["source"]] = luma(reference_signature(source_path(r["source"]), settings))
        whole = full[r["source"]]
        offsets = [float(np.abs(whole[o : o + n] - ref).mean()) for o in range(len(whole) - n + 1)]
        first = int(np.argmin(offsets))
        legit = [x for x in by_second[(r["ref"], r["height"])] if x["kind"] == "legit"]
        row: dict[str, Any] = {
            "corpus": r["corpus"], "source": r["source"], "height": r["height"],
            "what": r["what"], "offset_error": offsets[first],
            "carried": carried(grid(r["cand"]), ref),
            "legit_carried": [carried(grid(x["cand"]), ref) for x in legit],
            "scores": {k: r["scores"].get(k) for k in ("retimed", "misplaced", "change_retimed",
                       "motion_kept", "flat_detail", "relative_error")},
        }  # fmt: skip
        m = source_map(r["what"], n)
        if m is not None:
            src = first + m
            moved = (m != np.arange(n)) & (src >= 0) & (src < len(whole))
            own, shown = ref[moved], whole[src[moved]]
            cand = grid(r["cand"])[moved]
            legit_follow = [follow(grid(x["cand"])[moved], own, shown) for x in legit]
            row.update(
                moved=int(moved.sum()),
                s=float(((shown - own) ** 2).mean()),
                follow=follow(cand, own, shown),
                legit_follow=legit_follow,
                error=float(((cand - shown) ** 2).mean()),
                legit_error=[float(((grid(x["cand"])[moved] - own) ** 2).mean()) for x in legit],
                legit_names=[x["what"] for x in legit],
            )
        out.append(row)
    print_table(out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


def span(values: list[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(min(values))}..{fmt.format(max(values))}" if values else "-"


def print_table(out: list[dict[str, Any]]) -> None:
    print("| source@rung | miss | frames moved | s | follow: corrupted | "
          "follow: legit | error: corrupted | error: legit | carried: corrupted | "
          "carried: legit | separable |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for x in sorted(out, key=lambda x: (x["corpus"], x["source"], x["height"], x["what"])):
        if "follow" in x:
            (f, se), top = x["follow"], max(x["legit_follow"], default=(0.0, 0.0))
            # beyond every legitimate rendition by twice the two estimates' combined error
            verdict = "yes" if f - top[0] > 2 * np.hypot(se, top[1]) else "no"
            cells = [str(x["moved"]), f"{x['s']:.2f}", f"{f:+.3f} ± {se:.3f}",
                     span([v for v, _ in x["legit_follow"]], "{:+.3f}"), f"{x['error']:.2f}",
                     span(x["legit_error"])]  # fmt: skip
        else:
            verdict, cells = "-", ["-"] * 6
        print(
            f"| {x['source']}@{x['height']}p | {x['what']} | "
            + " | ".join(cells)
            + f" | {x['carried']:.3f} | {span(x['legit_carried'], '{:.3f}')} | {verdict} |"
        )


if __name__ == "__main__":
    sys.exit(main())
