"""Spectral lines: whole rows or columns whose scale stands out from the others, loud or quiet.

The "spectral lines" seen in raw GPT-2 and VGG weights are rows or columns (a residual dimension,
an input channel) whose weights are all larger, or smaller, than the rest.

For a tensor with row axis `a` and column axis `b` (the caller's `axes`), the lines along `a` are
the slices w[i] taken on that axis (all other axes together: a conv kernel [out, in, kh, kw] is
judged as out-channel rows and in-channel columns). The scale s of a line is its **trimmed mean
|w|** (`striate.analyses.robust.line_mean_abs`: the mean |w| with its largest 10% left out). Why
that one, measured on 10^6 lines of 96 weights: one huge weight cannot make its row a line (it is
trimmed away; it is a hotspot); a few loud rows cannot lift every column (in each column their
entries are among the trimmed ones), so one axis's lines do not hide the other's; and the shape
of its spread over lines barely changes from Gaussian to Student-t(3) weights (the trimmed RMS,
slightly more precise on Gaussians, grows a right tail 30 times the normal one at 4.5 sigma on
t(3) weights, which turned noise into loud lines). Its noise: log(s) over m Gaussian weights has
sd 0.861 / sqrt(m) (closed form below; the plain RMS has 0.707 / sqrt(m)).

Each line gets a signed z of its scale against the other lines of its axis, on v = s^0.4
(`POWER`): log(s) has a lower tail ten times the normal one at 4.5 sigma (it would make quiet
lines out of noise), s itself an upper tail too heavy; at 0.4 both tails of v stay within about
2x of the normal ones at 4 sigma for Gaussian, t(4) and t(3) weights alike:

    z_i = (v_i / median(v) - 1) / sigma,
    sigma = max(1.4826 * MAD(v / median(v)), LINE_NOISE / sqrt(m))

where m is the number of entries per line. The MAD term is the spread the lines actually have
(in trained weights far more than sampling noise); the second is the least spread that lines of m
Gaussian weights must have (`LINE_NOISE` = 0.4 * 0.861 = 0.344), so an axis of few lines whose MAD
happens to be small does not turn noise into lines. A line is significant when the expected
number of lines at least as extreme on its axis, were the z normal,

    expected_i = k * n * Phi(-|z_i|)     (k = 2 with `quiet` on, else 1; n lines on the axis)

is at most `alpha`; `significance` = -log10(expected_i). Two guards keep lines narrow:
  - the line must pass the same test against the median of its `neighbours` lines on each side
    (the louder side for a loud line, the quieter for a quiet one). With the default 4, up to 3
    adjacent loud lines are each a line, 4 or 5 give only their inner ones, and a block of 6 or
    more (an attention head, a band) gives none (tested);
  - the trimmed scale ignores single weights (above).
An axis is judged only when it has at least `min_count` lines of at least `min_count` entries.
Lines with no finite entry or scale 0 (dead lines) are left out of the statistics and never
reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from striate.analyses.finding import Finding
from striate.analyses.robust import (
    MAD_TO_SIGMA,
    TRIM,
    expected_count,
    expected_text,
    line_mean_abs,
    median,
)
from striate.errors import StriateError

__all__ = [
    "LINE_NOISE",
    "POWER",
    "LinesConfig",
    "analyse_lines",
    "check_axes",
    "find_lines",
    "line_z",
]


@dataclass(frozen=True)
class LinesConfig:
    """Thresholds for `find_lines` (see the module docstring for the definitions).

    `alpha` is the expected number of false lines per axis of a structure-free tensor;
    docs/calibration.md measures the actual rate on Gaussian, Student-t and shuffled real
    weights and the recall it leaves (`benchmarks/calibration.py`).
    """

    alpha: float = 1e-3  # expected null lines at least this extreme, per axis
    neighbours: int = 4  # and as significant against the median of this many lines each side
    quiet: bool = True  # also report lines much quieter than the rest
    min_count: int = 8  # judge an axis only with >= this many lines of >= this many entries
    max_per_axis: int = 16  # strongest lines kept per axis


def _trimmed_log_noise(trim: float) -> float:
    """sqrt(m) * sd of log(trimmed mean |x|) of m Gaussian values, as m -> infinity.

    With Y = |X| and xi its (1 - trim) quantile, the trimmed mean T of Y has asymptotic variance
    Var((Y - xi) 1{Y <= xi}) / (1 - trim)^2 / m (the influence function of a one-sided trimmed
    mean), and sd(log T) = sd(T) / E[T]. Y is half-normal: its truncated moments are closed forms
    (the standard library's, so that importing striate does not import scipy.stats).
    """
    xi = NormalDist().inv_cdf(1 - trim / 2)
    p0 = 1 - trim  # P(Y <= xi)
    p1 = math.sqrt(2 / math.pi) * (1 - math.exp(-xi * xi / 2))  # E[Y 1{Y <= xi}]
    # E[Y^2 1{Y <= xi}] = P(chi-square(3) <= xi^2) = erf(z) - 2 z e^(-z^2) / sqrt(pi), z = xi/sqrt 2
    z = xi / math.sqrt(2)
    p2 = math.erf(z) - 2 * z * math.exp(-z * z) / math.sqrt(math.pi)
    m1 = p1 - xi * p0  # E[(Y - xi) 1{Y <= xi}]
    m2 = p2 - 2 * xi * p1 + xi * xi * p0  # E[(Y - xi)^2 1{Y <= xi}]
    var = (m2 - m1 * m1) / (1 - trim) ** 2
    return math.sqrt(var) / (p1 / (1 - trim))


POWER = 0.4  # lines are compared on s**POWER (see the module docstring)
LINE_NOISE = POWER * _trimmed_log_noise(TRIM)  # sqrt(m) * sd of s**POWER / its mean


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


@dataclass(frozen=True)
class _Axis:
    """The lines of one axis: scales (n,), signed z (n,), the noise sigma, entries per line."""

    scale: np.ndarray
    z: np.ndarray
    sigma: float
    length: int

    @property
    def n_valid(self) -> int:
        return int(np.count_nonzero(np.isfinite(self.z)))


def _axis_lines(w: np.ndarray, axis: int, config: LinesConfig) -> _Axis | None:
    """Scales and z of the lines along storage `axis`; None when the axis cannot be judged."""
    n = w.shape[axis]
    length = w.size // n if n else 0
    if n < config.min_count or length < config.min_count:
        return None
    rows = np.moveaxis(w, axis, 0).reshape(n, length)  # (n, m): line i is row i
    scale = line_mean_abs(rows, axis=1)
    valid = np.isfinite(scale) & (scale > 0)
    if np.count_nonzero(valid) < config.min_count:
        return None
    v = np.full(n, np.nan)
    v[valid] = scale[valid] ** POWER
    rel = v / median(v[valid]) - 1
    spread = MAD_TO_SIGMA * median(np.abs(rel[valid] - median(rel[valid])))
    sigma = max(spread, LINE_NOISE / math.sqrt(length))
    return _Axis(scale, rel / sigma, sigma, length)


def line_z(
    w: np.ndarray,
    axis: int,
    *,
    axes: tuple[int, int] = (0, 1),
    config: LinesConfig | None = None,
) -> np.ndarray:
    """Signed z of every line along storage `axis` of `w` (one of `axes`), shape (w.shape[axis],).

    Positive for louder lines, negative for quieter; ~N(0, 1) for weights without structure;
    NaN for dead lines and for every line of an axis too short to judge. This is each tensor's
    evidence that `striate.analyses.residual` pools per residual dimension across a model.
    """
    config = config or LinesConfig()
    w = np.asarray(w)
    a, b = check_axes(w.shape, axes)
    axis = int(axis) % w.ndim
    if axis not in (a, b):
        raise StriateError(f"axis {axis} is not one of the line axes {axes}")
    lines = _axis_lines(w, axis, config) if w.size else None
    return np.full(w.shape[axis], np.nan) if lines is None else lines.z


def _local(v: np.ndarray, i: int, n: int, loud: bool) -> float:
    """The louder (quieter) of the medians of v over the n lines left and right of line i."""
    sides = [v[max(0, i - n) : i], v[i + 1 : i + 1 + n]]
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


def _judge(w: np.ndarray, lines: _Axis, axis: int, role: int, config: LinesConfig) -> list[Finding]:
    """The significant lines along storage `axis` (role 0: axes[0], 1: axes[1])."""
    n = lines.n_valid
    two_sided = config.quiet
    log_expected = expected_count(lines.z, n, two_sided=two_sided)
    with np.errstate(invalid="ignore"):
        cand = log_expected <= math.log10(config.alpha)
        if not config.quiet:
            cand &= lines.z > 0
    v = np.where(lines.scale > 0, lines.scale, np.nan) ** POWER
    centre = float(np.nanmedian(v))
    found: list[Finding] = []
    for i in np.flatnonzero(cand):
        loud = bool(lines.z[i] > 0)
        local = _local(v, int(i), config.neighbours, loud)
        z_local = (v[i] / local - 1) / lines.sigma if np.isfinite(local) else lines.z[i]
        if (z_local <= 0 if loud else z_local >= 0) or float(
            expected_count(z_local, n, two_sided=two_sided)
        ) > math.log10(config.alpha):
            continue  # part of a wide block, not a narrow line
        index: list[int | None] = [None] * w.ndim
        index[axis] = int(i)
        ratio = float((v[i] / centre) ** (1 / POWER))
        direction = "loud" if loud else "quiet"
        significance = -float(log_expected[i])
        detail = (
            f"{direction} {_line_name(w.ndim, axis, role)} {i}: scale {ratio:.3g}x the median "
            f"line (z={lines.z[i]:.1f}, expected {expected_text(significance)} such lines in noise)"
        )
        extra: dict[str, float | int | str] = {
            "axis": axis,
            "direction": direction,
            "ratio": ratio,
            "scale": _rms(w, axis, int(i)),
            "z": float(lines.z[i]),
            "expected": 10**-significance,
        }
        found.append(
            Finding(
                "line", tuple(index), abs(float(lines.z[i])), ratio, detail, extra, significance
            )
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
    and None elsewhere (e.g. (None, 5, None, None)), `score` = |z|, `value` = scale / median
    scale, `significance` = -log10(expected null lines this extreme on the axis), `extra` =
    {"axis": storage axis, "direction": "loud"/"quiet", "ratio": = value, "scale": the line's
    RMS over its finite weights, "z": signed z, "expected": 10**-significance}. Strongest first
    within each axis; rows before columns.

    Example:
        >>> w = np.random.default_rng(0).standard_normal((64, 100)).astype(np.float32)
        >>> w[5] *= 2.0
        >>> w[:, 7] *= 0.3
        >>> [(f.index, f.extra["direction"]) for f in find_lines(w)]
        [((5, None), 'loud'), ((None, 7), 'quiet')]
    """
    return analyse_lines(w, config, axes=axes)[0]


def analyse_lines(
    w: np.ndarray, config: LinesConfig | None = None, *, axes: tuple[int, int] = (0, 1)
) -> tuple[list[Finding], dict[int, np.ndarray]]:
    """`find_lines`'s findings and, by storage axis, the `line_z` of every line (one pass)."""
    config = config or LinesConfig()
    w = np.asarray(w)
    if w.ndim < 2 or w.size == 0:
        return [], {}
    a, b = check_axes(w.shape, axes)
    found: list[Finding] = []
    z: dict[int, np.ndarray] = {}
    for role, axis in enumerate((a, b)):
        lines = _axis_lines(w, axis, config)
        z[axis] = np.full(w.shape[axis], np.nan) if lines is None else lines.z
        if lines is not None:
            found += _judge(w, lines, axis, role, config)
    return found, z
