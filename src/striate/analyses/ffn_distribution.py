"""Shapes of one-dimensional distributions: correlation, a fitted line, two modes or one.

Generic statistics of n values (or n pairs), NaN and ±Inf left out, used by the FFN analysis
to describe each layer's neurons (`striate.analyses.ffn.ffn_layer_summary`). Tested against
scipy; the bootstrap is scipy's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "SARLE_UNIFORM",
    "Mixture",
    "bimodality_coefficient",
    "bootstrap_pearson",
    "fit_line",
    "gaussian_mixture",
    "pearson",
    "spearman",
]

SARLE_UNIFORM = 5 / 9  # Sarle's coefficient of a uniform distribution; above it suggests 2 modes


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r of the finite pairs of x, y (n,) each; NaN with < 3 pairs or no spread."""
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return math.nan
    dx, dy = x[ok] - x[ok].mean(), y[ok] - y[ok].mean()
    den = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy) / den if den > 0 else math.nan


def bootstrap_pearson(
    x: np.ndarray, y: np.ndarray, resamples: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of Pearson's r over the finite pairs of x, y (n,) each:
    pairs resampled with replacement (`scipy.stats.bootstrap`, paired), `resamples` times.
    (NaN, NaN) with < 3 pairs, no spread or `resamples` 0."""
    from scipy import stats

    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or resamples <= 0 or math.isnan(pearson(x, y)):
        return math.nan, math.nan

    def r(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        da = a - a.mean(axis=axis, keepdims=True)
        db = b - b.mean(axis=axis, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            out: np.ndarray = (da * db).sum(axis) / np.sqrt(
                (da * da).sum(axis) * (db * db).sum(axis)
            )
        return out

    n = int(ok.sum())
    batch = max(1, (1 << 22) // n)  # resamples per batch: ~32 MB of float64 each
    ci = stats.bootstrap((x[ok], y[ok]), r, n_resamples=resamples, batch=batch, vectorized=True,
                         paired=True, confidence_level=level, method="percentile",
                         rng=np.random.default_rng(seed)).confidence_interval  # fmt: skip
    return float(ci.low), float(ci.high)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of the ranks (ties get their average rank)."""
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return math.nan
    rx, ry = (pd.Series(v[ok]).rank(method="average").to_numpy() for v in (x, y))
    return pearson(rx, ry)


def fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """Least-squares y = intercept + slope * x over finite pairs, shapes (n,) each.

    Returns (slope, intercept, slope_se, intercept_se), the usual OLS standard errors with
    n - 2 degrees of freedom (as `scipy.stats.linregress`); NaN with < 3 pairs or constant x.

    >>> fit_line(np.array([0.0, 1.0, 2.0]), np.array([1.0, 3.0, 5.0]))
    (2.0, 1.0, 0.0, 0.0)
    """
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    x, y = x[ok].astype(np.float64), y[ok].astype(np.float64)
    sxx = float(((x - x.mean()) ** 2).sum()) if n else 0.0
    if n < 3 or sxx <= 0:
        return math.nan, math.nan, math.nan, math.nan
    slope = float((x - x.mean()) @ (y - y.mean())) / sxx
    intercept = float(y.mean()) - slope * float(x.mean())
    s2 = float(((y - intercept - slope * x) ** 2).sum()) / (n - 2)
    se_intercept = math.sqrt(s2 * (1 / n + float(x.mean()) ** 2 / sxx))
    return slope, intercept, math.sqrt(s2 / sxx), se_intercept


def bimodality_coefficient(x: np.ndarray) -> tuple[float, float, float]:
    """Sarle's bimodality coefficient of the finite values of `x` (n,), with its two moments.

    b = (G1^2 + 1) / (G2 + 3 (n-1)^2 / ((n-2)(n-3))), with G1, G2 the sample skewness and excess
    kurtosis corrected for sample size (`scipy.stats.skew / kurtosis(bias=False)`). b is 1/3 for
    a Gaussian, 5/9 for a uniform, near 1 for two separate peaks; b > 5/9 suggests two modes, but
    a strongly skewed single peak also scores high. Returns (b, G1, G2); NaN with < 4 values or
    no spread.
    """
    v = np.asarray(x, dtype=np.float64)
    v = v[np.isfinite(v)]
    n = v.size
    dev = v - v.mean() if n else v
    m2 = float(np.mean(dev**2)) if n else 0.0
    if n < 4 or m2 <= 0:
        return math.nan, math.nan, math.nan
    g1, g2 = float(np.mean(dev**3)) / m2**1.5, float(np.mean(dev**4)) / m2**2 - 3
    skew = g1 * math.sqrt(n * (n - 1)) / (n - 2)
    kurt = ((n + 1) * g2 + 6) * (n - 1) / ((n - 2) * (n - 3))
    return (skew**2 + 1) / (kurt + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))), skew, kurt


