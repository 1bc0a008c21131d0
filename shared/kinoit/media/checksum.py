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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from kinoit.config import Settings
from kinoit.errors import InvalidParameter, MediaError
from kinoit.media.probe import probe
from kinoit.media.signature import GRID_H, GRID_W, Signature, read_signatures

if TYPE_CHECKING:
    import numpy as np

    Floats = np.ndarray[Any, np.dtype[np.floating[Any]]]

ALGORITHM: Final = "dct32-block32"
# Names the whole verdict (tests and thresholds): a cached result of another is not reused.
VERIFIER: Final = "kinoit-verify-4"
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
    # chroma error no desaturation explains, at most; not judged by the calibrated
    # thresholds (docs/checksum-calibration.md: it caught nothing on the calibration
    # corpus that chroma PSNR did not, and raised a false positive on held-out footage)
    chroma_misfit: float = float("inf")
    flat_detail_max: float = float("inf")  # detail over the source's where it is flat, at most
    misplaced: float = 0.25  # fraction of frames closer to another source frame
    misplaced_margin: float = 0.8  # "closer" means below this fraction of the own-frame error
    retimed: float = 1.05  # a shifted or reversed source fits this much better than as-is
    retimed_gain: float = MIN_RETIMED_GAIN  # ... and by this much (levels squared)
    timing_frames: float = 0.5  # largest timestamp error, in frames


# Per rung size class (the rendition's decoded height): small renditions lose
# detail the grid still holds, so their fidelity floor is lower.
SMALL_RUNG_HEIGHT: Final = 288
# The smallest renditions the calibration corpus has (bench/media_calibrate.py: 144p).
SMALLEST_CALIBRATED: Final = 144
# Measured by bench/media_calibrate.py on its calibration corpus (the legitimate
# renditions' worst value plus a margin; docs/checksum-calibration.md). A detail floor
# of 0 means the corpus had a legitimate rendition with next to no fine detail left (a
# fade's dark frames), so that check cannot speak.
THRESHOLDS: Final[dict[str, Thresholds]] = {
    "small": Thresholds(
        hash_max=36, hash_mean=18.7, psnr_luma=19.5, psnr_chroma=26.9, relative_error=1.87,
        relative_error_max=4.96, detail_max=1.06, detail_min=0.0, misplaced=0.52, retimed=1.5,
        flat_detail_max=1.35,
    ),
    "large": Thresholds(
        hash_max=27, hash_mean=12.0, psnr_luma=28.5, psnr_chroma=33.5, relative_error=1.04,
        relative_error_max=3.71, detail_max=1.2, detail_min=0.0, misplaced=0.36, retimed=1.24,
        flat_detail_max=1.4,
    ),
}  # fmt: skip


def thresholds_for(size: tuple[int, int] | None) -> Thresholds:
    """The calibrated thresholds for a rendition decoded at ``size``."""
    small = size is not None and min(size) <= SMALL_RUNG_HEIGHT
    chosen = THRESHOLDS["small" if small else "large"]
    if size is not None and min(size) < SMALLEST_CALIBRATED:
        # flat-area detail was calibrated on 144-line renditions and up; a tinier one
        # rings across a larger share of its flat blocks (a 48- or 90-line rung of
        # sharp graphics: 1.67x on a legitimate encode), so it is reported, not judged
        return replace(chosen, flat_detail_max=float("inf"))
    return chosen


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
    low = _dct_matrix()[:8]  # only the 8x8 lowest coefficients are ever used
    dct = low @ frames @ low.T
    dct_bits = dct > np.median(dct.reshape(-1, 64), axis=1)[:, None, None]
    blocks = frames.reshape(-1, 4, 8, 8, 4).mean(axis=(2, 4))
    block_bits = blocks > np.median(blocks.reshape(-1, 32), axis=1)[:, None, None]
    return np.concatenate([dct_bits[:, :4].reshape(-1, 32), block_bits.reshape(-1, 32)], axis=1)


def _to_hash_grid(luma: Floats) -> Floats:
    """(frames, GRID_H, GRID_W) -> (frames, 32, 32) block means."""
    import numpy as np

    fy, fx = GRID_H // HASH_SIDE, GRID_W // HASH_SIDE
    blocks = luma.reshape(-1, HASH_SIDE, fy, HASH_SIDE, fx).sum(axis=4).sum(axis=2)
    return np.asarray(blocks / (fy * fx))


