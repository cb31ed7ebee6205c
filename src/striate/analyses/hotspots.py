"""Hotspots: single weights far larger than their own row and column would lead one to expect.

A weight in a loud row is loud; that is the row's line (see `striate.analyses.lines`), not a
hotspot. So each weight is first divided by a robust scale of its row and of its column, and only
then compared with the rest. With the rows along `axes[0]` and the columns = all other axes
flattened (a conv kernel [out, in, kh, kw] is viewed as [out, in * kh * kw]), for the finite
weights w_ij:

    sr_i = robust sigma of row i     (`line_sigma`: RMS with the largest 10% of |w| left out)
    sc_j = robust sigma of column j
    n_ij = w_ij / (sr_i * sc_j)      the weight with its row's and column's scale removed
    z_ij = (n_ij - median(n)) / (1.4826 * MAD(n))

Under the multiplicative picture w_ij = r_i * c_j * g_ij that makes lines (a row r_i times louder
than the others), n = g / const: a line leaves n unchanged, and a weight that stands out from
its own (even very loud) line still does. Trimming the largest 10% keeps a hotspot from
inflating its own row's and column's scale (as a median would) while staying steady on short
lines (a median of 16 |w| is 3x too small often enough to fake hotspots in a big tensor; see
`striate.analyses.robust`). A line of exact zeros is left out; an axis whose lines have fewer
than `min_count` entries is not normalised along (too noisy a scale).

Then the tail: is the largest |z| more than the tensor's own tail predicts? The k largest |z|
(k = `tail_fraction` = 5% of the weights, at least 50, at most `tail_max` = 20,000 and at most a
quarter of them) exceed the next one, u, by y_1 >= ... >= y_k. A generalized Pareto distribution
(shape xi >= 0, scale beta) is fitted to them by maximum likelihood, with the largest
c = min(`max_per_tensor`, k / 20) censored (known only to lie above y_(c+1)), so the hotspots
being judged cannot widen the tail that judges them. The shape is then read `tail_margin`
standard errors, (1 + xi) / sqrt(k) each, on the heavy side (beta refitted): a tail fitted a
little too light would turn the largest values of a heavy-tailed tensor into hotspots. Under that
fit the expected number of weights at least as far out as x is

    expected(x) = k * (1 + xi (x - u) / beta) ** (-1 / xi)      (k * exp(-(x - u) / beta) at 0)

and a weight is a hotspot when expected <= `alpha`; `significance` = -log10(expected). Why a
tail fit rather than a fixed z: a Gaussian matrix has an exponential-or-lighter tail (xi = 0:
the bound xi >= 0 keeps the fit from inventing an upper end point that noise could cross), so a
12-sigma weight is wildly improbable, while Student-t weights have a power-law tail (xi = 1/df)
whose largest values are expected. `score` = |z| and `value` = the weight, as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from striate.analyses.finding import Finding
from striate.analyses.lines import check_axes
from striate.analyses.robust import (
    expected_text,
    finite_values,
    line_sigma,
    median,
    sigma_from_deviations,
)

__all__ = ["HotspotsConfig", "find_hotspots"]


@dataclass(frozen=True)
class HotspotsConfig:
    """Thresholds for `find_hotspots` (see the module docstring for the definitions).

    `alpha` is the expected number of false hotspots per structure-free tensor under its own
    tail fit; docs/calibration.md measures the actual rate on Gaussian, Student-t and shuffled
    real weights, and the recall it leaves (`benchmarks/calibration.py`).
    """

    alpha: float = 1e-3  # expected weights this far out under the tensor's tail fit
    max_per_tensor: int = 32  # strongest hotspots kept per tensor (and censored in the fit)
    tail_margin: float = 1.5  # judge under the tail shape xi + this many standard errors
    tail_fraction: float = 0.05  # share of the weights whose exceedances the tail fit sees
    tail_max: int = 20_000  # and at most this many (at least 50, at most a quarter)
    min_count: int = 16  # normalise along an axis only when its lines have >= this many entries


def _usable(scale: np.ndarray) -> np.ndarray:
    """1 / scale, NaN where the scale is 0 or NaN: a line of zeros (or of non-finite values)
    neither holds hotspots nor enters the statistics."""
    ok = np.isfinite(scale) & (scale > 0)
    with np.errstate(over="ignore"):
        return np.where(ok, 1 / np.where(ok, scale, 1), np.nan).astype(np.float32)


def find_hotspots(
    w: np.ndarray, config: HotspotsConfig | None = None, *, axes: tuple[int, int] = (0, 1)
) -> list[Finding]:
    """Single weights of `w` that stand out from their row's and column's scale.

    `w` has shape (R, C) or any N-D shape; rows are along `axes[0]` and columns are the other
    axes flattened (only `axes[0]` matters; `axes[1]` is checked and otherwise unused). Tensors
    with ndim < 2 give []. Each Finding has kind "hotspot", `index` = the full N-D index in
    storage coordinates, `score` = |z|, `value` = the weight, and `extra` = {"row_scale": sr,
    "col_scale": sc, "local_sigma": the sigma expected at that position, in weight units}.
    Strongest first, at most `config.max_per_tensor`.

    Example:
        >>> w = np.random.default_rng(0).standard_normal((64, 100)).astype(np.float32)
        >>> w[5] *= 20  # a line, not hotspots
        >>> w[7, 3] = 30.0
        >>> [f.index for f in find_hotspots(w)]
        [(7, 3)]
    """
    config = config or HotspotsConfig()
    w = np.asarray(w)
    if w.ndim < 2 or w.size == 0:
        return []
    a, _ = check_axes(w.shape, axes)
    moved = np.moveaxis(w, a, 0)
    v = moved.reshape(moved.shape[0], -1)  # (R, C): a view unless axes[0] is not leading
    v = v.astype(np.float32, copy=False)
    n_rows, n_cols = v.shape
    finite = np.isfinite(v)
    if np.count_nonzero(finite) < config.min_count:
        return []
    # robust sigmas of the rows (R,) and columns (C,); 1 along an axis too short to judge
    sr = line_sigma(v, axis=1) if n_cols >= config.min_count else np.ones(n_rows)
    sc = line_sigma(v, axis=0) if n_rows >= config.min_count else np.ones(n_cols)
    # n = w / (sr sc / median(sc)), (R, C) float32 in weight units, so that it cannot overflow;
    # NaN where w is not finite, its row or column is all zeros, or the ratio passes 1e38
    sc_unit = float(np.nanmedian(sc)) if np.isfinite(sc).any() else 1.0
    sc_unit = sc_unit if sc_unit > 0 else 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        n = v * _usable(sr)[:, None]
        n *= _usable(sc / sc_unit)[None, :]
    n[~np.isfinite(n)] = np.nan
    vals = finite_values(n)
    if vals.size < config.min_count:
        return []
    centre = np.float32(median(vals))
    n_ok = vals.size
    del vals
    np.subtract(n, centre, out=n)
    dev = np.abs(n, out=n)  # (R, C) |n - median(n)|
    sigma = sigma_from_deviations(finite_values(dev))
    if not (sigma > 0 and np.isfinite(sigma)):
        return []
    tail = _tail(dev.ravel(), n_ok, sigma, config)
    if tail is None:
        return []
    cand, log_expected = tail
    found: list[Finding] = []
    for flat, log_e in zip(cand, log_expected, strict=True):
        i, j = divmod(int(flat), n_cols)
        rest = [int(x) for x in np.unravel_index(j, moved.shape[1:])]
        index = (*rest[:a], i, *rest[a:])
        weight, z = float(w[index]), float(dev[i, j]) / sigma
        local = sigma * float(sr[i]) * float(sc[j]) / sc_unit
        detail = (
            f"w[{', '.join(map(str, index))}] = {weight:.4g}, z={z:.1f} against its row and "
            f"column scales (local sigma {local:.3g}); expected {expected_text(-log_e)} such "
            "weights under the tensor's tail"
        )
        extra: dict[str, float | int | str] = {
            "row_scale": float(sr[i]),
            "col_scale": float(sc[j]),
            "local_sigma": local,
            "expected": 10**log_e,
        }
        found.append(Finding("hotspot", index, z, weight, detail, extra, -log_e))
    found.sort(key=lambda f: -f.score)
    return found


TAIL_MIN = 50  # the least number of exceedances the tail fit sees (and at most a quarter)


def _tail(
    flat: np.ndarray, n_ok: int, sigma: float, config: HotspotsConfig
) -> tuple[np.ndarray, np.ndarray] | None:
    """The flat indices of the hotspots in `flat` (N,) and log10 of their expected counts.

    `flat` holds |z| * sigma, NaN where not judged (`n_ok` values are not); its NaNs become -1
    in place. None when there are too few weights to fit a tail (fewer than 4 * 20).
    """
    np.fmax(flat, -1.0, out=flat)  # NaN -> -1 (fmax takes the number), the rest are >= 0
    k = min(max(round(config.tail_fraction * n_ok), TAIL_MIN), config.tail_max, n_ok // 4)
    if k < 20:
        return None
    top = _largest(flat, k + 1)
    top = top[np.argsort(-flat[top], kind="stable")]  # (k + 1,) largest first
    x = flat[top].astype(np.float64) / sigma
    u = x[k]
    exceed = x[:k] - u  # (k,) descending
    c = min(config.max_per_tensor, k // 20)
    at = float(exceed[c]) if c else 0.0
    xi, _ = fit_gpd(exceed[c:], censored=c, at=at)
    # the shape's standard error, (1 + xi) / sqrt(n), read on the safe side: a tail fitted a
    # little too light would turn the largest values of a heavy-tailed tensor into hotspots
    xi = min(2.0, xi + config.tail_margin * (1 + xi) / math.sqrt(k))
    xi, beta = fit_gpd(exceed[c:], censored=c, at=at, xi=xi)
    judged = exceed[:c] if c else exceed[:1]
    log_expected = math.log10(k) + gpd_log_sf(judged, xi, beta) / math.log(10)
    hit = log_expected <= math.log10(config.alpha)
    return top[: hit.size][hit], log_expected[hit]


def _largest(flat: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` largest values of `flat` (1-D), unordered: those of
    `np.argpartition`, found among the values above a threshold read off a strided sample
    (one comparison over `flat` and a partition of a few times `count` values, instead of a
    partition of all of them); the full partition when the sample's threshold keeps too few.

    >>> x = np.random.default_rng(0).standard_normal(100_000)
    >>> bool(np.array_equal(np.sort(_largest(x, 500)), np.sort(np.argsort(x)[-500:])))
    True
    """
    step = flat.size // (64 * count)
    if step >= 2:
        sample = flat[::step]
        rank = max(sample.size - 4 * count // step - 1, 0)  # keep ~4x what is needed
        above = np.flatnonzero(flat > np.partition(sample, rank)[rank])
        if above.size >= count:
            part = np.argpartition(flat[above], above.size - count)[-count:]
            return above[part]
    return np.argpartition(flat, flat.size - count)[-count:]


def gpd_log_sf(y: np.ndarray, xi: float, beta: float) -> np.ndarray:
    """log P(Y > y) for a generalized Pareto Y (shape xi >= 0, scale beta), y >= 0."""
    y = np.asarray(y, dtype=np.float64)
    if xi < 1e-9:
        return -y / beta
    return np.asarray(-np.log1p(xi * y / beta) / xi)


XI_MAX = 2.0  # the heaviest tail shape the fit considers


def fit_gpd(
    y: np.ndarray, *, censored: int = 0, at: float = 0.0, xi: float | None = None
) -> tuple[float, float]:
    """Maximum-likelihood (xi, beta) of a generalized Pareto with xi in [0, 2] for the
    exceedances `y` (n,) >= 0, plus `censored` more known only to exceed `at`.

    The log-likelihood is sum(log f(y)) + censored * log P(Y > at). xi >= 0: a fitted negative
    shape puts an upper end point on the tail that noise can cross, so light tails are treated
    as exponential (conservative). beta is profiled out by Newton's method on log(beta), where
    the log-likelihood is concave; xi maximises the profile by a bounded scalar search (to 1e-3,
    well inside its standard error for any k this module uses), compared with xi = 0 exactly.
    With `xi` given, only beta is fitted.
    """
    from scipy.optimize import minimize_scalar

    y = np.asarray(y, dtype=np.float64)
    if xi is not None:
        betas, _ = _profile(y, censored, at, np.array([xi]))
        return xi, float(betas[0])
    last: list[float] = []  # the previous beta: consecutive shapes are close, so is their beta

    def minus_profile(x: float) -> float:
        betas, loglik = _profile(y, censored, at, np.array([x]), last[-1] if last else None)
        last.append(float(betas[0]))
        return -float(loglik[0])

    found = minimize_scalar(
        minus_profile,
        bounds=(0.0, XI_MAX),
        method="bounded",
        options={"xatol": 1e-3},
    )
    xis = np.array([0.0, float(found.x)])
    betas, loglik = _profile(y, censored, at, xis)
    best = int(np.argmax(loglik))
    return float(xis[best]), float(betas[best])


def _profile(
    y: np.ndarray, c: int, at: float, xis: np.ndarray, start: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """For each shape in `xis` (g,), the beta maximising the censored log-likelihood of `y`
    (n,), and that log-likelihood; both of shape (g,). Newton starts at beta = `start` (else the
    exponential's MLE)."""
    n = y.size
    exp_beta = (float(y.sum()) + c * at) / max(n, 1) or 1.0  # the exact MLE at xi = 0
    xi = np.maximum(xis, 1e-9)[:, None]  # (g, 1)
    phi = np.full((xis.size, 1), math.log(start or exp_beta))  # log beta
    ys = np.concatenate([y, [at]])[None, :]  # (1, n + 1): the censoring point last
    weight = np.concatenate([np.ones(n), [c]])[None, :]  # (1, n + 1)
    power = np.concatenate([np.ones(n), np.zeros(1)])[None, :]  # log f has (1 + 1/xi), log S 1/xi
    coef = weight * (power + 1 / xi)  # (g, n + 1)
    for _ in range(50):
        r = xi * ys / np.exp(phi)  # (g, n + 1)
        q = r / (1 + r)  # d log(1 + r) / d(-phi); its derivative is q (1 - q)
        grad = -n + (coef * q).sum(axis=1, keepdims=True)
        hess = -(coef * q * (1 - q)).sum(axis=1, keepdims=True)
        step = -grad / np.minimum(hess, -1e-12)
        phi += np.clip(step, -1.0, 1.0)
        if float(np.abs(step).max()) < 1e-9:
            break
    beta = np.exp(phi[:, 0])
    loglik = -n * np.log(beta) - (coef * np.log1p(xi * ys / np.exp(phi))).sum(axis=1)
    zero = xis < 1e-9  # the exponential: closed form
    beta[zero] = exp_beta
    loglik[zero] = -n * math.log(exp_beta) - (float(y.sum()) + c * at) / exp_beta
    return beta, loglik