@dataclass(frozen=True)
class Mixture:
    """A two-component 1-D Gaussian mixture, components sorted by mean (low, high).

    delta_bic: BIC of one Gaussian minus BIC of the mixture (> 0 favours two components).
    ashman_d: sqrt(2) |mean_high - mean_low| / sqrt(sd_low^2 + sd_high^2).
    """

    mean_low: float
    mean_high: float
    sd_low: float
    sd_high: float
    weight_high: float
    delta_bic: float
    ashman_d: float


def _e_step(
    v: np.ndarray, mu: np.ndarray, sd: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, float]:
    """Responsibilities (n, 2) of two Gaussians for values v (n,), and the log-likelihood."""
    z = (v[:, None] - mu) / sd
    logp = np.log(w) - np.log(sd) - 0.5 * z**2 - 0.5 * math.log(2 * math.pi)  # (n, 2)
    top = logp.max(axis=1, keepdims=True)
    ll = top[:, 0] + np.log(np.exp(logp - top).sum(axis=1))  # (n,) log-sum-exp
    return np.exp(logp - ll[:, None]), float(ll.sum())


def gaussian_mixture(x: np.ndarray, *, iterations: int = 500) -> Mixture:
    """Fit two Gaussians to the finite values of `x` (n,) by EM, started at the quartiles.

    Deterministic (no random start); stops when the log-likelihood gains < 1e-10 n. Each
    component's sd is kept >= 1e-3 of the data's, so none collapses onto one value. BIC counts
    2 parameters for one Gaussian, 5 for the mixture. All NaN with < 10 values or no spread.

    >>> v = np.r_[np.linspace(-0.6, -0.4, 500), np.linspace(0.4, 0.6, 500)]
    >>> m = gaussian_mixture(v)
    >>> round(m.mean_low, 3), round(m.mean_high, 3), round(m.weight_high, 3)
    (-0.5, 0.5, 0.5)
    """
    v = np.asarray(x, dtype=np.float64)
    v = v[np.isfinite(v)]
    n, sd_all = v.size, float(v.std()) if v.size else 0.0
    if n < 10 or sd_all <= 0:
        return Mixture(*[math.nan] * 7)
    mu, sd, w = np.quantile(v, [0.25, 0.75]), np.full(2, sd_all / 2), np.full(2, 0.5)
    previous = -math.inf
    for _ in range(iterations):
        resp, ll = _e_step(v, mu, sd, w)
        nk = np.maximum(resp.sum(axis=0), 1e-12)
        w, mu = nk / n, (resp * v[:, None]).sum(axis=0) / nk
        sd = np.maximum(np.sqrt((resp * (v[:, None] - mu) ** 2).sum(axis=0) / nk), 1e-3 * sd_all)
        if ll - previous < 1e-10 * n:
            break
        previous = ll
    ll2 = _e_step(v, mu, sd, w)[1]
    ll1 = -0.5 * n * (math.log(2 * math.pi * sd_all**2) + 1)
    delta_bic = (-2 * ll1 + 2 * math.log(n)) - (-2 * ll2 + 5 * math.log(n))
    lo, hi = np.argsort(mu)
    d = math.sqrt(2) * abs(float(mu[hi] - mu[lo])) / math.sqrt(float(sd[lo] ** 2 + sd[hi] ** 2))
    return Mixture(
        float(mu[lo]), float(mu[hi]), float(sd[lo]), float(sd[hi]), float(w[hi]), delta_bic, d
    )
