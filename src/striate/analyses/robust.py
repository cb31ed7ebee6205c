"""Robust location and scale: median, MAD-based sigma and robust z-scores over finite values.

Every helper ignores NaN and ±Inf, so one bad value never poisons a statistic, and is scaled to
estimate the standard deviation of a Gaussian bulk without being moved by the outliers we look
for:

    sigma = 1.4826 * median(|x - median(x)|)        (MAD; 1.4826 = 1 / Phi^-1(3/4))

When more than half the values are identical (a sparse or pruned tensor, a gain left at its
init), MAD is 0. The fallback is the mean absolute deviation from the median, times
sqrt(pi / 2) = 1.2533, which is again the sigma of a Gaussian and is > 0 as soon as any value
differs. Only when every finite value is equal is sigma 0; then nothing stands out and every
robust z is 0.

The scale of each line (row or column) of a weight matrix, whose values are centred on zero,
is `line_sigma`: the RMS of the line with its largest 10% of |x| left out, times 1.2669 (the
Gaussian constant for that trim), else 1.2533 * mean(|x|) when that is 0. It is as robust as a
median to a few huge values in the line, and far steadier on short lines: for a Gaussian line of
m values a median-based scale comes out k times too small with probability ~ k^(-m/2), the
trimmed RMS with ~ k^(-0.9 m), which is what keeps a 30-entry column from faking hotspots.

Example:
    >>> import numpy as np
    >>> median_sigma(np.array([1.0, 2.0, 3.0, 4.0, 100.0, np.nan]))
    (3.0, 1.4826)
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from statistics import NormalDist

import numpy as np

__all__ = [
    "MAD_TO_SIGMA",
    "MEAN_AD_TO_SIGMA",
    "TRIM",
    "TRIMMED_TO_SIGMA",
    "expected_count",
    "expected_text",
    "finite_values",
    "line_mean_abs",
    "line_medians",
    "line_sigma",
    "median",
    "median_sigma",
    "robust_z",
    "sigma_from_deviations",
]

MAD_TO_SIGMA = 1.4826  # sigma / MAD for a Gaussian; also sigma / median|x| for N(0, sigma)
MEAN_AD_TO_SIGMA = 1.2533  # sqrt(pi / 2): sigma / mean absolute deviation for a Gaussian


def expected_count(z: np.ndarray | float, n_tests: int, *, two_sided: bool = True) -> np.ndarray:
    """log10 of the expected number of N(0, 1) values at least as extreme as |z| among n_tests.

    Computed in log space (`scipy.special.log_ndtr`), so a z of 1000 gives about -217000, not
    -inf; -log10 of it is a finding's `significance`. NaN where z is NaN.

        >>> round(float(expected_count(5.0, 100)), 3)  # 200 * Phi(-5) = 5.7e-5
        -4.242
    """
    from scipy.special import log_ndtr

    tails = 2 * n_tests if two_sided else n_tests
    logp = log_ndtr(-np.abs(np.asarray(z, dtype=np.float64)))
    return np.asarray(math.log10(max(tails, 1)) + logp / math.log(10))


def expected_text(significance: float) -> str:
    """10**-significance as short text, also where the float would underflow: "1e-573"."""
    if significance > 300:
        return f"1e-{significance:.0f}"
    return f"{10**-significance:.2g}"


def finite_values(x: np.ndarray) -> np.ndarray:
    """The finite values of `x` as a 1-D array of shape (n_finite,); a view when all are finite."""
    flat = np.asarray(x).ravel()
    finite = np.isfinite(flat)
    return flat if bool(finite.all()) else flat[finite]


def _line_groups(a: np.ndarray, axis: int) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """The lines of the 2-D `a` along `axis`, grouped by their number of finite values n_ok.

    Yields (line indices, copy of those lines as rows (k, length) with every non-finite value
    set to +inf so that it sorts past the finite ones, n_ok); groups with n_ok = 0 are skipped.
    Usually there is one group: a single copy of `a`, laid out so that lines are contiguous.
    """
    x = a if axis == 1 else a.T  # (n_lines, length)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, a float64 overflow
        total = a.sum(dtype=np.float64)
    if np.isfinite(total):  # every value finite (a NaN or inf would show; float64 sums of
        # float32 or narrower values cannot overflow): one read, no masks
        if x.shape[1]:
            yield np.arange(x.shape[0]), np.array(x, order="C"), x.shape[1]
        return
    n_bad = np.count_nonzero(~np.isfinite(x), axis=1)
    for k in np.unique(n_bad):
        n_ok = x.shape[1] - int(k)
        if n_ok == 0:
            continue
        rows = np.flatnonzero(n_bad == k)
        sub = np.array(x if rows.size == x.shape[0] else x[rows], order="C")
        if k:
            sub[~np.isfinite(sub)] = np.inf
        yield rows, sub, n_ok


def line_medians(a: np.ndarray, axis: int) -> np.ndarray:
    """Median of the finite values of each line of the 2-D `a` along `axis` (0 or 1).

    Returns float64 of shape (a.shape[1 - axis],), NaN for a line with no finite value. Exact
    (the mean of the two middle values for an even count) and about twice as fast as
    `np.median`: one partition per line instead of two.
    """
    out = np.full(a.shape[1 - axis], np.nan)
    for rows, sub, n_ok in _line_groups(a, axis):
        h = n_ok // 2
        sub.partition(h, axis=1)
        med = sub[:, h].astype(np.float64)
        if n_ok % 2 == 0:
            med = (med + sub[:, :h].max(axis=1)) / 2
        out[rows] = med
    return out


def median(x: np.ndarray) -> float:
    """Exact median of the finite values of `x` (any shape); NaN if there are none."""
    return float(line_medians(np.asarray(x).reshape(1, -1), 1)[0])


def sigma_from_deviations(dev: np.ndarray) -> float:
    """Robust sigma from finite absolute deviations `dev` (1-D, >= 0): 1.4826 * median, falling
    back to 1.2533 * mean when the median is 0. NaN for an empty array, 0 when all are 0."""
    if dev.size == 0:
        return float("nan")
    sigma = MAD_TO_SIGMA * median(dev)
    if sigma == 0.0:
        sigma = MEAN_AD_TO_SIGMA * float(np.mean(dev, dtype=np.float64))
    return sigma


def median_sigma(x: np.ndarray) -> tuple[float, float]:
    """(median, robust sigma) of the finite values of `x` (any shape); (nan, nan) if none."""
    v = finite_values(x)
    if v.size == 0:
        return float("nan"), float("nan")
    med = median(v)
    return med, sigma_from_deviations(np.abs(v - v.dtype.type(med)))


def robust_z(x: np.ndarray, *, floor: float = 0.0) -> tuple[np.ndarray, float, float]:
    """Robust z-scores of `x` (any shape) against its own finite values, and (median, sigma).

    Returns `(z, median, sigma)`: `z` has the shape of `x` in float64, NaN where `x` is not
    finite, and all 0 where finite when sigma is 0 (every finite value equal: nothing stands out).
    `floor` is a least sigma, so that float noise around a constant does not score.
    """
    med, sigma = median_sigma(x)
    sigma = max(sigma, floor) if np.isfinite(sigma) else sigma
    xf = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(xf)
    z = np.full(xf.shape, np.nan)
    if not (sigma > 0.0 and np.isfinite(sigma)):
        z[finite] = 0.0
        return z, med, sigma
    z[finite] = (xf[finite] - med) / sigma
    return z, med, sigma


def _trimmed_to_sigma(trim: float) -> float:
    """sigma / RMS of a Gaussian sample with its largest `trim` fraction of |x| left out."""
    q = NormalDist().inv_cdf(1 - trim / 2)
    kept_mean_square = 1 - 2 * q * math.exp(-q * q / 2) / math.sqrt(2 * math.pi) / (1 - trim)
    return 1 / math.sqrt(kept_mean_square)


TRIM = 0.1  # fraction of the largest |x| of a line left out of `line_sigma`
TRIMMED_TO_SIGMA = _trimmed_to_sigma(TRIM)  # 1.2669


def line_sigma(a: np.ndarray, axis: int) -> np.ndarray:
    """Per-line sigma of values centred on zero, along `axis` (0 or 1) of the 2-D `a`.

    The RMS of the finite values of each line with its largest `TRIM` (10%, at least one) of
    |x| left out, times 1.2669; where that is 0 (a mostly-zero line), 1.2533 * mean |x|. Returns
    float64 of shape (a.shape[1 - axis],): 0 for a line of exact zeros, NaN for a line with no
    finite value. The sums of squares are in float32 (relative error ~1e-6; only ratios of
    scales are used), each line divided by its own largest kept |x| so that they cannot overflow.
    """
    out = np.full(a.shape[1 - axis], np.nan)
    for rows, kept in _trimmed_lines(a, axis):
        keep = kept.shape[1]
        top = kept.max(axis=1)  # (k,) largest kept |x| of each line
        unit = kept / np.where(top > 0, top, 1)[:, None]
        mean_square = np.einsum("ij,ij->i", unit, unit) / keep
        out[rows] = TRIMMED_TO_SIGMA * top.astype(np.float64) * np.sqrt(mean_square)
    zero = np.flatnonzero(out == 0)
    if zero.size:
        lines = np.take(a, zero, axis=1 - axis)  # the mostly-zero lines only
        ok = np.isfinite(lines)
        total = np.sum(np.where(ok, np.abs(lines), 0), axis=axis, dtype=np.float64)
        out[zero] = MEAN_AD_TO_SIGMA * total / np.count_nonzero(ok, axis=axis)
    return out


def line_mean_abs(a: np.ndarray, axis: int) -> np.ndarray:
    """Per-line trimmed mean of |x| along `axis` (0 or 1) of the 2-D `a`: the mean of the finite
    |x| of each line with its largest `TRIM` (10%, at least one) left out.

    Returns float64 of shape (a.shape[1 - axis],): 0 for a line of zeros, NaN for a line with no
    finite value. Less precise than `line_sigma` on Gaussian lines, but its distribution over
    lines keeps nearly the same shape from Gaussian to Student-t(3) weights, which is what a
    significance test of line scales needs (see `striate.analyses.lines`).
    """
    out = np.full(a.shape[1 - axis], np.nan)
    for rows, kept in _trimmed_lines(a, axis):
        out[rows] = kept.mean(axis=1, dtype=np.float64)
    return out


def _trimmed_lines(a: np.ndarray, axis: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(line indices, the |x| of those lines with their largest `TRIM` (10%, at least one)
    left out, unordered, shape (k, keep)) for the lines of `a` along `axis` with a finite value."""
    for rows, sub, n_ok in _line_groups(a, axis):
        np.abs(sub, out=sub)
        keep = max(1, n_ok - max(1, round(TRIM * n_ok)))
        if keep < sub.shape[1]:
            sub.partition(keep, axis=1)
        yield rows, sub[:, :keep]
