"""Outlier-preserving downsampling: a big tensor shrunk to screen size without losing a hotspot.

Averaging blocks of a 50,000 x 1,600 matrix would dilute a single weight of 40 among 97 of size
0.02 into grey; here each output pixel is the *signed value of largest |w|* in its block, so the
hotspot survives at full strength in the right place. A block holding a NaN or ±Inf becomes NaN,
so non-finite values stay visible too (they are drawn in their own colour).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def block_step(n: int, max_pixels: int) -> int:
    """Values per block along an axis of length `n`, so that ceil(n / step) <= max_pixels."""
    return max(1, -(-n // max_pixels))


@dataclass(frozen=True, eq=False)
class Downsampled:
    """A matrix shrunk block by block.

    `image` has shape (ceil(m / row_step), ceil(n / col_step)); pixel (i, j) covers rows
    [i * row_step, (i + 1) * row_step) and columns [j * col_step, (j + 1) * col_step) of the input
    (the last block of each axis may be shorter). `lo` and `hi` are the input's smallest and
    largest finite values (NaN when it has none).
    """

    image: np.ndarray
    row_step: int
    col_step: int
    lo: float
    hi: float


def block_extreme(
    a: np.ndarray, max_pixels: int, *, steps: tuple[int, int] | None = None
) -> Downsampled:
    """Shrink a matrix of shape (m, n) to at most `max_pixels` per side, keeping extremes.

    Each pixel is the value of largest magnitude in its block, with its sign (a tie between +x
    and -x gives +x); NaN where the block holds a non-finite value. Steps are 1 (a plain copy)
    where the axis already fits; `steps` = (row_step, col_step) overrides them (to make blocks
    whole conv kernels).

    >>> block_extreme(np.array([[1.0, -3.0, 2.0, 0.0]]), max_pixels=2).image
    array([[-3.,  2.]])
    """
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32)
    m, n = a.shape
    rs, cs = steps or (block_step(m, max_pixels), block_step(n, max_pixels))
    if rs == 1:
        hi_rows, lo_rows = a, a
    else:
        # one contiguous slab of rows at a time: no temporary the size of the input
        starts = range(0, m, rs)
        hi_rows = np.empty((len(starts), n), a.dtype)
        lo_rows = np.empty((len(starts), n), a.dtype)
        for i, s in enumerate(starts):
            np.max(a[s : s + rs], axis=0, out=hi_rows[i])
            np.min(a[s : s + rs], axis=0, out=lo_rows[i])
    if cs == 1:
        hi, lo = hi_rows, lo_rows
    else:
        cols = np.arange(0, n, cs)
        hi = np.maximum.reduceat(hi_rows, cols, axis=1)
        lo = np.minimum.reduceat(lo_rows, cols, axis=1)
    # NaN propagates through max/min, and ±Inf always wins on magnitude: non-finite blocks
    # come out non-finite, and are made NaN
    image = np.where(hi >= -lo, hi, lo)
    finite = np.isfinite(image)
    if finite.all():
        return Downsampled(image, rs, cs, float(lo.min()), float(hi.max()))
    image[~finite] = np.nan
    ok = np.isfinite(a)
    top = float(np.max(a, where=ok, initial=-np.inf))
    bottom = float(np.min(a, where=ok, initial=np.inf))
    if not ok.any():
        top = bottom = float("nan")
    return Downsampled(image, rs, cs, bottom, top)


@dataclass(frozen=True, eq=False)
class Envelope:
    """A vector shrunk to its per-block minimum and maximum (equal where `step` is 1).

    `x` are the block centres in index units, `lo`/`hi` the smallest and largest finite value of
    each block (NaN for a block with none), `nonfinite` the indices of NaN/Inf values.
    """

    x: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    step: int
    nonfinite: np.ndarray


def envelope(v: np.ndarray, max_points: int) -> Envelope:
    """The min/max envelope of a vector of length n in at most `max_points` blocks.

    >>> e = envelope(np.array([0.0, 5.0, -1.0, 2.0, 3.0]), max_points=3)
    >>> e.x.tolist(), e.lo.tolist(), e.hi.tolist()
    ([0.5, 2.5, 4.0], [0.0, -1.0, 3.0], [5.0, 2.0, 3.0])
    """
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    n = v.size
    step = block_step(n, max_points)
    finite = np.isfinite(v)
    clean = np.where(finite, v, np.nan)
    starts = np.arange(0, n, step)
    ends = np.minimum(starts + step, n)
    x = (starts + ends - 1) / 2.0
    if step == 1:
        return Envelope(x, clean, clean.copy(), 1, np.flatnonzero(~finite))
    # fmin/fmax skip NaN, so one NaN does not hide its block's finite values
    lo = np.fmin.reduceat(clean, starts)
    hi = np.fmax.reduceat(clean, starts)
    return Envelope(x, lo, hi, step, np.flatnonzero(~finite))
