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

Only |z| is used: `score` = |z|, `value` = the weight. Non-finite weights are never hotspots and
never enter a statistic. On Gaussian noise of 3M weights the largest |z| after this
normalisation is ~6 when lines have >= 32 entries and ~8 with 16 (the scales' own noise fattens
the tails a little), so the default z = 20 gives no false alarm on noise while the striking
hotspots of trained models score in the tens to thousands.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from striate.analyses.finding import Finding
from striate.analyses.lines import check_axes
from striate.analyses.robust import finite_values, line_sigma, median, sigma_from_deviations

__all__ = ["HotspotsConfig", "find_hotspots"]


@dataclass(frozen=True)
class HotspotsConfig:
    """Thresholds for `find_hotspots` (see the module docstring for the definitions).

    Noise alone stays below |z| ~ 8 in millions of weights, but trained weights have heavy
    tails: at z = 10, 188 of SmolLM2-135M's 211 matrices have hotspots (3400 in all); at z = 20,
    94 matrices (330) and 10 of all-MiniLM-L6's (30), led by its residual dimension 99
    (w[99, 856] = 7.9 in layer 0's FFN output, z ~ 2200). 20 keeps the striking ones.
    """

    z: float = 20.0  # |robust z| of the row/column-normalised weight
    max_per_tensor: int = 32  # strongest hotspots kept per tensor
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
    del vals
    np.subtract(n, centre, out=n)
    dev = np.abs(n, out=n)  # (R, C) |n - median(n)|
    sigma = sigma_from_deviations(finite_values(dev))
    if not (sigma > 0 and np.isfinite(sigma)):
        return []
    with np.errstate(invalid="ignore"):
        cand = np.flatnonzero(dev >= config.z * sigma)
    if cand.size > config.max_per_tensor:
        top = np.argpartition(-dev.ravel()[cand], config.max_per_tensor - 1)
        cand = cand[top[: config.max_per_tensor]]
    found: list[Finding] = []
    for flat in cand:
        i, j = divmod(int(flat), n_cols)
        rest = [int(x) for x in np.unravel_index(j, moved.shape[1:])]
        index = (*rest[:a], i, *rest[a:])
        weight, z = float(w[index]), float(dev[i, j]) / sigma
        local = sigma * float(sr[i]) * float(sc[j]) / sc_unit
        detail = (
            f"w[{', '.join(map(str, index))}] = {weight:.4g}, z={z:.1f} against its row and "
            f"column scales (local sigma {local:.3g})"
        )
        extra: dict[str, float | int | str] = {
            "row_scale": float(sr[i]),
            "col_scale": float(sc[j]),
            "local_sigma": local,
        }
        found.append(Finding("hotspot", index, z, weight, detail, extra))
    found.sort(key=lambda f: -f.score)
    return found
