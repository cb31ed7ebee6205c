"""Colour scales: how far from zero a weight must be before its pixel saturates.

The scale is symmetric about zero (weights are signed; white means 0) and robust: one hotspot of
|w| = 50 among weights of size 0.02 must not turn the rest of the image white. The limit is the
99.9th percentile of |w| over the finite values, so 0.1% of the weights saturate, and the
colourbar says so.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: share of the finite |w| left below the saturation point
PERCENTILE = 99.9
#: above this many values the percentile is estimated from a fixed-seed sample of this size
SAMPLE = 1 << 20


class ColorLimit(NamedTuple):
    """A symmetric colour range [-vmax, vmax] and the rule that chose it, in words."""

    vmax: float
    how: str


def color_limit(w: np.ndarray, percentile: float = PERCENTILE, of: str = "|w|") -> ColorLimit:
    """The symmetric, robust colour limit of values `w`: the `percentile`-th percentile of |w|.

    `of` names the values in the rule's words: a downsampled picture is scaled by its own
    pixels ("|pixels|"), each the largest |w| of its block, so typical pixels stay mid-tone and
    only true outliers saturate.

    Non-finite values are left out. Tensors past `SAMPLE` values use a sample of that size drawn
    with a fixed seed (the estimate of the 99.9th percentile then has ~1000 values above it).
    Where the percentile is 0 (a mostly-zero tensor) the limit is max |w|; with no nonzero
    finite value it is 1.

    >>> color_limit(np.array([-2.0, 0.5, 1.0, 4.0]), percentile=100.0)
    ColorLimit(vmax=4.0, how='max |w|')
    >>> color_limit(np.zeros(3)).how
    'all zeros'
    """
    flat = np.asarray(w).reshape(-1)
    sampled = flat.size > SAMPLE
    if sampled:
        flat = flat[np.random.default_rng(0).integers(0, flat.size, SAMPLE)]
    a = np.abs(flat[np.isfinite(flat)]).astype(np.float64)
    if a.size == 0 and sampled:  # a mostly non-finite tensor: use every finite value there is
        sampled, full = False, np.asarray(w).reshape(-1)
        a = np.abs(full[np.isfinite(full)]).astype(np.float64)
    if a.size == 0:
        return ColorLimit(1.0, "no finite values")
    vmax = float(np.percentile(a, percentile))
    if vmax > 0:
        rule = f"max {of}" if percentile >= 100 else f"{percentile:g}th pct of {of}"
        return ColorLimit(vmax, rule + (", sampled" if sampled else ""))
    # a sample may miss the rare nonzeros of a sparse tensor; the max over all values does not
    top = float(np.max(np.abs(np.where(np.isfinite(w), w, 0)))) if sampled else float(a.max())
    if top > 0:
        return ColorLimit(top, f"max {of}; most are 0")
    return ColorLimit(1.0, "all zeros")


def format_limit(limit: ColorLimit) -> str:
    """The colourbar's words for a limit: 'saturates at ±0.0421 (99.9th pct of |w|)'."""
    return f"saturates at ±{limit.vmax:.3g} ({limit.how})"
