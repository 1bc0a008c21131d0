"""Verification: does a rendition show the source's pictures, in the source's order, faithfully?

Both sides are :class:`~kinoit.media.signature.Signature` s (every frame on a
small fixed grid, with its timestamp). The verdict combines five tests, each
with thresholds measured on a calibration corpus (docs/checksum-calibration.md,
rebuilt by bench/media_calibrate.py):

- ``frames``: the same number of frames;
- ``timing``: every frame at the source's cadence (a dropped, duplicated or
  re-timed frame moves the timestamps), within half a frame;
- ``content``: the seed's per-frame perceptual hash, a 64-bit hash of 32x32
  luma (``dct32-block32``: 32 pHash bits, 32 block-mean bits), compared by
  Hamming distance (max and mean over frames) - wrong, black, flipped, inverted
  or cropped pictures;
- ``fidelity``: a small full-reference comparison on the grid: PSNR of luma and
  of each chroma plane per frame (wrong colours, swapped chroma, garbage,
  noise), and how much detail the rendition adds that the source lacks (noise
  and blocking raise it; a legitimate encode only ever removes detail);
- ``time``: each rendition frame must look more like the source frame at its
  own position than like any other frame of the segment (frozen, half-frozen,
  reversed, shifted, duplicated frames), and the frame-to-frame motion must be
  the source's (a frozen second has none).

A test only speaks where it can: the ``time`` test needs motion above the
encoding noise, so a truly still shot may be frozen without failing (and looks
the same). ``reason`` names the first failing test.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from kinoit.config import Settings
from kinoit.errors import InvalidParameter, MediaError
from kinoit.media.probe import probe
from kinoit.media.signature import GRID_H, GRID_W, Signature, read_signatures

if TYPE_CHECKING:
    import numpy as np

    Floats = np.ndarray[Any, np.dtype[np.float64]]

ALGORITHM: Final = "dct32-block32"
# Names the whole verdict (tests and thresholds): a cached result of another is not reused.
VERIFIER: Final = "kinoit-verify-2"
HASH_SIDE: Final = 32
HASH_BITS: Final = 64

Verdict = Literal["match", "mismatch"]


# A re-timing must improve the fit by this much (mean squared 8-bit levels on the
# grid) to count: below it, the rendition's frames are where they belong as far as
# anyone can see.
MIN_RETIMED_GAIN: Final = 0.3
# A source frame with less contrast than this (luma standard deviation, 8-bit levels,
# on the 32x32 hash grid) has a hash of noise: black, a fade's darkest frames, a flat
# wall. The content test skips such frames (their distances are still reported);
# the fidelity test judges them.
FLAT_FRAME_STD: Final = 3.0


@dataclass(frozen=True)
class Thresholds:
    """Where each test fails; the defaults are the calibrated ones (see the module doc)."""

    hash_max: int = 28  # worst single-frame Hamming distance
    hash_mean: float = 10.0  # mean Hamming distance
    psnr_luma: float = 20.0  # dB, worst frame, luma on the grid
    psnr_chroma: float = 24.0  # dB, worst frame, worse of U and V
    relative_error: float = 3.0  # luma error / source detail energy, mean over frames
    relative_error_max: float = 6.0  # ... worst frame
    detail_max: float = 1.25  # rendition / source fine-detail energy, at most (noise, blocks)
    detail_min: float = 0.3  # ... and at least (smeared, mosaic garbage)
    misplaced: float = 0.25  # fraction of frames closer to another source frame
    misplaced_margin: float = 0.8  # "closer" means below this fraction of the own-frame error
    retimed: float = 1.05  # a shifted or reversed source fits this much better than as-is
    retimed_gain: float = MIN_RETIMED_GAIN  # ... and by this much (levels squared)
    timing_frames: float = 0.5  # largest timestamp error, in frames


# Per rung size class (the rendition's decoded height): small renditions lose
# detail the grid still holds, so their fidelity floor is lower.
SMALL_RUNG_HEIGHT: Final = 288
# Measured by bench/media_calibrate.py on its calibration corpus (the legitimate
# renditions' worst value plus a margin; docs/checksum-calibration.md). A detail floor
# of 0 means the corpus had a legitimate rendition with next to no fine detail left (a
# fade's dark frames), so that check cannot speak.
THRESHOLDS: Final[dict[str, Thresholds]] = {
    "small": Thresholds(
        hash_max=36, hash_mean=18.7, psnr_luma=19.5, psnr_chroma=26.9, relative_error=1.5,
        relative_error_max=2.4, detail_max=1.07, detail_min=0.0, misplaced=0.44, retimed=1.5,
    ),
    "large": Thresholds(
        hash_max=27, hash_mean=12.0, psnr_luma=28.5, psnr_chroma=29.5, relative_error=0.46,
        relative_error_max=2.12, detail_max=1.18, detail_min=0.0, misplaced=0.26, retimed=1.43,
    ),
}  # fmt: skip


def thresholds_for(size: tuple[int, int] | None) -> Thresholds:
    """The calibrated thresholds for a rendition decoded at ``size``."""
    small = size is not None and min(size) <= SMALL_RUNG_HEIGHT
    return THRESHOLDS["small" if small else "large"]


@dataclass(frozen=True)
class Comparison:
    """Every test's scores for one candidate against its reference, and the verdict."""

    distances: tuple[int, ...]
    verdict: Verdict
    reason: str
    failed: str | None  # the first failing test, None on a match
    reference_frames: int
    candidate_frames: int
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def max(self) -> int:
        """Worst per-frame hash distance."""
        return max(self.distances, default=0)

    @property
    def mean(self) -> float:
        """Mean per-frame hash distance."""
        return sum(self.distances) / len(self.distances) if self.distances else 0.0

    def to_json(self) -> dict[str, Any]:
        """What `kinoit compare` prints and a checksum result stores per rung."""
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "failed": self.failed,
            "distances": list(self.distances),
            "max": self.max,
            "mean": round(self.mean, 3),
            "reference_frames": self.reference_frames,
            "candidate_frames": self.candidate_frames,
            "scores": {k: round(v, 4) for k, v in self.scores.items()},
        }


