"""Power-law fit of the tail of a spectrum: continuous maximum likelihood, x_min by minimal KS.

The estimator of Clauset, Shalizi & Newman (2009, SIAM Review 51, eq. 3.1 and section 3.3),
computed exactly as WeightWatcher 0.7 does it (its `WWFit`, the default fitter since 0.7, which
gives the numbers of the `powerlaw` package's continuous `Fit`). With the data sorted ascending,
x_(0) <= ... <= x_(n-1), every x_(i) but the largest is a candidate x_min:

    tail    x_(i), ..., x_(n-1)                         n_tail = n - i points, x_min included
    alpha   1 + n_tail / sum_j log(x_(j) / x_min)       the MLE of p(x) ~ x^-alpha, x >= x_min
    D       max_k |1 - (x_(i+k) / x_min)^(1 - alpha) - k / n_tail|,   k = 0 .. n_tail - 1

and the fit keeps the candidate of smallest D (the Kolmogorov-Smirnov distance between the
fitted and the empirical CDF of the tail; the empirical CDF is taken just below each point,
k / n_tail, as `powerlaw` and WeightWatcher do). `sigma` = (alpha - 1) / sqrt(n_tail) is the
asymptotic standard error of alpha. alpha and D do not change when the data are rescaled, so
eigenvalues of W^T W and of W^T W / N give the same fit (x_min scales with them).

Cost: O(n) for all the alphas (suffix sums of log x), O(n^2) for the D's, evaluated in blocks of
candidates (n = 8192 eigenvalues: about 0.5 s); `max_candidates` thins the candidates to that
many log-spaced ones.

    >>> x = (1 - np.random.default_rng(0).random(4000)) ** (-1 / 1.5)   # Pareto, alpha = 2.5
    >>> fit = fit_power_law(x)
    >>> round(fit.alpha, 1), fit.n_tail > 1000
    (2.5, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["PowerLawFit", "fit_power_law"]

_BLOCK = 1 << 20  # elements of one (candidates x data) block of the KS computation


@dataclass(frozen=True)
class PowerLawFit:
    """A power law p(x) ~ x^-alpha fitted to the data at or above `xmin`.

    alpha: the exponent (NaN when no fit was made); xmin: the chosen lower bound, in the units of
    the data; ks: the Kolmogorov-Smirnov distance D of the fit over the tail (0..1); n_tail: the
    data points at or above xmin; n: the data points offered (positive and finite); sigma: the
    standard error (alpha - 1) / sqrt(n_tail).
    """

    alpha: float
    xmin: float
    ks: float
    n_tail: int
    n: int
    sigma: float

    def pdf(self, x: np.ndarray) -> np.ndarray:
        """The fitted density of the tail, (alpha - 1) / xmin * (x / xmin)^-alpha, for x >= xmin
        (0 below); integrates to 1 over the tail. `x` of any shape, same shape out."""
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = (self.alpha - 1) / self.xmin * (x / self.xmin) ** -self.alpha
        return np.where(x >= self.xmin, p, 0.0)


def _no_fit(n: int) -> PowerLawFit:
    return PowerLawFit(math.nan, math.nan, math.nan, 0, n, math.nan)


def _candidates(n: int, min_tail: int, max_candidates: int | None) -> np.ndarray:
    """Indices i of the sorted data that may be x_min: those leaving >= min_tail points."""
    last = n - max(min_tail, 2)  # the largest point is never a candidate (its tail is itself)
    idx = np.arange(last + 1)
    if max_candidates is not None and idx.size > max_candidates:
        # log-spaced in the tail size, so the top of the spectrum, where x_min usually is, is
        # covered densely; always includes i = 0 and i = last
        tails = np.geomspace(n - last, n, max_candidates)
        idx = np.unique(n - np.round(tails).astype(np.int64))
    return idx


def fit_power_law(
    x: np.ndarray,
    *,
    min_tail: int = 2,
    max_candidates: int | None = None,
    min_n: int = 2,
) -> PowerLawFit:
    """Fit p(x) ~ x^-alpha to the tail of `x` (see the module docstring for the estimator).

    x: the data, any shape (flattened); values that are not positive and finite are dropped.
    min_tail: the smallest tail a candidate x_min may leave (2 allows every candidate but the
        largest point, as WeightWatcher does). max_candidates: at most this many log-spaced
        candidates (None: every one). min_n: fewer usable points than this give a NaN fit.

    Returns a `PowerLawFit`; all-NaN (n_tail 0) when there are too few points or every
    candidate is degenerate (all equal values).
    """
    v = np.asarray(x, dtype=np.float64).reshape(-1)
    v = np.sort(v[np.isfinite(v) & (v > 0)])
    n = v.size
    if n < max(min_n, min_tail, 2):
        return _no_fit(n)
    logv = np.log(v)
    idx = _candidates(n, min_tail, max_candidates)
    n_tail = (n - idx).astype(np.float64)  # (C,)
    suffix = np.cumsum(logv[::-1])[::-1]  # suffix[i] = sum_{j >= i} log x_j
    total = suffix[idx] - n_tail * logv[idx]  # sum over the tail of log(x / x_min), (C,)
    ok = total > 0  # 0 when the whole tail equals x_min
    alpha = np.full(idx.size, np.nan)
    alpha[ok] = 1 + n_tail[ok] / total[ok]
    ks = np.full(idx.size, np.inf)
    b = 0
    while b < idx.size:  # blocks of candidates against the data from the block's first x_min on
        i0 = idx[b]
        e = b + max(1, _BLOCK // (n - i0))
        i, a, m = idx[b:e], alpha[b:e], n_tail[b:e]
        k = np.arange(i0, n)[None, :] - i[:, None]  # rank of x_j within candidate i's tail
        with np.errstate(over="ignore", invalid="ignore"):
            model = 1 - np.exp((1 - a[:, None]) * (logv[None, i0:] - logv[i][:, None]))
            gap = np.abs(model - k / m[:, None])
        ks[b:e] = np.where((k >= 0) & ok[b:e, None], gap, -np.inf).max(axis=1)
        b = e
    ks[~ok] = np.inf
    if not np.isfinite(ks).any():
        return _no_fit(n)
    best = int(np.argmin(ks))  # first of equal D's: the largest tail, as WeightWatcher's argmin
    tail = int(n_tail[best])
    a_best = float(alpha[best])
    return PowerLawFit(
        alpha=a_best,
        xmin=float(v[idx[best]]),
        ks=float(ks[best]),
        n_tail=tail,
        n=n,
        sigma=(a_best - 1) / math.sqrt(tail),
    )
