"""Summary statistics of one tensor: the numeric columns of `tensors.parquet`.

Every statistic except the counts is over the finite values only, so a NaN or Inf never poisons
it; `n_nan` and `n_inf` say how many were left out. An empty or all-non-finite tensor gets NaN
statistics and correct counts, without warnings.

Definitions (x = the finite values, n = their number):

    mean, std            population moments (ddof = 0), as `np.mean` / `np.std`
    kurtosis             Fisher excess kurtosis m4 / m2^2 - 3 (0 for a Gaussian, biased
                         estimator, as `scipy.stats.kurtosis` by default); NaN when m2 = 0
    median, robust_sigma the median and 1.4826 * MAD (see `striate.analyses.robust` for the
                         fallback when MAD = 0)
    frac_beyond_6sigma   fraction of x with |x - median| > 6 * robust_sigma; about 2e-9 for a
                         Gaussian, so anything above ~1e-6 means heavy tails or outliers

Precision: the moment sums are accumulated in float64, in chunks of 2^20 values so that a huge
tensor never has a float64 copy; median and MAD are computed exactly on the float32 values.

Cost: `tensor_stats` runs on every tensor of a scan and of `striate spectra`, so it makes few
passes over the values: the float64 sum doubles as the test for non-finite values (a float64 sum
of float32 values is finite exactly when they all are), the centred moments reuse one float64
buffer, and the median, the deviations from it and their median (the MAD) share one float32 copy
that is partitioned in place (one copy, two partitions; no sort).
"""

from __future__ import annotations

import numpy as np

from striate.analyses.robust import (
    MAD_TO_SIGMA,
    MEAN_AD_TO_SIGMA,
    finite_values,
    sigma_from_deviations,
)

__all__ = ["STAT_KEYS", "summary_stats", "tensor_stats"]

#: the keys of `tensor_stats`, in column order
STAT_KEYS = (
    "numel", "mean", "std", "min", "max", "abs_max", "n_nan", "n_inf", "n_zero",
    "median", "robust_sigma", "kurtosis", "frac_beyond_6sigma",
)  # fmt: skip

_CHUNK = 1 << 20  # values per float64 chunk


def _sum(x: np.ndarray) -> float:
    """Sum of the 1-D `x` in float64, by chunks of `_CHUNK` values (no float64 copy)."""
    chunks = range(0, x.size, _CHUNK)
    return sum(float(np.add.reduce(x[i : i + _CHUNK], dtype=np.float64)) for i in chunks)


def _centred_moments(x: np.ndarray, mean: float) -> tuple[float, float]:
    """(m2, m4) of the 1-D finite values `x` about `mean`: float64 sums by chunk, one buffer."""
    n = x.size
    buf = np.empty(min(n, _CHUNK))  # (chunk,) float64, reused: squared deviations
    m2 = m4 = 0.0
    for i in range(0, n, _CHUNK):
        d2 = buf[: min(_CHUNK, n - i)]
        np.subtract(x[i : i + _CHUNK], mean, out=d2, dtype=np.float64)
        np.square(d2, out=d2)
        m2 += float(np.add.reduce(d2))
        m4 += float(np.dot(d2, d2))
    return m2 / n, m4 / n


def _finite_and_sum(flat: np.ndarray) -> tuple[np.ndarray, float, int]:
    """(finite values of the 1-D float `flat`, their float64 sum, number of NaN).

    One pass when all are finite: a finite sum means that every value is (a float64 sum of
    float32 values cannot overflow; one of float64 values that does is checked value by value).
    """
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, or float64 overflow
        total = _sum(flat)
    if np.isfinite(total):
        return flat, total, 0
    x = finite_values(flat)  # float64 values may also overflow the sum: then x is flat
    return x, total if x is flat else _sum(x), int(np.count_nonzero(np.isnan(flat)))


def summary_stats(w: np.ndarray) -> dict[str, float | int]:
    """min, max, mean, std over the finite values and the NaN / Inf counts, for any dtype.

    The cheap part of `tensor_stats` (no median or MAD), for showing a tensor: a 28M-value
    embedding takes ~0.1 s. Statistics are NaN when no value is finite.

        >>> summary_stats(np.array([1, 3], dtype=np.int8))["mean"]
        2.0
    """
    flat = np.asarray(w).ravel()
    if flat.dtype.kind in "fc":
        x, total, n_nan = _finite_and_sum(flat)
    else:
        x, total, n_nan = flat, _sum(flat), 0
    out: dict[str, float | int] = {"n_nan": n_nan, "n_inf": int(flat.size - x.size - n_nan)}
    if x.size == 0:
        return out | dict.fromkeys(("min", "max", "mean", "std"), float("nan"))
    mean = total / x.size
    m2, _ = _centred_moments(x, mean)
    return out | {"min": float(np.min(x)), "max": float(np.max(x)), "mean": mean,
                  "std": float(np.sqrt(m2))}  # fmt: skip