def luma32(sig: Signature) -> Floats:
    """(frames, 32, 32): a signature's luma averaged down to the hash grid."""
    return features(sig).small


def flat_frames(small: Floats) -> list[bool]:
    """Per 32x32 frame: too little contrast for its hash to mean anything (FLAT_FRAME_STD)."""
    return [bool(v < FLAT_FRAME_STD) for v in small.reshape(len(small), -1).std(axis=1)]


def hash_luma(sig: Signature) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Per-frame hash bits of a signature."""
    return features(sig).bits


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
    return _frame_means(_fine(luma) ** 2)


def _fine(luma: Floats) -> Floats:
    """What a 3x3 box blur removes from each frame."""
    import numpy as np

    # edge-replicated border, then the 3x3 box as two separable 3-tap sums
    p = np.concatenate([luma[:, :1], luma, luma[:, -1:]], axis=1)
    p = np.concatenate([p[:, :, :1], p, p[:, :, -1:]], axis=2)
    rows = p[:, :-2] + p[:, 1:-1]
    rows += p[:, 2:]
    fine = rows[:, :, :-2] + rows[:, :, 1:-1]
    fine += rows[:, :, 2:]
    fine *= -1.0 / 9.0
    fine += luma
    return np.asarray(fine)


# The flat-area noise test: blocks of the grid (at pool 1; fewer pixels when pooled),
# the share of them, the flattest in the source, that it looks at, and a floor added to
# both sides' fine-detail energy there (8-bit levels squared per pixel) so that a
# truly flat source (a black frame, a fade) does not divide by nothing. Chosen on the
# calibration corpus (docs/checksum-calibration.md).
FLAT_BLOCK: Final = 8
FLAT_SHARE: Final = 0.25
FLAT_FLOOR: Final = 1.0


def _block_energy(fine: Floats, pool: int) -> Floats:
    """(frames, blocks): fine-detail energy summed over each FLAT_BLOCK / pool block."""
    import numpy as np

    n, h, w = fine.shape
    b = max(1, FLAT_BLOCK // pool)
    energy = fine * fine
    return np.asarray(
        energy.reshape(n, h // b, b, w // b, b).sum(axis=4).sum(axis=2).reshape(n, -1)
    )


def _frame_means(values: Floats) -> Floats:
    """Per-frame mean of the remaining axes, summed in float64."""
    import numpy as np

    flat = values.reshape(len(values), -1)
    return np.asarray(flat.sum(axis=1, dtype=np.float64) / flat.shape[1])


@dataclass(frozen=True, eq=False)
class Features:
    """What every test needs of one side, computed once (see :func:`features`)."""

    luma: Floats  # (frames, GRID_H, GRID_W), float32 (exact for 8-bit levels)
    chroma: Floats  # (frames, 2, GRID_H / 2, GRID_W / 2), float32
    small: Floats  # (frames, 32, 32): the hash grid
    bits: np.ndarray[Any, np.dtype[np.uint8]]  # (frames, 64)
    z: Floats  # (frames, GRID_H * GRID_W): brightness-normalised luma (time test), float32
    scale: float  # mean squared contrast: normalised units -> 8-bit levels squared
    motion: float  # mean absolute frame-to-frame change, 8-bit levels
    pooled: dict[int, tuple[Floats, Floats, Floats, Floats]] = field(default_factory=dict)

    def at(self, pool: int) -> tuple[Floats, Floats, Floats, Floats]:
        """Luma, chroma, per-frame and per-block fine-detail energy on the grid made
        ``pool`` x coarser."""
        import numpy as np

        if pool not in self.pooled:
            luma = _pooled(self.luma, pool)
            blocks = np.concatenate([_block_energy(_fine(x), pool) for x in _frame_blocks(luma)])
            detail = blocks.sum(axis=1, dtype=np.float64) / luma[0].size
            self.pooled[pool] = (luma, _pooled(self.chroma, pool), detail, blocks)
        return self.pooled[pool]


# Frames per step of the fidelity arithmetic: temporaries of a few hundred KB stay in
# the heap; ones the size of a whole segment were returned to the kernel and faulted
# in again on every comparison (7 of 16 ms CPU per rendition).
FRAME_BLOCK: Final = 4


def _frame_blocks(frames: Floats) -> list[Floats]:
    """``frames`` cut into views of FRAME_BLOCK frames."""
    return [frames[i : i + FRAME_BLOCK] for i in range(0, len(frames), FRAME_BLOCK)]


def _features(sig: Signature) -> Features:
    import numpy as np

    # float32 arithmetic (several times faster here than float64), float64 sums
    n = sig.frames
    luma = sig.luma().astype(np.float32)
    small = _to_hash_grid(luma)
    rows = luma.reshape(n, -1)
    z, scale = _normalised(rows)
    # frame by frame: a temporary the size of the whole segment costs more in page
    # faults than the arithmetic
    change = sum(float(np.abs(rows[i + 1] - rows[i]).sum(dtype=np.float64)) for i in range(n - 1))
    motion = change / ((n - 1) * rows.shape[1]) if n > 1 else 0.0
    return Features(
        luma=luma, chroma=sig.chroma().astype(np.float32), small=small,
        bits=hash_grid(small), z=z, scale=scale, motion=motion,
    )  # fmt: skip


# The reference side of a checksum task is the same for every rendition: its
# features are kept for the next comparison (two: a worker may interleave two).
_reference_features = functools.lru_cache(maxsize=2)(_features)


def features(sig: Signature) -> Features:
    """The features of a signature (cached for the last two seen)."""
    return _reference_features(sig)


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
    return _fidelity(features(ref), _features(cand), pool)


def _fidelity(ref: Features, cand: Features, pool: int) -> dict[str, float]:
    import numpy as np

    ry, rc, ref_detail, ref_blocks = ref.at(pool)
    cy, cc, cand_detail, cand_blocks = cand.at(pool)
    luma_mse = np.concatenate(
        [
            _frame_means((r - c) ** 2)
            for r, c in zip(_frame_blocks(ry), _frame_blocks(cy), strict=True)
        ]
    )
    luma = _psnr(luma_mse)
    chroma_mse = np.concatenate(
        [
            _plane_means((r - c) ** 2)
            for r, c in zip(_frame_blocks(rc), _frame_blocks(cc), strict=True)
        ]
    )
    chroma = _psnr(chroma_mse).min(axis=1)
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
        "flat_detail": _flat_detail(ref_blocks, cand_blocks, ry[0].size // ref_blocks.shape[1]),
        **_colour(rc, cc),
    }


def _flat_detail(ref: Floats, cand: Floats, block_pixels: int) -> float:
    """The rendition's fine-detail energy over the source's, on the FLAT_SHARE of
    blocks where the source is flattest: a legitimate encode keeps flat areas flat
    (ringing near an edge at most), noise and garbage fill them."""
    import numpy as np

    flat = ref <= np.quantile(ref, FLAT_SHARE)
    floor = FLAT_FLOOR * block_pixels * int(flat.sum())
    return float(
        (cand[flat].sum(dtype=np.float64) + floor) / (ref[flat].sum(dtype=np.float64) + floor)
    )


def _plane_means(values: Floats) -> Floats:
    """(frames, planes): the mean of each plane of each frame, summed in float64."""
    import numpy as np

    flat = values.reshape(values.shape[0], values.shape[1], -1)
    return np.asarray(flat.sum(axis=2, dtype=np.float64) / flat.shape[2])


def _colour(ref: Floats, cand: Floats) -> dict[str, float]:
    """Does the rendition's colour point where the source's does? ``chroma_corr``: the
    correlation of both sides' chroma deviations from neutral grey, all frames and both
    planes at once - an encode may desaturate (scale) them, a swap, a hue turn or a
    wrong matrix points them elsewhere; ``chroma_energy``: the source's mean squared
    deviation (8-bit levels squared); ``chroma_misfit``: (1 - correlation) x energy,
    about the chroma error per pixel that no desaturation explains - small for any
    encode, however grey the source; large for a swap of any real colour."""
    import numpy as np

    # float32 products of deviations are exact here (quarter levels, at most 128);
    # the sums are float64 (and no BLAS: see _distance_matrix)
    signal = own = cross = 0.0
    for ref_part, cand_part in zip(_frame_blocks(ref), _frame_blocks(cand), strict=True):
        r, c = ref_part - np.float32(128.0), cand_part - np.float32(128.0)
        signal += float((r * r).sum(dtype=np.float64))
        own += float((c * c).sum(dtype=np.float64))
        cross += float((r * c).sum(dtype=np.float64))
    corr = cross / max(float(np.sqrt(signal * own)), 1e-9)
    energy = signal / max(1, ref.size)
    return {"chroma_corr": corr, "chroma_energy": energy, "chroma_misfit": (1.0 - corr) * energy}


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

    mean = frames.mean(axis=1, keepdims=True, dtype=np.float64).astype(frames.dtype)
    z = frames - mean
    std = np.maximum(np.sqrt(_frame_means(z * z)), 2.0)[:, None].astype(frames.dtype)
    z /= std
    return np.asarray(z), float((std.astype(np.float64) ** 2).mean())


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
    return _time(features(ref), _features(cand), margin)


# Multiply-adds per block of :func:`_distance_matrix`: below OpenBLAS's threading threshold.
CROSS_BLOCK_MACS: Final = 400_000


def _distance_matrix(a: Floats, b: Floats) -> Floats:
    """Squared distance between every row of ``a`` and every row of ``b``, in float64,
    over blocks of columns. One product of (frames x 15,360) is large enough for
    OpenBLAS to wake its threads, whose spinning cost 5-25x the product's own CPU
    (measured: 7 ms for 25 frames, 122 ms for 60); blocks this small stay on the
    calling thread (0.9 ms and 5 ms), and their float64 copies stay small."""
    import numpy as np

    block = max(16, CROSS_BLOCK_MACS // max(1, len(a) * len(b)))
    cross = np.zeros((len(a), len(b)))
    a_norms, b_norms = np.zeros(len(a)), np.zeros(len(b))
    for i in range(0, a.shape[1], block):
        x = a[:, i : i + block].astype(np.float64)
        y = b[:, i : i + block].astype(np.float64)
        cross += x @ y.T
        a_norms += np.einsum("fp,fp->f", x, x)
        b_norms += np.einsum("fp,fp->f", y, y)
    return np.asarray(a_norms[:, None] + b_norms[None, :] - 2.0 * cross)


def _time(ref: Features, cand: Features, margin: float) -> dict[str, float]:
    import numpy as np

    n = len(ref.z)
    # err[i, j]: candidate frame i against source frame j, all pairs by one product
    sq = _distance_matrix(cand.z, ref.z)
    err = np.maximum(sq / ref.z.shape[1], 0.0) + 0.25 / ref.scale  # + 8-bit rounding noise
    own = np.diag(err).copy()
    retimed, gain = retimed_fit(own, err)
    gain *= ref.scale  # back to 8-bit levels squared
    others = err.copy()
    np.fill_diagonal(others, np.inf)
    nearest = others.min(axis=1) if n > 1 else own
    visible = (own - nearest) * ref.scale > MIN_RETIMED_GAIN
    misplaced = float(np.mean((nearest < margin * own) & visible))
    kept = cand.motion / ref.motion if ref.motion > MOTION_FLOOR else 1.0
    return {"retimed": retimed, "retimed_gain": gain, "misplaced": misplaced,
            "motion_kept": kept, "motion": ref.motion}  # fmt: skip


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
        ("flat_detail", ">", t.flat_detail_max, "detail {:.2f}x the source's in flat areas > {}"),
        ("chroma_misfit", ">", t.chroma_misfit, "colours off the source's by {:.1f} levels^2 > {}"),
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
    rf, cf = features(ref), _features(cand)
    distances = _distances(rf.bits, cf.bits)
    scores: dict[str, float] = {}
    if ref.frames == cand.frames:
        flat = flat_frames(rf.small)
        textured = [d for d, f in zip(distances, flat, strict=True) if not f]
        # nothing but flat frames: no hash to trust, the other tests judge them
        scores["hash_max"] = float(max(textured, default=0))
        scores["hash_mean"] = sum(textured) / len(textured) if textured else 0.0
        scores["timing_error"] = timing_error(ref, cand)
        scores.update(_fidelity(rf, cf, pool_for(cand.size)))
        scores.update(_time(rf, cf, t.misplaced_margin))
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
