"""Spectral lines: whole rows or columns whose scale stands out from the others.

The "spectral lines" seen in raw GPT-2 and VGG weights are rows or columns (a residual dimension,
an input channel) whose weights are all several times larger, or smaller, than the rest.

For a tensor with row axis `a` and column axis `b` (the caller's `axes`; all other axes are
summed over, so a conv kernel [out, in, kh, kw] is judged as out-channel rows and in-channel
columns), let S[i, j] = sum of |w| over the finite entries with index i on `a` and j on `b`, and
M[i, j] their count. The scale of a line is its mean |w|, balanced against the other axis:

    r0_i = sum_j S_ij / sum_j M_ij                           raw row scale
    c_j  = sum_i (S_ij / r0_i) / sum_i M_ij                  column scale of the row-balanced w
    r_i  = sum_j (S_ij / c_j)  / sum_j M_ij                  row scale of the column-balanced w
    c_j  = sum_i (S_ij / r_i)  / sum_i M_ij                  once more, with the balanced rows

Balancing keeps one loud row from adding its noise to every column (which would hide the column
lines) and vice versa; mean |w| rather than RMS keeps one huge weight (a hotspot, reported as
such) from making its row a line. Both are O(numel) passes plus matrix-vector products on S.

A line is reported when all three hold (loud lines; quiet ones mirror them when `quiet` is on):
  - z >= `z`, the robust z of log(scale) over the lines of its axis (median and 1.4826 * MAD,
    so strong lines do not hide the next one);
  - scale >= `ratio` * the median scale: plainly visible, and a matrix whose rows all have
    nearly the same norm does not report 1.01x "lines";
  - scale >= `ratio` * the median scale of the `neighbours` lines on each side: a line is
    narrow. A block of more than about neighbours / 2 adjacent loud lines (an attention head, a
    band) is not a line; other analyses report those.
An axis is judged only when it has at least `min_count` lines of at least `min_count` entries
(the scale of a line of 1-3 Gaussian weights is too often near 0 to call a quiet line). Lines
with no finite entry or scale 0 (dead lines) are left out of the statistics and never reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from striate.analyses.finding import Finding
from striate.analyses.robust import robust_z
from striate.errors import StriateError

__all__ = ["LinesConfig", "check_axes", "find_lines", "line_scales"]


@dataclass(frozen=True)
class LinesConfig:
    """Thresholds for `find_lines` (see the module docstring for the definitions).

    With Gaussian weights the log-scales of lines of m entries spread by ~0.75 / sqrt(m), so
    z = 6 has no false alarms (the largest z over thousands of noise lines is ~4). In trained
    models many lines pass z = 6 at 1.5x; `ratio` = 2 keeps the ones a picture shows plainly:
    20 lines in all-MiniLM-L6 (6 layers), 155 in SmolLM2-135M (30 layers).
    """

    z: float = 6.0  # robust z of log(scale) over the lines of the same axis
    ratio: float = 2.0  # and scale >= ratio x the median line (<= 1/ratio when quiet)
    neighbours: int = 8  # and >= ratio x the median of this many lines on each side
    quiet: bool = False  # also report lines much quieter than the rest
    min_count: int = 8  # judge an axis only with >= this many lines of >= this many entries
    max_per_axis: int = 16  # strongest lines kept per axis


def check_axes(shape: tuple[int, ...], axes: tuple[int, int]) -> tuple[int, int]:
    """`axes` as two distinct non-negative axes of a tensor of `shape`, else a StriateError."""
    ndim = len(shape)
    if len(axes) != 2 or any(not -ndim <= int(x) < ndim for x in axes):
        raise StriateError(
            f"axes {axes} do not fit a tensor of shape {list(shape)}",
            hint="pass (out_axis, in_axis), two distinct axes of the tensor",
        )
    a, b = (int(x) % ndim for x in axes)
    if a == b:
        raise StriateError(f"axes {axes} name the same axis twice (shape {list(shape)})")
    return a, b


def _weighted_means(s: np.ndarray, m: np.ndarray | None, k: int, v: np.ndarray) -> np.ndarray:
    """Row means of s[i, j] / v[j] over columns j with a usable v, per entry counted by m (None:
    every entry counted, k per cell). s: (n, p) float32, v: (p,) -> (n,) float64."""
    ok = np.isfinite(v) & (v > 0)
    u = np.where(ok, 1.0 / np.where(ok, v, 1.0), 0.0)  # float64: 1 / a tiny scale can pass 1e38
    top = float(u.max()) if u.size else 0.0
    top = top if top > 0 else 1.0
    num = (s @ (u / top).astype(s.dtype)).astype(np.float64) * top
    den = float(k * np.count_nonzero(ok)) if m is None else m @ ok.astype(m.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(num, dtype=np.float64) / den


def line_scales(w: np.ndarray, axes: tuple[int, int] = (0, 1)) -> tuple[np.ndarray, np.ndarray]:
    """Balanced mean-|w| scales of the lines along `axes[0]` and `axes[1]` of `w` (ndim >= 2).

    Returns `(rows, cols)` of shapes (w.shape[axes[0]],) and (w.shape[axes[1]],), float64, NaN
    for a line with no finite entry. Only their ratios are meaningful (see the module docstring).
    """
    a, b = check_axes(w.shape, axes)
    absw = np.abs(w, dtype=np.float32)
    finite = np.isfinite(absw)
    all_finite = bool(finite.all())
    if not all_finite:
        absw[~finite] = 0
    amax = float(absw.max()) if absw.size else 0.0
    if amax > 1e18:  # keep the float32 sums below overflow; ratios are unchanged
        absw *= np.float32(1 / amax)
    others = tuple(i for i in range(w.ndim) if i not in (a, b))
    k = int(np.prod([w.shape[i] for i in others], dtype=np.int64))
    s = absw.sum(axis=others) if others else absw  # (w.shape[min(a,b)], w.shape[max(a,b)])
    m = None if all_finite else finite.sum(axis=others, dtype=np.float32)
    if a > b:
        s, m = s.T, (None if m is None else m.T)
    ones = np.ones(s.shape[1])
    r = _weighted_means(s, m, k, ones)
    c = _weighted_means(s.T, None if m is None else m.T, k, r)
    r = _weighted_means(s, m, k, c)
    c = _weighted_means(s.T, None if m is None else m.T, k, r)
    return r, c


def _local_scale(scale: np.ndarray, i: int, n: int, loud: bool) -> float:
    """The louder (quieter) of the median scales of the n lines left and right of line i."""
    sides = [scale[max(0, i - n) : i], scale[i + 1 : i + 1 + n]]
    meds = [float(np.median(x[np.isfinite(x)])) for x in sides if np.isfinite(x).any()]
    if not meds:
        return float("nan")
    return max(meds) if loud else min(meds)


def _line_name(ndim: int, axis: int, role: int) -> str:
    if ndim == 2:
        return "row" if axis == 0 else "column"
    return f"{'output' if role == 0 else 'input'} channel (axis {axis})"


def _rms(w: np.ndarray, axis: int, i: int) -> float:
    line = np.take(w, i, axis=axis).astype(np.float64).ravel()
    line = line[np.isfinite(line)]
    return float(np.sqrt(np.mean(np.square(line)))) if line.size else float("nan")


def _judge(
    w: np.ndarray, scale: np.ndarray, axis: int, role: int, config: LinesConfig
) -> list[Finding]:
    """Lines along storage `axis` (role 0: axes[0], 1: axes[1]) with per-line `scale` (n,)."""
    valid = np.isfinite(scale) & (scale > 0)
    length = w.size // w.shape[axis]  # entries per line
    if np.count_nonzero(valid) < config.min_count or length < config.min_count:
        return []
    logs = np.full(scale.shape, np.nan)
    logs[valid] = np.log(scale[valid])
    z, med, sigma = robust_z(logs)
    if not sigma > 0:
        return []
    ratio = scale / np.exp(med)
    with np.errstate(invalid="ignore"):
        cand = (z >= config.z) & (ratio >= config.ratio)
        if config.quiet:
            cand |= (z <= -config.z) & (ratio <= 1 / config.ratio)
    found: list[Finding] = []
    for i in np.flatnonzero(cand):
        loud = bool(z[i] > 0)
        local = _local_scale(np.where(valid, scale, np.nan), int(i), config.neighbours, loud)
        local_ratio = scale[i] / local if np.isfinite(local) else ratio[i]
        if (local_ratio < config.ratio) if loud else (local_ratio > 1 / config.ratio):
            continue  # part of a wide block, not a narrow line
        index: list[int | None] = [None] * w.ndim
        index[axis] = int(i)
        detail = (
            f"{_line_name(w.ndim, axis, role)} {i} scale {ratio[i]:.3g}x the median (z={z[i]:.1f})"
        )
        extra: dict[str, float | int | str] = {
            "axis": axis,
            "scale": _rms(w, axis, int(i)),
            "z": float(z[i]),
        }
        found.append(
            Finding("line", tuple(index), abs(float(z[i])), float(ratio[i]), detail, extra)
        )
    found.sort(key=lambda f: -f.score)
    return found[: config.max_per_axis]


def find_lines(
    w: np.ndarray, config: LinesConfig | None = None, *, axes: tuple[int, int] = (0, 1)
) -> list[Finding]:
    """Rows (along `axes[0]`) and columns (along `axes[1]`) of `w` whose scale stands out.

    `w` has shape (R, C), or any N-D shape with `axes = (out_axis, in_axis)`: e.g. (0, 1) for a
    PyTorch conv kernel [out, in, kh, kw], (3, 2) for Keras [kh, kw, in, out]. Tensors with
    ndim < 2 give []. Each Finding has kind "line", `index` with the line's index on its axis
    and None elsewhere (e.g. (None, 5, None, None)), `score` = |robust z|, `value` = scale /
    median scale, `extra` = {"axis": storage axis, "scale": the line's RMS over its finite
    weights, "z": signed robust z}. Strongest first within each axis; rows before columns.

    Example:
        >>> w = np.random.default_rng(0).standard_normal((64, 100)).astype(np.float32)
        >>> w[5] *= 10
        >>> [f.index for f in find_lines(w)]
        [(5, None)]
    """
    config = config or LinesConfig()
    w = np.asarray(w)
    if w.ndim < 2 or w.size == 0:
        return []
    a, b = check_axes(w.shape, axes)
    rows, cols = line_scales(w, (a, b))
    return _judge(w, rows, a, 0, config) + _judge(w, cols, b, 1, config)