def tensor_stats(w: np.ndarray) -> dict[str, float | int]:
    """Summary statistics of `w` (any shape, any float dtype), keyed by `STAT_KEYS`.

    Counts (`numel, n_nan, n_inf, n_zero`) are ints, the rest floats. See the module docstring
    for the definitions.

    Example:
        >>> s = tensor_stats(np.array([[0.0, 1.0], [np.nan, np.inf]], dtype=np.float32))
        >>> s["numel"], s["n_nan"], s["n_inf"], s["n_zero"], s["mean"]
        (4, 1, 1, 1, 0.5)
    """
    flat = np.asarray(w).ravel()
    x, total, n_nan = _finite_and_sum(flat)
    n = x.size
    out: dict[str, float | int] = {
        "numel": int(flat.size),
        "n_nan": n_nan,
        "n_inf": int(flat.size - n - n_nan),
        "n_zero": 0,
    }
    nan = float("nan")
    if n == 0:
        keys = ("mean", "std", "min", "max", "abs_max", "median", "robust_sigma", "kurtosis")
        return _ordered(out | dict.fromkeys(keys, nan) | {"frac_beyond_6sigma": nan})
    mean = total / n
    m2, m4 = _centred_moments(x, mean)
    work = np.array(x)  # (n,) partitioned around the median, then |x - median| in place
    h = n // 2
    med = _median_in_place(work, h)  # now work[:h] <= med <= work[h:]
    lo, hi = float(work[: h + 1].min()), float(work[h:].max())
    zeros_side = work if med == 0 else work[:h] if med > 0 else work[h:]
    out["n_zero"] = int(np.count_nonzero(zeros_side == 0))
    sigma, n_beyond = _mad_sigma(x, work, med, lo, hi)  # overwrites work
    out |= {
        "mean": mean,
        "std": float(np.sqrt(m2)),
        "min": lo,
        "max": hi,
        "abs_max": max(abs(lo), abs(hi)),
        "median": med,
        "robust_sigma": sigma,
        "kurtosis": m4 / m2**2 - 3.0 if m2 > 0 else nan,
        "frac_beyond_6sigma": n_beyond / n,
    }
    return _ordered(out)


def _mad_sigma(
    x: np.ndarray, work: np.ndarray, med: float, lo: float, hi: float
) -> tuple[float, int]:
    """(robust sigma, number of |x - med| > 6 sigma) of the 1-D finite `x` (n >= 1) with
    median `med`, minimum `lo` and maximum `hi`, given `work`: a copy of `x` partitioned at
    n // 2 (`_median_in_place`), which it overwrites. `x` is left as it is.

    `work` becomes the deviations |x - med| in place and is partitioned around their median
    (the MAD). The deviations above 6 sigma >= MAD then all lie past the middle, so only that
    half is counted.
    """
    med_x = x.dtype.type(med)  # deviations are in x's dtype, as `robust.median_sigma` has them
    with np.errstate(over="ignore"):
        spread = max(hi - med_x, med_x - lo)  # the largest deviation
    if not np.isfinite(spread):  # some deviations overflow: the general helper drops them
        dev = np.abs(x - med_x)
        sigma = sigma_from_deviations(dev)
        return sigma, int(np.count_nonzero(dev > 6 * sigma))
    h = work.size // 2
    np.subtract(work, med_x, out=work)
    np.abs(work, out=work)
    sigma = MAD_TO_SIGMA * _median_in_place(work, h)
    if sigma == 0.0:  # more than half at the median: mean |x - med|, summed in x's own order
        sigma = MEAN_AD_TO_SIGMA * float(np.mean(np.abs(x - med_x), dtype=np.float64))
    return sigma, int(np.count_nonzero(work[h:] > 6 * sigma))


def _median_in_place(a: np.ndarray, h: int) -> float:
    """Exact median of the 1-D finite `a` of size 2h or 2h + 1, partitioned in place at h."""
    a.partition(h)
    mid = float(a[h])
    return (mid + float(a[:h].max())) / 2 if a.size % 2 == 0 else mid


def _ordered(stats: dict[str, float | int]) -> dict[str, float | int]:
    return {k: stats[k] for k in STAT_KEYS}
