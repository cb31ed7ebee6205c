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

Cost: O(n) for all the alphas (suffix sums of log x). The D's are O(n^2) if done plainly; here a
candidate's D is first bounded from below by its gap at every 16th point (n^2 / 32 terms), and
only the candidates whose bound does not exceed the best D found so far (taken in order of their
bounds) get their exact D: the chosen candidate and its D are the plain computation's, bit for
bit, at a few percent of its terms on trained-weight spectra (n = 384: 0.5 ms against 1.7 ms
plainly; n = 8192: 25 ms against 0.55 s). `max_candidates` thins the candidates to that many
log-spaced ones.

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

_BLOCK = 1 << 16  # elements of one (candidates x data) block of the KS computation (in cache)
_SMALL = 1 << 14  # a block this small takes every remaining candidate, however unequal the tails
_STRIDE = 16  # the lower bound of a candidate's D reads every 16th point
_SEEDS = 8  # candidates of smallest bound whose exact D is taken first (then 16, 32, ...)
_EXP_FLOOR = -50.0  # exp(-50) < 2**-54: 1 - exp(t) rounds to 1 for every t below


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


def _tail_gaps(
    logv: np.ndarray, idx: np.ndarray, alpha: np.ndarray, n_tail: np.ndarray, stride: int = 1
) -> np.ndarray:
    """max |1 - (x_j / x_i)^(1 - alpha_i) - (j - i) / n_tail_i| over the points j >= i of the
    tail of each candidate i in `idx` (ascending; alpha, n_tail alike, all (C,)): D for stride
    1; with a stride, over j = n-1, n-1-stride, ... only, a lower bound on D. Shape (C,).

    Blocks of candidates against the data from the block's first x_min on; the points below a
    row's own x_min (j < i) count 0 (D >= 0: j = i gives 0). Unless it is small, a block ends
    where the tails fall below half of its first one's: at most half its terms are such points.
    """
    n = logv.size
    out = np.zeros(idx.size)
    b = 0
    while b < idx.size:
        i0 = int(idx[b])
        j = np.arange(i0 + (n - 1 - i0) % stride, n, stride)  # (J,) the points read
        e = idx.size
        if (e - b) * j.size > _SMALL:
            half = int(np.searchsorted(idx, i0 + (n - i0) // 2, side="right"))
            e = max(b + 1, min(half, b + _BLOCK // j.size))
        i, a, m = idx[b:e], alpha[b:e], n_tail[b:e]
        # the plain formula term by term (same bits); in place, as the block stays in cache.
        # The clip: j < i gives 0 (a point outside the tail), and below _EXP_FLOOR exp takes its
        # slow path (3-5x) for the same 1 - exp = 1
        t = logv[j] - logv[i][:, None]  # (B, J) log(x_j / x_i)
        t *= (1 - a)[:, None]
        np.clip(t, _EXP_FLOOR, 0.0, out=t)
        np.exp(t, out=t)
        np.subtract(1, t, out=t)  # the fitted CDF at x_j
        k = np.subtract(j, i[:, None], dtype=np.float64)  # (B, J) rank of x_j in x_i's tail
        np.maximum(k, 0, out=k)
        k /= m[:, None]  # the empirical CDF just below x_j
        t -= k
        np.abs(t, out=t)
        out[b:e] = t.max(axis=1)
        b = e
    return out


def _ks_distances(
    logv: np.ndarray, idx: np.ndarray, alpha: np.ndarray, n_tail: np.ndarray, ok: np.ndarray
) -> np.ndarray:
    """The KS distance D of every candidate that may have the smallest one, inf for the others
    (and where not `ok`); all (C,). A candidate whose lower bound (`_tail_gaps` with a stride)
    exceeds a D already found cannot have the smallest D, nor tie it, so it is skipped; the
    rest are taken in order of their bounds, 8, 16, 32, ... at a time, until the next bound
    exceeds the best D so far."""
    ks = np.full(idx.size, np.inf)
    cand = np.flatnonzero(ok)
    bound = _tail_gaps(logv, idx[cand], alpha[cand], n_tail[cand], _STRIDE)
    order = np.argsort(bound, kind="stable")
    cand, bound = cand[order], bound[order]  # by bound, ascending
    best, start, size = math.inf, 0, _SEEDS
    while start < cand.size and bound[start] <= best:
        take = np.sort(cand[start : start + size])
        ks[take] = _tail_gaps(logv, idx[take], alpha[take], n_tail[take])
        best = min(best, float(ks[take].min()))
        start, size = start + size, 2 * size
    return ks


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
    # a tail of equal values (x_min = max) is degenerate: its `total` is 0 only up to rounding
    ok = (total > 0) & (v[idx] < v[-1])
    alpha = np.full(idx.size, np.nan)
    alpha[ok] = 1 + n_tail[ok] / total[ok]
    ks = _ks_distances(logv, idx, alpha, n_tail, ok)
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
