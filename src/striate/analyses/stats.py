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
"""

from __future__ import annotations

import numpy as np

from striate.analyses.robust import finite_values, median, sigma_from_deviations

__all__ = ["STAT_KEYS", "summary_stats", "tensor_stats"]

#: the keys of `tensor_stats`, in column order
STAT_KEYS = (
    "numel", "mean", "std", "min", "max", "abs_max", "n_nan", "n_inf", "n_zero",
    "median", "robust_sigma", "kurtosis", "frac_beyond_6sigma",
)  # fmt: skip

_CHUNK = 1 << 20  # values per float64 chunk


def _moments(x: np.ndarray) -> tuple[float, float, float]:
    """(mean, m2, m4) of the 1-D finite values `x`: two passes, float64 sums by chunk."""
    n = x.size
    total = sum(float(np.sum(x[i : i + _CHUNK], dtype=np.float64)) for i in range(0, n, _CHUNK))
    mean = total / n
    m2 = m4 = 0.0
    for i in range(0, n, _CHUNK):
        d2 = np.square(x[i : i + _CHUNK].astype(np.float64) - mean)
        m2 += float(np.sum(d2))
        m4 += float(np.dot(d2, d2))
    return mean, m2 / n, m4 / n


def summary_stats(w: np.ndarray) -> dict[str, float | int]:
    """min, max, mean, std over the finite values and the NaN / Inf counts, for any dtype.

    The cheap part of `tensor_stats` (no median or MAD), for showing a tensor: a 28M-value
    embedding takes ~0.2 s. Statistics are NaN when no value is finite.

        >>> summary_stats(np.array([1, 3], dtype=np.int8))["mean"]
        2.0
    """
    flat = np.asarray(w).ravel()
    x = finite_values(flat) if flat.dtype.kind in "fc" else flat
    n_nan = int(np.count_nonzero(np.isnan(flat))) if flat.dtype.kind in "fc" else 0
    out: dict[str, float | int] = {"n_nan": n_nan, "n_inf": int(flat.size - x.size - n_nan)}
    if x.size == 0:
        return out | dict.fromkeys(("min", "max", "mean", "std"), float("nan"))
    mean, m2, _ = _moments(x)
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
    x = finite_values(flat)
    n_nan = int(np.count_nonzero(np.isnan(flat)))
    out: dict[str, float | int] = {
        "numel": int(flat.size),
        "n_nan": n_nan,
        "n_inf": int(flat.size - x.size - n_nan),
        "n_zero": int(np.count_nonzero(x == 0)),
    }
    nan = float("nan")
    if x.size == 0:
        keys = ("mean", "std", "min", "max", "abs_max", "median", "robust_sigma", "kurtosis")
        return _ordered(out | dict.fromkeys(keys, nan) | {"frac_beyond_6sigma": nan})
    mean, m2, m4 = _moments(x)
    lo, hi = float(np.min(x)), float(np.max(x))
    med = median(x)
    dev = np.abs(x - x.dtype.type(med))
    sigma = sigma_from_deviations(dev)
    out |= {
        "mean": mean,
        "std": float(np.sqrt(m2)),
        "min": lo,
        "max": hi,
        "abs_max": max(abs(lo), abs(hi)),
        "median": med,
        "robust_sigma": sigma,
        "kurtosis": m4 / m2**2 - 3.0 if m2 > 0 else nan,
        "frac_beyond_6sigma": float(np.count_nonzero(dev > 6 * sigma)) / x.size,
    }
    return _ordered(out)


def _ordered(stats: dict[str, float | int]) -> dict[str, float | int]:
    return {k: stats[k] for k in STAT_KEYS}