# ----------------------------------------------------------------- hashing
def _dct_matrix() -> Floats:
    import numpy as np

    k = np.arange(HASH_SIDE)[:, None]
    n = np.arange(HASH_SIDE)[None, :]
    return np.cos(np.pi * k * (2 * n + 1) / (2 * HASH_SIDE))


def hash_grid(luma: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """(frames, 32, 32) luma -> (frames, 64) bits of ``dct32-block32``, all frames at once.

    32 bits: the 4 lowest rows of the 8x8 lowest DCT-II coefficients, each above or
    below the median of the 64; 32 bits: the 4x8 block means above or below their median.
    """
    import numpy as np

    frames = np.asarray(luma, dtype=np.float64)
    c = _dct_matrix()
    dct = np.einsum("km,fmn,ln->fkl", c, frames, c, optimize=True)[:, :8, :8]
    dct_bits = dct > np.median(dct.reshape(-1, 64), axis=1)[:, None, None]
    blocks = frames.reshape(-1, 4, 8, 8, 4).mean(axis=(2, 4))
    block_bits = blocks > np.median(blocks.reshape(-1, 32), axis=1)[:, None, None]
    return np.concatenate([dct_bits[:, :4].reshape(-1, 32), block_bits.reshape(-1, 32)], axis=1)


def luma32(sig: Signature) -> Floats:
    """(frames, 32, 32): a signature's luma averaged down to the hash grid."""
    import numpy as np

    fy, fx = GRID_H // HASH_SIDE, GRID_W // HASH_SIDE
    luma = sig.luma().astype("float64")
    return np.asarray(luma.reshape(-1, HASH_SIDE, fy, HASH_SIDE, fx).mean(axis=(2, 4)))


def flat_frames(small: Floats) -> list[bool]:
    """Per 32x32 frame: too little contrast for its hash to mean anything (FLAT_FRAME_STD)."""
    return [bool(v < FLAT_FRAME_STD) for v in small.reshape(len(small), -1).std(axis=1)]


def hash_luma(sig: Signature) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Per-frame hash bits of a signature."""
    return hash_grid(luma32(sig))


def bits_to_hex(bits: np.ndarray[Any, Any]) -> list[str]:
    """(frames, 64) bits -> 16 hex digits per frame."""
    import numpy as np

    packed = np.packbits(np.asarray(bits, dtype=np.uint8), axis=1)
    return [row.tobytes().hex() for row in packed]


def hex_to_bits(hashes: Sequence[str]) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """16-hex-digit hashes -> (frames, 64) bits; InvalidParameter for anything else."""
    import numpy as np

    try:
        raw = b"".join(bytes.fromhex(h) if len(h) == 16 else b"!" for h in hashes)
    except (ValueError, TypeError):
        raise InvalidParameter("hash", "expected 16 hexadecimal digits per frame") from None
    if len(raw) != 8 * len(hashes):
        raise InvalidParameter("hash", "expected 16 hexadecimal digits per frame")
    return np.unpackbits(np.frombuffer(raw, dtype=np.uint8)).reshape(-1, HASH_BITS)


def hamming(a: str, b: str) -> int:
    """Bits that differ between two hex hashes."""
    try:
        return (int(a, 16) ^ int(b, 16)).bit_count()
    except ValueError:
        raise InvalidParameter("hash", f"not hexadecimal: {a!r} / {b!r}") from None


def checksums(sig: Signature) -> list[str]:
    """The per-frame hashes of a signature, in presentation order."""
    return bits_to_hex(hash_luma(sig))


# ----------------------------------------------------------------- scores
def _psnr(mse: Floats) -> Floats:
    import numpy as np

    return np.asarray(10 * np.log10(255.0**2 / np.maximum(mse, 1e-3)), dtype=np.float64)


def _detail(luma: Floats) -> Floats:
    """Per-frame energy of what a 3x3 box blur removes (fine detail, noise, block edges)."""
    import numpy as np

    padded = np.pad(luma, ((0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = luma.shape[1:]
    blur = sum(padded[:, y : y + h, x : x + w] for y in range(3) for x in range(3)) / 9.0
    return np.asarray(((luma - blur) ** 2).mean(axis=(1, 2)), dtype=np.float64)


# Added to the source's detail energy: keeps the relative error finite on flat frames.
RELATIVE_ERROR_FLOOR: Final = 2.0


def pool_for(size: tuple[int, int] | None) -> int:
    """How much coarser than the grid to compare a rendition decoded at ``size``: a
    picture of h lines holds about h / 1.5 lines of detail, so the grid is pooled by
    the smallest of 1, 2, 4, 8 that asks no more of it (1 from 144p up)."""
    if size is None:
        return 1
    w, h = size
    for f in (1, 2, 4):
        if GRID_H / f <= h / 1.5 and GRID_W / f <= w / 1.5:
            return f
    return 8


def _pooled(planes: Floats, f: int) -> Floats:
    """Mean over f x f blocks of the last two axes."""
    if f == 1:
        return planes
    import numpy as np

    *lead, h, w = planes.shape
    return np.asarray(planes.reshape(*lead, h // f, f, w // f, f).mean(axis=(-3, -1)))


def fidelity_scores(ref: Signature, cand: Signature, pool: int = 1) -> dict[str, float]:
    """Worst-frame PSNR of luma and chroma, the error against the source's detail and
    the detail ratio (equal frame counts), on the grid made ``pool`` times coarser."""
    import numpy as np

    ry, cy = (_pooled(s.luma().astype(np.float64), pool) for s in (ref, cand))
    rc, cc = (_pooled(s.chroma().astype(np.float64), pool) for s in (ref, cand))
    luma_mse = ((ry - cy) ** 2).mean(axis=(1, 2))
    luma = _psnr(luma_mse)
    chroma = _psnr(((rc - cc) ** 2).mean(axis=(2, 3))).min(axis=1)
    ref_detail, cand_detail = _detail(ry), _detail(cy)
    ratio = float(cand_detail.sum() / max(float(ref_detail.sum()), len(ry) * 1.0))
    # error against what the source has to lose: a legitimate encode at worst loses its
    # fine detail (error ~ detail); a wrong, moved or noisy picture errs far beyond it
    relative = luma_mse / (ref_detail + RELATIVE_ERROR_FLOOR)
    return {
        "relative_error": float(relative.mean()),
        "relative_error_max": float(relative.max()),
        "psnr_luma": float(luma.min()),
        "psnr_luma_mean": float(luma.mean()),
        "psnr_chroma": float(chroma.min()),
        "detail": ratio,
    }


# Re-timings the time test tries against "as is": shifts up to MAX_SHIFT frames of the
# whole segment or of a prefix/suffix (a dropped or duplicated frame shifts the rest),
# frozen from any frame on, reversed. Each must cover MIN_RETIMED_FRAMES frames.
MAX_SHIFT: Final = 5
MIN_RETIMED_FRAMES: Final = 4


@functools.cache
def _retiming_index(n: int) -> tuple[Any, Any, Any, Any]:
    """Every hypothesis of :func:`retimings` as padded (rows, cols) index arrays, a
    mask of the real entries and the count of each (built once per frame count)."""
    import numpy as np

    maps = retimings(n)
    width = max((len(rows) for rows, _ in maps), default=1)
    rows = np.zeros((len(maps), width), dtype=np.intp)
    cols = np.zeros((len(maps), width), dtype=np.intp)
    mask = np.zeros((len(maps), width), dtype=bool)
    for h, (r, c) in enumerate(maps):
        rows[h, : len(r)], cols[h, : len(r)], mask[h, : len(r)] = r, c, True
    return rows, cols, mask, mask.sum(axis=1)


def retimed_fit(own: Floats, err: Floats) -> tuple[float, float]:
    """The best re-timing's ratio "as is" / re-timed and its gain (normalised units),
    over all hypotheses at once; each side's mean leaves out its worst frame, so one
    frame an encoder smeared across a scene cut is no re-timing (pure)."""
    import numpy as np

    if not len(own):
        return 0.0, 0.0
    rows, cols, mask, count = _retiming_index(len(own))
    if not len(rows):
        return 0.0, 0.0

    def robust_mean(values: Floats) -> Floats:
        values = np.where(mask, values, 0.0)
        return np.asarray((values.sum(axis=1) - values.max(axis=1)) / (count - 1))

    mine, theirs = robust_mean(own[rows]), robust_mean(err[rows, cols])
    best = int(np.argmax(mine / theirs))
    return float(mine[best] / theirs[best]), float(mine[best] - theirs[best])


@functools.cache
def retimings(n: int) -> list[tuple[Any, Any]]:
    """(rows, source frame per row) of every re-timing hypothesis for ``n`` frames (pure)."""
    import numpy as np

    out = []
    idx = np.arange(n)
    for k in [*range(-MAX_SHIFT, 0), *range(1, MAX_SHIFT + 1)]:
        for d in range(n):
            for rows in (idx[d:], idx[:d]):  # suffix from d shifted, or prefix before d
                rows = rows[(rows + k >= 0) & (rows + k < n)]
                if len(rows) >= MIN_RETIMED_FRAMES and (d == 0 or len(rows) < n):
                    out.append((rows, rows + k))
    for d in range(n - 1):  # frozen on frame d from d on
        rows = idx[d + 1 :]
        if len(rows) >= MIN_RETIMED_FRAMES:
            out.append((rows, np.full(len(rows), d)))
    rows = idx[2 * idx != n - 1]
    if len(rows) >= MIN_RETIMED_FRAMES:
        out.append((rows, n - 1 - rows))
    return out


def _normalised(frames: Floats) -> tuple[Floats, float]:
    """Each frame (a row) less its mean, over its contrast (at least 2 levels), so fades
    and brightness steps do not look like motion; and the mean squared contrast that
    turns normalised errors back into 8-bit levels squared."""
    import numpy as np

    std = np.maximum(frames.std(axis=1, keepdims=True), 2.0)
    z = (frames - frames.mean(axis=1, keepdims=True)) / std
    return np.asarray(z), float((std**2).mean())


def time_scores(ref: Signature, cand: Signature, margin: float) -> dict[str, float]:
    """Is each rendition frame where it belongs? Views of one error matrix between
    brightness-normalised frames (see :func:`_normalised`):

    - ``retimed``: the best of every re-timing (:func:`retimings`) against "as is",
      as a ratio of median errors over the same frames (> 1: the rendition fits a
      re-timed source better) - pooling frames makes it sensitive to the small
      motion of a near-still shot, the median deaf to one smeared frame;
      ``retimed_gain``: that improvement in 8-bit levels squared (an invisible
      re-timing, such as an encoder lagging a sub-pixel sway, gains next to nothing);
    - ``misplaced``: share of frames clearly closer (below ``margin`` x the error to
      their own source frame, and by a visible amount) to another source frame;
    - ``motion_kept``, ``motion``: frame-to-frame change of the rendition over the
      source's, and the source's (mean absolute levels), for reports.
    """
    import numpy as np

    n = ref.frames
    r = ref.luma().reshape(n, -1).astype(np.float64)
    c = cand.luma().reshape(n, -1).astype(np.float64)
    zr, scale = _normalised(r)
    zc, _ = _normalised(c)
    # err[i, j]: candidate frame i against source frame j, all pairs by one product
    sq = (zc**2).sum(axis=1)[:, None] + (zr**2).sum(axis=1)[None, :] - 2.0 * (zc @ zr.T)
    err = np.maximum(sq / r.shape[1], 0.0) + 0.25 / scale  # + 8-bit rounding noise
    own = np.diag(err).copy()
    retimed, gain = retimed_fit(own, err)
    gain *= scale  # back to 8-bit levels squared
    others = err.copy()
    np.fill_diagonal(others, np.inf)
    nearest = others.min(axis=1) if n > 1 else own
    visible = (own - nearest) * scale > MIN_RETIMED_GAIN
    misplaced = float(np.mean((nearest < margin * own) & visible))
    ref_motion = float(np.abs(np.diff(r, axis=0)).mean()) if n > 1 else 0.0
    cand_motion = float(np.abs(np.diff(c, axis=0)).mean()) if n > 1 else 0.0
    kept = cand_motion / ref_motion if ref_motion > MOTION_FLOOR else 1.0
    return {"retimed": retimed, "retimed_gain": gain, "misplaced": misplaced,
            "motion_kept": kept, "motion": ref_motion}  # fmt: skip


# Mean absolute frame-to-frame change (8-bit levels on the grid) below which a
# source counts as still: its motion cannot be told from encoding noise.
MOTION_FLOOR: Final = 0.1


def timing_error(ref: Signature, cand: Signature) -> float:
    """Largest difference, in frames, between the two sides' timestamps from their first."""
    if ref.pts is None or cand.pts is None or ref.frames < 2:
        return 0.0
    step = (ref.pts[-1] - ref.pts[0]) / (ref.frames - 1)
    if step <= 0:
        return 0.0
    worst = max(
        abs((c - cand.pts[0]) - (r - ref.pts[0])) for r, c in zip(ref.pts, cand.pts, strict=True)
    )
    return float(worst / step)


# ----------------------------------------------------------------- verdict
def _distances(ref_bits: np.ndarray[Any, Any], cand_bits: np.ndarray[Any, Any]) -> list[int]:
    pairs = min(len(ref_bits), len(cand_bits))
    distances = [int(d) for d in (ref_bits[:pairs] != cand_bits[:pairs]).sum(axis=1)]
    return distances + [HASH_BITS] * (max(len(ref_bits), len(cand_bits)) - pairs)


def judge(
    distances: Sequence[int], scores: Mapping[str, float], t: Thresholds, frames: tuple[int, int]
) -> tuple[str | None, str]:
    """The first failing test and why, or (None, "all tests passed") (pure)."""
    ref_frames, cand_frames = frames
    if ref_frames != cand_frames:
        return "frames", f"frame counts differ: {ref_frames} vs {cand_frames}"
    if scores.get("timing_error", 0.0) > t.timing_frames:
        return "timing", f"timestamps off by {scores['timing_error']:.2f} frames"
    worst = int(scores.get("hash_max", max(distances)))
    mean = scores.get("hash_mean", sum(distances) / len(distances))
    if worst > t.hash_max:
        frame = list(distances).index(worst)
        return "content", f"frame {frame} differs by {worst} bits (> {t.hash_max})"
    if mean > t.hash_mean:
        return "content", f"mean distance {mean:.2f} > {t.hash_mean}"
    if scores.get("misplaced", 0.0) > t.misplaced:
        share = scores["misplaced"]
        return "time", f"{share:.0%} of frames match another source frame better"
    if scores.get("retimed", 0.0) > t.retimed and scores.get("retimed_gain", 0.0) > t.retimed_gain:
        return "time", (
            f"a shifted, frozen or reversed source fits {scores['retimed']:.2f}x better"
        )
    checks = [
        ("psnr_luma", "<", t.psnr_luma, "luma PSNR {:.1f} dB < {}"),
        ("psnr_chroma", "<", t.psnr_chroma, "chroma PSNR {:.1f} dB < {}"),
        ("relative_error", ">", t.relative_error, "error {:.2f}x the source's detail > {}"),
        (
            "relative_error_max",
            ">",
            t.relative_error_max,
            "worst frame's error {:.2f}x the source's detail > {}",
        ),
        ("detail", ">", t.detail_max, "detail {:.2f}x the source's > {} (noise, blocking)"),
        ("detail", "<", t.detail_min, "detail {:.2f}x the source's < {} (smeared, garbage)"),
    ]
    for key, op, limit, text in checks:
        if key in scores and (scores[key] < limit if op == "<" else scores[key] > limit):
            return "fidelity", text.format(scores[key], limit)
    return None, "all tests passed"


def compare_signatures(
    ref: Signature, cand: Signature, thresholds: Thresholds | None = None
) -> Comparison:
    """Run every test of ``cand`` against ``ref``."""
    t = thresholds or thresholds_for(cand.size)
    ref_small = luma32(ref)
    distances = _distances(hash_grid(ref_small), hash_luma(cand))
    scores: dict[str, float] = {}
    if ref.frames == cand.frames:
        flat = flat_frames(ref_small)
        textured = [d for d, f in zip(distances, flat, strict=True) if not f]
        # nothing but flat frames: no hash to trust, the other tests judge them
        scores["hash_max"] = float(max(textured, default=0))
        scores["hash_mean"] = sum(textured) / len(textured) if textured else 0.0
        scores["timing_error"] = timing_error(ref, cand)
        scores.update(fidelity_scores(ref, cand, pool_for(cand.size)))
        scores.update(time_scores(ref, cand, t.misplaced_margin))
    failed, reason = judge(distances, scores, t, (ref.frames, cand.frames))
    return Comparison(
        distances=tuple(distances), verdict="mismatch" if failed else "match", reason=reason,
        failed=failed, reference_frames=ref.frames, candidate_frames=cand.frames, scores=scores,
    )  # fmt: skip


def compare_checksums(
    reference: Sequence[str], candidate: Sequence[str], thresholds: Thresholds | None = None
) -> Comparison:
    """Hash-only comparison (frames + content), for references that carry no signature."""
    if not reference and not candidate:
        raise InvalidParameter("checksums", "both sides are empty")
    distances = _distances(hex_to_bits(reference), hex_to_bits(candidate))
    t = thresholds or THRESHOLDS["large"]
    failed, reason = judge(distances, {}, t, (len(reference), len(candidate)))
    return Comparison(
        distances=tuple(distances), verdict="mismatch" if failed else "match", reason=reason,
        failed=failed, reference_frames=len(reference), candidate_frames=len(candidate),
    )  # fmt: skip


def video_signatures(
    paths: Sequence[str | Path], settings: Settings, work: Path | None = None
) -> list[Signature]:
    """Signatures of several videos, each decoded once, by one ffmpeg for all.

    A file ffmpeg cannot decode raises the error probe gives for it (NotAVideo for
    a file that is no video, truncated media...), naming that file."""
    files = [Path(p) for p in paths]
    with tempfile.TemporaryDirectory(prefix="kinoit-signature-", dir=work) as tmp:
        try:
            return read_signatures(files, Path(tmp), settings.ffmpeg_timeout_seconds)
        except MediaError:
            for path in files:  # only on failure: say which file, and why
                probe(path, settings=settings, detect_vfr=False)
            raise


def video_signature(
    path: str | Path,
    settings: Settings,
    *,
    frame_range: tuple[int, int] | None = None,
    work: Path | None = None,
) -> Signature:
    """The signature of one video; ``frame_range`` keeps frames [first, end) only."""
    sig = video_signatures([path], settings, work)[0]
    return sig if frame_range is None else sig.slice(*frame_range)


def checksum_video(
    path: str | Path, settings: Settings, *, frame_range: tuple[int, int] | None = None
) -> list[str]:
    """One 64-bit perceptual hash (hex) per frame of ``path``, in presentation order."""
    return checksums(video_signature(path, settings, frame_range=frame_range))
