"""The scores behind the checksum's verdict, computed on both sides' signatures: the
per-frame ``dct32-block32`` hash bits, each side's features (computed once; the
reference's kept for the next rendition), the fidelity scores (PSNR of luma and
chroma, error against the source's detail, detail added, flat-area detail, colour),
the time scores (re-timing hypotheses, misplaced frames, motion) and the timestamp
error. :mod:`kinoit.media.checksum` judges them against calibrated thresholds.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from kinoit.media.changes import change_fit, change_products
from kinoit.media.signature import GRID_H, GRID_W, Signature

if TYPE_CHECKING:
    import numpy as np

    Floats = np.ndarray[Any, np.dtype[np.floating[Any]]]

HASH_SIDE: Final = 32
HASH_BITS: Final = 64
# A re-timing must improve the fit by this much (mean squared 8-bit levels on the
# grid) to count: below it, the rendition's frames are where they belong as far as
# anyone can see.
MIN_RETIMED_GAIN: Final = 0.3


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
    """(frames, GRID_H, GRID_W) -> (frames, 32, 32) block means.

    The block sums are sums of whole 8-bit levels, exact in float32 in any order, so
    they are added as fx, then fy, strided planes: NumPy's reduction over a short
    axis of a 5-D view cost 1.45 ms a segment here, the plane additions 0.2."""
    import numpy as np

    fy, fx = GRID_H // HASH_SIDE, GRID_W // HASH_SIDE
    cols = luma[:, :, 0::fx].copy()
    for k in range(1, fx):
        cols += luma[:, :, k::fx]
    blocks = cols[:, 0::fy].copy()
    for k in range(1, fy):
        blocks += cols[:, k::fy]
    return np.asarray(blocks / (fy * fx))


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
    chroma_fine: dict[int, Floats] = field(default_factory=dict)

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

    def chroma_detail(self, pool: int) -> Floats:
        """(frames,): fine-detail energy of the chroma planes (both, mean) at ``pool``."""
        import numpy as np

        if pool not in self.chroma_fine:
            chroma = self.at(pool)[1]
            n = len(chroma)
            planes = chroma.reshape(n * 2, *chroma.shape[2:])
            energy = np.concatenate([_frame_means(_fine(x) ** 2) for x in _frame_blocks(planes)])
            self.chroma_fine[pool] = energy.reshape(n, 2).mean(axis=1)
        return self.chroma_fine[pool]


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
# The same for the chroma error (8-bit levels squared per pixel): a near-grey source has
# next to no chroma detail, and its legitimate encodes still err by a level or two.
# Chosen on the calibration corpus (a sweep of 1, 2, 4, 8: the largest that lost no catch;
# docs/checksum-calibration.md).
CHROMA_ERROR_FLOOR: Final = 4.0


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
    # chroma error against the source's own chroma detail: a legitimate encode loses at
    # most that detail; noise on grey or textured footage, or a swap of faint colours,
    # errs beyond it even where the error is too small for an absolute PSNR floor
    chroma_relative = chroma_mse.mean(axis=1) / (ref.chroma_detail(pool) + CHROMA_ERROR_FLOOR)
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
        "chroma_error": float(chroma_relative.mean()),
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
    # the sums are float64 (and no BLAS: see _products)
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
      source's, and the source's (mean absolute levels), for reports;
    - ``change_retimed``: the same hypotheses on the frame-to-frame changes
      (:mod:`kinoit.media.changes`), from the same products.
    """
    return _time(features(ref), _features(cand), margin)


# Multiply-adds per block of :func:`_products`: below OpenBLAS's threading threshold.
CROSS_BLOCK_MACS: Final = 400_000


def _products(a: Floats, b: Floats) -> tuple[Floats, ...]:
    """Every row of ``a`` times every row of ``b``, each row's squared norm, and each
    row times the next of its own side, in float64, over blocks of columns. One
    product of (frames x 15,360) is large enough for OpenBLAS to wake its threads,
    whose spinning cost 5-25x the product's own CPU (measured: 7 ms for 25 frames,
    122 ms for 60); blocks this small stay on the calling thread (0.9 ms and 5 ms),
    and their float64 copies stay small."""
    import numpy as np

    block = max(16, CROSS_BLOCK_MACS // max(1, len(a) * len(b)))
    cross = np.zeros((len(a), len(b)))
    a_norms, b_norms = np.zeros(len(a)), np.zeros(len(b))
    a_adj, b_adj = np.zeros(max(0, len(a) - 1)), np.zeros(max(0, len(b) - 1))
    for i in range(0, a.shape[1], block):
        x = a[:, i : i + block].astype(np.float64)
        y = b[:, i : i + block].astype(np.float64)
        cross += x @ y.T
        a_norms += np.einsum("fp,fp->f", x, x)
        b_norms += np.einsum("fp,fp->f", y, y)
        a_adj += np.einsum("fp,fp->f", x[1:], x[:-1])
        b_adj += np.einsum("fp,fp->f", y[1:], y[:-1])
    return cross, a_norms, b_norms, a_adj, b_adj


def _time(ref: Features, cand: Features, margin: float) -> dict[str, float]:
    import numpy as np

    n = len(ref.z)
    # err[i, j]: candidate frame i against source frame j, all pairs by one product
    cross, cand_sq, ref_sq, cand_adj, ref_adj = _products(cand.z, ref.z)
    sq = cand_sq[:, None] + ref_sq[None, :] - 2.0 * cross
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
    changes = change_fit(*change_products(cross, cand_sq, ref_sq, cand_adj, ref_adj), ref.z[0].size)
    return {"retimed": retimed, "retimed_gain": gain, "misplaced": misplaced,
            "motion_kept": kept, "motion": ref.motion, "change_retimed": changes}  # fmt: skip


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
