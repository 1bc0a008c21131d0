"""The change test: do the rendition's frame-to-frame changes line up with the source's?

The time test's frame comparison (:mod:`kinoit.media.scores`) asks whether a
rendition frame looks more like another source frame than its own. On a
near-still shot that error is mostly encoding noise, the same under every
hypothesis, and a legitimate low-bitrate encode that lags a slow sway looks
re-timed to it. This test compares *changes* instead: d_src(j) = S(j+1) - S(j)
and d_ren(i) = R(i+1) - R(i), on the brightness- and contrast-normalised luma
grid (a fade is no change). Noise that persists from frame to frame (skipped
blocks, a frozen background) cancels in a difference; what is left is the
small motion of the shot (a mouth, a cursor, a sway, grain), and it shows where
the rendition's frames come from.

For every re-timing hypothesis the frame test enumerates - a shift by k in
+-1..MAX_SHIFT of the whole segment or of the frames from some frame on or up
to it (a dropped or a duplicated frame), reversed (changes of opposite sign;
a frozen stretch has no changes, the frame test judges it) - the pooled
correlation of d_ren(i) with d_src(map(i)) over the changes it covers is
compared with the correlation "as is", d_ren(i) with d_src(i), over the same
changes; each leaves out the one change that favours the hypothesis most, so a
single frame an encoder smeared across a cut re-times nothing. Each gain is
weighed by the share of the source's change amplitude the rendition carries over
those changes (at most 1): where a rendition keeps next to no change (a pan come
to rest, its grain smoothed away), what is left is encoder structure - B-frames
echoing the next reference - whose correlation means nothing. The score
``change_retimed`` is the largest weighted gain; a legitimate rendition's best
hypothesis gains next to nothing.

It costs no product of its own: every inner product of two changes is four
entries of the frame test's cross products (see :func:`change_products`).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import numpy as np

    Floats = np.ndarray[Any, np.dtype[np.floating[Any]]]

# The hypotheses (the same shifts as the frame test's re-timings): each must cover
# at least MIN_CHANGES changes.
MAX_SHIFT: Final = 5
MIN_CHANGES: Final = 4
# Added to each energy sum, per pixel (normalised units squared): keeps a frozen
# stretch (no change on either side) at correlation 0 rather than 0 / 0.
ENERGY_FLOOR: Final = 1e-6


@functools.cache
def _hypotheses(m: int) -> tuple[Any, Any, Any, Any]:
    """Every hypothesis for ``m`` changes as padded (rows, cols) index arrays, the
    mask of real entries and the sign of each (-1: reversed), built once per count."""
    import numpy as np

    maps: list[tuple[Any, Any, float]] = []
    idx = np.arange(m)
    for k in [*range(-MAX_SHIFT, 0), *range(1, MAX_SHIFT + 1)]:
        for d in range(m):
            for rows in (idx[d:], idx[:d]):  # the changes from d on, or before d, shifted
                rows = rows[(rows + k >= 0) & (rows + k < m)]
                if len(rows) >= MIN_CHANGES and (d == 0 or len(rows) < m):
                    maps.append((rows, rows + k, 1.0))
    rows = idx[2 * idx != m - 1]  # reversed: R(i+1) - R(i) = -(S(j+1) - S(j)), j = m-1-i
    if len(rows) >= MIN_CHANGES:
        maps.append((rows, m - 1 - rows, -1.0))
    width = max((len(r) for r, _, _ in maps), default=1)
    out_rows = np.zeros((len(maps), width), dtype=np.intp)
    out_cols = np.zeros((len(maps), width), dtype=np.intp)
    mask = np.zeros((len(maps), width), dtype=bool)
    sign = np.array([s for _, _, s in maps], dtype=np.float64)
    for h, (r, c, _) in enumerate(maps):
        out_rows[h, : len(r)], out_cols[h, : len(r)], mask[h, : len(r)] = r, c, True
    return out_rows, out_cols, mask, sign


def change_products(
    cross: Floats, cand_sq: Floats, ref_sq: Floats, cand_adj: Floats, ref_adj: Floats
) -> tuple[Floats, Floats, Floats]:
    """The inner products of every rendition change with every source change, and
    each change's energy, from the frames' own products (pure): with X = R S^T,
    d_ren(i) . d_src(j) = X[i+1, j+1] - X[i+1, j] - X[i, j+1] + X[i, j];
    |d(i)|^2 = |F(i+1)|^2 + |F(i)|^2 - 2 F(i+1) . F(i) (``*_adj``: F(i+1) . F(i))."""
    import numpy as np

    c = cross[1:, 1:] - cross[1:, :-1] - cross[:-1, 1:] + cross[:-1, :-1]
    cand = np.maximum(cand_sq[1:] + cand_sq[:-1] - 2.0 * cand_adj, 0.0)
    ref = np.maximum(ref_sq[1:] + ref_sq[:-1] - 2.0 * ref_adj, 0.0)
    return np.asarray(c), np.asarray(cand), np.asarray(ref)


def change_fit(c: Floats, cand: Floats, ref: Floats, pixels: int) -> float:
    """``change_retimed``: the largest gain in pooled change correlation that any
    re-timing hypothesis has over "as is" (0 when there are too few changes; pure).
    ``c``: (m, m) inner products of rendition and source changes; ``cand``, ``ref``:
    (m,) energies; ``pixels``: per frame (scales the energy floor)."""
    import numpy as np

    m = len(ref)
    if m < MIN_CHANGES or c.shape != (m, m) or len(cand) != m:
        return 0.0
    rows, cols, mask, sign = _hypotheses(m)
    if not len(rows):
        return 0.0
    own = c[rows, rows]
    theirs = sign[:, None] * c[rows, cols]
    # leave out, per hypothesis, the change that favours it most
    favour = np.where(mask, theirs - own, -np.inf)
    keep = mask.copy()
    keep[np.arange(len(rows)), np.argmax(favour, axis=1)] = False
    floor = ENERGY_FLOOR * pixels
    cand_energy = np.where(keep, cand[rows], 0.0).sum(axis=1) + floor
    ref_energy = np.where(keep, ref[rows], 0.0).sum(axis=1) + floor
    as_is = np.where(keep, own, 0.0).sum(axis=1) / np.sqrt(cand_energy * ref_energy)
    retimed = np.where(keep, theirs, 0.0).sum(axis=1) / np.sqrt(
        cand_energy * (np.where(keep, ref[cols], 0.0).sum(axis=1) + floor)
    )
    # a correlation of changes the rendition hardly has is noise (an encoder's B-frames
    # echo the next reference into a still stretch): weigh it by the share of the
    # source's change amplitude the rendition carries over those changes
    carried = np.minimum(1.0, np.sqrt(cand_energy / ref_energy))
    return float(np.max((retimed - as_is) * carried))
