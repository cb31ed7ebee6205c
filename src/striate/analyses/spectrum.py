"""The spectrum of a weight matrix: singular values and the metrics read off them.

A tensor becomes a matrix W of shape (rows, cols) = (out, in) by `as_matrix` (conv kernels
[out, in*kh*kw]); N = max(rows, cols), M = min(rows, cols); s_1 >= ... >= s_M are its singular
values and lambda_i = s_i^2 the eigenvalues of the M x M Gram matrix (W^T W or W W^T), the
"empirical spectral density" (ESD) that WeightWatcher fits. The keys of `spectrum_metrics`
(columns of `tensors.parquet`), NaN where undefined (a zero matrix, non-finite weights):

    spectral_norm    s_1 = ||W||_2                     (WeightWatcher: s_1^2, see below)
    frobenius_norm   ||W||_F = sqrt(sum s_i^2)
    stable_rank      ||W||_F^2 / ||W||_2^2 = sum lambda_i / lambda_1, in [1, M]
    effective_rank   exp(H(p)), p_i = s_i / sum s_j, H the Shannon entropy (Roy & Vetterli
                     2007), in [1, M]; equal to k for k equal singular values
    numerical_rank   #{s_i > tol * s_1}, tol = `rank_tol`, default max(N, M) * eps(float32):
                     numpy's `matrix_rank` rule at the precision weights are stored in
    alpha, alpha_xmin, alpha_ks, alpha_n_tail
                     power law lambda^-alpha fitted to the tail of the ESD: exponent, the
                     x_min (an eigenvalue, units of s^2), the KS distance, and the eigenvalues
                     >= x_min; see `striate.analyses.powerlaw`
    mp_sigma         the noise level, in weight units: the entry std of a random matrix of
                     W's shape whose Marchenko-Pastur (MP) law has the median of W's ESD
                     (Gavish & Donoho 2014; a few large s_i do not move it); `mp_noise="rms"`
                     takes the entry RMS ||W||_F / sqrt(N M) instead (W's entries shuffled)
    mp_edge          the MP bulk edge for that noise, an eigenvalue: mp_sigma^2 (sqrt N + sqrt M)^2
    n_spikes         #{lambda_i > mp_edge + spike_margin * tw}, tw = mp_sigma^2 (sqrt N + sqrt M)
                     (1/sqrt N + 1/sqrt M)^(1/3) the Tracy-Widom scale of the largest
                     eigenvalue of pure noise (Johnstone 2001): directions that stand out
                     from a random matrix with W's bulk
    energy_top1pct, energy_top10pct
                     share of ||W||_F^2 in the top k = ceil(p * M) singular directions

WeightWatcher 0.7.7 (`analyze()`) uses the same lambda_i (unnormalised since 0.6.5) and the same
power-law fit, so `stable_rank`, `alpha`, `xmin`, `D` (= alpha_ks) and `num_pl_spikes` (=
alpha_n_tail) agree to float precision (tests/test_weightwatcher.py); its `spectral_norm` is
lambda_1 = our spectral_norm^2, and it fits eigenvalues > 1e-5 (absolute; here: s_i above the
rank tolerance). Its `num_spikes` (`mp_fit=True`) rescales the ESD to mean 1, fits an MP density
to a kernel density estimate by brute force over sigma, and counts eigenvalues above the edge +
sqrt(TW); its `sigma_mp` is relative to the entry RMS (= our mp_sigma / (||W||_F / sqrt(N M))).
For square matrices that fit only scales the height of a quarter circle of fixed support, so it
returns sigma_mp ~ 1.01: the "rms" noise level. Conv layers: WeightWatcher pools the eigenvalues
of the kh*kw slices [out, in]; here a kernel is one [out, in*kh*kw] matrix.

Computation (`singular_values`): the eigenvalues of the smaller Gram matrix, accumulated in
float64 over blocks of rows (memory: one block and an M x M matrix), then LAPACK's `eigvalsh`.
A Gram eigenvalue carries an absolute error of a few eps64 * lambda_1, so s_i has a relative
error ~ eps64 (s_1 / s_i)^2: 1e-12 for s_i = 0.01 s_1, ~1e-8 at 1e-4 s_1. When the smallest
eigenvalue is below 1e-8 lambda_1 (a rank-deficient or very ill-conditioned matrix) the values
come from LAPACK's SVD instead (`gesdd`, error ~ eps64 * s_1 for every s_i), 2-3x slower,
unless the caller says those values are not needed (`floor`): the scan passes the rank
tolerance (`rank_tolerance`, >= 1e-4 for a side of 839 or more), below which only
`effective_rank` reads a value, so such s_i keep the Gram's absolute error (~1e-8 s_1; they
move effective_rank by < 1e-6 relative) unless they hold the median (`mp_sigma`). Random
square matrices land there more often than not (s_M / s_1 ~ 1 / N): on a LLaMA-shaped model
78 of 168 matrices took the SVD, half of all the time. Cost: N M^2 + M^3 flops (a 49152 x 576
embedding: well under a second).

`spectrum.gram = "float32"` (opt-in) accumulates the Gram matrix in float32 (sgemm: half the
time of dgemm, which is about 60% of a large matrix's spectrum; float32 `eigvalsh` is no faster
on OpenBLAS, so the eigenvalues still come from float64). Each eigenvalue then carries an
absolute error of at most gamma_N ||W||_F^2 (gamma_N = N eps32, the textbook bound of a float32
dot product of length N; blocked BLAS summation makes it ~sqrt(N) eps32 in practice): measured
<= 2e-8 lambda_1 on Gaussian and planted-spectrum matrices, <= 3e-7 lambda_1 on MiniLM's 37
(its FFN outputs, with their super weights, are the worst); the matrix is divided by a power of
two first, which is exact. Values below
`GRAM32_RCOND` lambda_1 (s_i < 3e-3 s_1) are no longer accurate to 1e-3; the SVD is used only
when the median (`mp_sigma`) is among them, so `numerical_rank` and `effective_rank` read them
with that absolute error. Bounds tested on all of them (tests/test_spectrum_fast.py),
relative to float64: spectral_norm, frobenius_norm, stable_rank, energy shares <= 1e-6;
mp_sigma, mp_edge, effective_rank, alpha and alpha_ks (same x_min) <= 1e-4; the counts equal
unless a value lies within that error of the threshold.

Device (`spectrum.device`, `striate scan --device`): "cpu" runs the above in numpy/LAPACK;
"cuda" (or "cuda:1", "mps", any torch device) runs the same float64 Gram, `eigvalsh` and
SVD fallback in torch on that device; "auto" (default) picks "cuda" when torch sees a GPU and
"cpu" otherwise. Both compute in float64, so they agree to ~1e-12 relative on s_1 and to the
error bounds above on the rest (tests/test_jobs_and_device.py; the CUDA test runs when a GPU is
present). Batching same-shaped matrices into one `eigvalsh` call was measured on the CPU and
gained nothing (LAPACK works through a batch one matrix at a time; benchmarks in
docs/benchmarks.md), so on the CPU each matrix is its own call; on a torch device `striate
spectra` batches matrices of one shape (`singular_values_batch`: one transfer, one batched
Gram and one batched `eigvalsh` per batch; the same float64 computation).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from striate.analyses.powerlaw import fit_power_law
from striate.devices import resolve_device
from striate.errors import StriateError

__all__ = [
    "SPECTRUM_COUNTS",
    "SPECTRUM_KEYS",
    "SpectrumConfig",
    "as_matrix",
    "mp_median",
    "mp_pdf",
    "rank_tolerance",
    "singular_values",
    "singular_values_batch",
    "skip_reason",
    "spectrum_metrics",
]

#: the keys of `spectrum_metrics`, in column order
SPECTRUM_KEYS = (
    "spectral_norm", "frobenius_norm", "stable_rank", "effective_rank", "numerical_rank",
    "alpha", "alpha_xmin", "alpha_ks", "alpha_n_tail", "mp_sigma", "mp_edge", "n_spikes",
    "energy_top1pct", "energy_top10pct",
)  # fmt: skip
#: the keys whose values are counts (ints; NaN only when the whole spectrum is undefined)
SPECTRUM_COUNTS = ("numerical_rank", "alpha_n_tail", "n_spikes")

_GRAM_RCOND = 1e-8  # below this lambda_M / lambda_1, `singular_values` uses the SVD
GRAM32_RCOND = 1e-5  # the same for a float32 Gram (its eigenvalue error ~1e-8 lambda_1)
_CHUNK = 1 << 21  # elements of one float64 block of rows
_EPS32 = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class SpectrumConfig:
    """Settings of the spectrum analysis (section `spectrum`).

    min_size: matrices whose smaller side is below this are skipped (WeightWatcher's
        min_evals, 8). max_side: matrices whose smaller side is above this are skipped; the
        Gram matrix costs N M^2 (M = 8192 with N = 32000: ~2 TFlop, minutes on a laptop).
    rank_tol: numerical rank counts s_i > rank_tol * s_1; None: max(N, M) * eps(float32).
    fit_min_evals: the power law is fitted to the eigenvalues of the s_i above the rank
        tolerance; fewer than this give alpha = NaN (WeightWatcher switches to a different,
        small-sample estimator below 20). fit_min_tail: the smallest tail an x_min may leave
        (2 = every candidate, as WeightWatcher). xmin_candidates: None tries every eigenvalue
        as x_min (as WeightWatcher); k tries k log-spaced ones (faster on huge spectra).
    spike_margin: a spike exceeds the MP edge by this many Tracy-Widom scales (P(TW1 > 3)
        ~ 2e-3: a pure-noise matrix shows no spike).
    mp_noise: how mp_sigma is estimated: "median" (default; matches the MP median to the ESD's
        median, robust to the spikes) or "rms" (the entry RMS ||W||_F / sqrt(N M): the bulk of
        W with its entries shuffled, an upper bound that counts fewer spikes; WeightWatcher's
        fit lands there for square matrices).
    """

    min_size: int = 8  # smaller side below this: skipped
    max_side: int = 8192  # smaller side above this: skipped
    rank_tol: float | None = None  # relative to s_1; None: max(N, M) * eps(float32)
    fit_min_evals: int = 20  # fewer eigenvalues: no power-law fit
    fit_min_tail: int = 2  # eigenvalues at or above x_min, at least
    xmin_candidates: int | None = None  # None: every eigenvalue is a candidate x_min
    spike_margin: float = 3.0  # Tracy-Widom scales above the MP edge
    mp_noise: str = "median"  # "median" | "rms": noise-level estimate for mp_sigma
    device: str = "auto"  # "auto" | "cpu" (numpy) | a torch device: "cuda", "cuda:1", "mps"
    gram: str = "float64"  # "float64" | "float32": the Gram's precision (module docstring)

    def __post_init__(self) -> None:
        if self.gram not in ("float64", "float32"):
            raise StriateError(
                f"unknown spectrum.gram {self.gram!r}", hint='use "float64" or "float32"'
            )
        if self.mp_noise not in ("median", "rms"):
            raise StriateError(
                f"unknown spectrum.mp_noise {self.mp_noise!r}", hint='use "median" or "rms"'
            )

    def torch_device(self) -> str | None:
        """The torch device the linear algebra runs on, or None for numpy."""
        device = resolve_device(self.device)
        return None if device == "cpu" else device


def as_matrix(w: np.ndarray, layout: str | None) -> np.ndarray | None:
    """The 2-D matrix [out, in...] whose spectrum describes tensor `w`; None for vectors/scalars.

    layout (from the anatomy): `linear`, `embedding`, None: 2-D as stored; `conv1d` (GPT-2's
    [in, out]): transposed to [out, in]; `oihw` [out, in, kh, kw] and any other tensor of 3+
    axes: [out, in*kh*kw]; `hwio` [kh, kw, in, out] (Keras; 3-D [k, in, out] too): reordered to
    [out, in, kh, kw] first, so both layouts of one kernel give the same matrix; `vector`: None.

    >>> as_matrix(np.zeros((3, 3, 16, 32)), "hwio").shape, as_matrix(np.zeros(5), None)
    ((32, 144), None)
    """
    if w.ndim < 2 or layout == "vector":
        return None
    if layout == "conv1d" and w.ndim == 2:
        return np.transpose(w)
    if layout == "hwio":
        w = np.moveaxis(w, (-1, -2), (0, 1))  # [out, in, kh, kw]
    return np.reshape(w, (w.shape[0], -1)) if w.ndim > 2 else w


def skip_reason(shape: tuple[int, int], config: SpectrumConfig) -> str | None:
    """Why a matrix of this shape gets no spectrum under `config`, or None when it does.

    >>> skip_reason((2, 384), SpectrumConfig())
    'smaller side 2 < spectrum.min_size 8'
    """
    m = min(shape)
    if m < config.min_size:
        return f"smaller side {m} < spectrum.min_size {config.min_size}"
    if m > config.max_side:
        return f"smaller side {m} > spectrum.max_side {config.max_side} (raise it to analyse)"
    return None


def _row_blocks(m: np.ndarray, scale: float, dtype: type = np.float64) -> Iterator[np.ndarray]:
    """m / scale (turned so rows >= cols) in blocks of rows of `dtype`: the Gram's summands."""
    if m.shape[0] < m.shape[1]:
        m = m.T
    rows, cols = m.shape
    step = max(1, _CHUNK // cols)
    for i in range(0, rows, step):
        # converted first, then / scale: one pass, one new array (never a view of m)
        yield np.divide(m[i : i + step], scale, dtype=dtype)  # (step, cols)


def _gram_eigenvalues(m: np.ndarray, scale: float, dtype: type = np.float64) -> np.ndarray:
    """Eigenvalues of the smaller Gram matrix of m / scale, accumulated in `dtype`, ascending
    (numpy, LAPACK; `eigvalsh` always in float64)."""
    blocks = _row_blocks(m, scale, dtype)
    first = next(blocks)
    g = first.T @ first  # (k, k), k = min(m.shape)
    for block in blocks:
        g += block.T @ block
    return np.asarray(np.linalg.eigvalsh(g.astype(np.float64, copy=False)))


def _needs_svd(lam: np.ndarray, floor: float, rcond: float = _GRAM_RCOND) -> bool:
    """Whether the Gram eigenvalues `lam` (descending) leave a needed value inaccurate: one
    below `rcond` * lambda_1 that is wanted (floor below its accuracy) or is the median. A
    float32 Gram (`rcond` = GRAM32_RCOND) takes it for the median, or when every value is
    wanted (floor 0)."""
    inaccurate = lam < rcond * lam[0]
    if not inaccurate[-1]:
        return False
    wanted = floor**2 < rcond if rcond == _GRAM_RCOND else floor == 0
    return wanted or bool(inaccurate[lam.size // 2])


def _singular_values_torch(
    m: np.ndarray, scale: float, device: str, floor: float, gram: str
) -> np.ndarray:
    """The same computation in torch on `device`; descending s_i of m / scale."""
    import torch

    k = min(m.shape)
    dtype = np.float32 if gram == "float32" else np.float64
    g = torch.zeros((k, k), dtype=torch.float32 if gram == "float32" else torch.float64,
                    device=device)  # fmt: skip
    for block in _row_blocks(m, scale, dtype):
        b = torch.from_numpy(block).to(device)
        g += b.T @ b
    lam = torch.linalg.eigvalsh(g.double()).flip(0).cpu().numpy()
    if _needs_svd(lam, floor, GRAM32_RCOND if gram == "float32" else _GRAM_RCOND):
        full = torch.from_numpy(np.asarray(m, dtype=np.float64) / scale).to(device)
        return np.asarray(torch.linalg.svdvals(full).cpu().numpy())
    return np.asarray(np.sqrt(np.clip(lam, 0, None)))


def _unit_scale(m: np.ndarray) -> float | np.ndarray:
    """A power of two above max |m| (m / scale is exact and below 1: no overflow for any
    stored range), or the singular values themselves where they need no computation: all NaN
    for NaN or Inf in m, all zero for a zero matrix."""
    k = min(m.shape)
    top, bottom = float(m.max()), float(m.min())
    if not (math.isfinite(top) and math.isfinite(bottom)):
        return np.full(k, np.nan)
    peak = max(top, -bottom)  # max |m|
    if peak == 0:
        return np.zeros(k)
    return 2.0 ** math.frexp(peak)[1]


def singular_values(
    m: np.ndarray, torch_device: str | None = None, floor: float = 0.0, gram: str = "float64"
) -> np.ndarray:
    """Singular values of the 2-D matrix `m` (any real dtype), float64, descending, length
    min(m.shape); all NaN when m holds NaN or Inf. Method: see the module docstring. With
    `torch_device` ("cuda", "cpu", ...) the same float64 computation runs in torch there.

    floor (relative to s_1): values below floor * s_1 are not needed to more than the Gram's
    absolute accuracy (~1e-8 s_1), so they cost no SVD unless they make up the median; the
    scan passes the rank tolerance (`rank_tolerance`). 0 (default): every value accurate.
    gram: "float32" accumulates the Gram in float32 (faster; errors in the module docstring).

    >>> singular_values(np.diag([3.0, 4.0]) @ np.array([[0.6, 0.8], [-0.8, 0.6]]))
    array([4., 3.])
    """
    if m.ndim != 2:
        raise ValueError(f"singular_values needs a 2-D matrix, got shape {m.shape}")
    if min(m.shape) == 0:
        return np.zeros(0)
    scale = _unit_scale(m)
    if isinstance(scale, np.ndarray):
        return scale
    if torch_device is not None:
        return _singular_values_torch(m, scale, torch_device, floor, gram) * scale
    single = gram == "float32"
    lam = _gram_eigenvalues(m, scale, np.float32 if single else np.float64)[::-1]  # descending
    if _needs_svd(
        lam, floor, GRAM32_RCOND if single else _GRAM_RCOND
    ):  # needed small s_i inaccurate from the Gram: use the SVD
        s = np.linalg.svd(np.asarray(m, dtype=np.float64) / scale, compute_uv=False)
        return np.asarray(s * scale)
    return np.asarray(np.sqrt(np.clip(lam, 0, None)) * scale)


def singular_values_batch(
    ms: Sequence[np.ndarray], torch_device: str, floors: Sequence[float], gram: str = "float64"
) -> list[np.ndarray]:
    """`singular_values` of matrices of one shape on a torch device, their Gram matrices and
    `eigvalsh` each one batched call (one transfer, one launch per step for the batch, where
    one call a matrix pays both each time): the same computation in the same precision, so the
    same values to rounding; the SVD fallback, NaN and zero matrices as `singular_values`.
    `floors[i]` is matrix i's `floor`. Memory: the batch as float64 (or float32), on the host
    and on the device; the caller bounds it."""
    import torch

    if len({m.shape for m in ms}) > 1:
        raise ValueError("singular_values_batch needs matrices of one shape")
    out: list[np.ndarray | None] = [None] * len(ms)
    todo, scales = [], []
    for i, m in enumerate(ms):
        scale = _unit_scale(m) if min(m.shape) else np.zeros(0)
        if isinstance(scale, np.ndarray):
            out[i] = scale
        else:
            todo.append(i)
            scales.append(scale)
    if todo:
        single = gram == "float32"
        dtype = np.float32 if single else np.float64
        turn = ms[todo[0]].shape[0] < ms[todo[0]].shape[1]  # rows >= cols: the smaller Gram
        stack = [np.divide(ms[i].T if turn else ms[i], scale, dtype=dtype)
                 for i, scale in zip(todo, scales, strict=True)]  # fmt: skip
        x = torch.from_numpy(np.stack(stack)).to(torch_device)
        del stack
        lam = torch.linalg.eigvalsh((x.mT @ x).double()).flip(-1).cpu().numpy()
        del x
        rcond = GRAM32_RCOND if single else _GRAM_RCOND
        for i, scale, values in zip(todo, scales, lam, strict=True):
            if _needs_svd(values, floors[i], rcond):
                full = torch.from_numpy(np.asarray(ms[i], dtype=np.float64) / scale)
                s = torch.linalg.svdvals(full.to(torch_device)).cpu().numpy()
            else:
                s = np.sqrt(np.clip(values, 0, None))
            out[i] = np.asarray(s * scale)
    return [s if s is not None else np.zeros(0) for s in out]


def rank_tolerance(shape: tuple[int, int], config: SpectrumConfig) -> float:
    """The numerical-rank tolerance relative to s_1: `rank_tol`, or max(shape) * eps(float32).

    >>> rank_tolerance((1024, 4096), SpectrumConfig())
    0.00048828125
    """
    return config.rank_tol if config.rank_tol is not None else max(shape) * _EPS32


def _mp_grid(ratio: float, n: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Midpoints x_k of the Marchenko-Pastur support (unit variance, ratio = M / N <= 1)
    and the probability of each cell, on x = a + (b - a)(1 - cos t) / 2, t uniform in [0, pi]:
    the density's square-root ends become a smooth integrand."""
    a, b = (1 - math.sqrt(ratio)) ** 2, (1 + math.sqrt(ratio)) ** 2
    t = (np.arange(n) + 0.5) * math.pi / n
    x = a + (b - a) * (1 - np.cos(t)) / 2
    # density sqrt((b - x)(x - a)) / (2 pi ratio x) times dx/dt = (b - a) sin(t) / 2
    mass = ((b - a) * np.sin(t) / 2) ** 2 / (2 * math.pi * ratio * x) * (math.pi / n)
    return x, mass


def mp_median(ratio: float) -> float:
    """Median of the Marchenko-Pastur law with unit variance and aspect ratio `ratio` = M / N in
    (0, 1]: the median eigenvalue of W^T W / N for an N x M matrix of unit-variance entries.

    >>> round(mp_median(1.0), 4)   # a square matrix (Gavish & Donoho 2014)
    0.6528
    """
    return _mp_median(float(ratio))


@functools.lru_cache(maxsize=256)
def _mp_median(ratio: float) -> float:
    """`mp_median`, kept per ratio: a model has a handful of shapes, each seen many times."""
    x, mass = _mp_grid(ratio)
    cdf = np.cumsum(mass)
    return float(np.interp(0.5, cdf - mass / 2, x))  # cell midpoints at half their mass


def mp_pdf(lam: np.ndarray, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Marchenko-Pastur density of the eigenvalues lambda of W^T W for a `shape` matrix of
    i.i.d. entries with std `sigma` (0 outside the bulk; integrates to 1). Same shape as lam."""
    n, m = max(shape), min(shape)
    ratio, unit = m / n, n * sigma**2  # lambda = unit * x, x ~ MP(ratio)
    a, b = (1 - math.sqrt(ratio)) ** 2, (1 + math.sqrt(ratio)) ** 2
    x = np.asarray(lam, dtype=np.float64) / unit
    inside = (x > a) & (x < b)
    p = np.zeros_like(x)
    p[inside] = np.sqrt((b - x[inside]) * (x[inside] - a)) / (2 * math.pi * ratio * x[inside])
    return p / unit


def _entropy_rank(s: np.ndarray) -> float:
    p = s[s > 0] / s.sum()
    return float(np.exp(-np.sum(p * np.log(p))))


def spectrum_metrics(
    s: np.ndarray, shape: tuple[int, int], config: SpectrumConfig | None = None
) -> dict[str, float | int]:
    """The metrics of a matrix of `shape` (rows, cols) with singular values `s` (length
    min(shape), any order), keyed by `SPECTRUM_KEYS`; see the module docstring.

    Counts (`numerical_rank`, `alpha_n_tail`, `n_spikes`) are ints, the rest floats; every value
    is NaN when s holds NaN (a matrix with NaN/Inf weights).

    >>> r = spectrum_metrics(np.array([2.0, 1.0, 1.0, 0.0]), (4, 6))
    >>> r["stable_rank"], r["numerical_rank"], r["energy_top1pct"]
    (1.5, 3, 0.6666666666666666)
    """
    config = config or SpectrumConfig()
    s = np.sort(np.asarray(s, dtype=np.float64).reshape(-1))[::-1]
    if s.size != min(shape):
        raise ValueError(f"{s.size} singular values for a matrix of shape {tuple(shape)}")
    if s.size == 0 or not np.isfinite(s).all():
        return dict.fromkeys(SPECTRUM_KEYS, math.nan)
    n, m = max(shape), min(shape)
    lam = s**2
    energy, top = float(lam.sum()), float(s[0])
    tol = rank_tolerance(shape, config) * top
    rank = int(np.count_nonzero(s > tol))
    fit = fit_power_law(
        lam[s > tol],
        min_tail=config.fit_min_tail,
        max_candidates=config.xmin_candidates,
        min_n=config.fit_min_evals,
    )
    if config.mp_noise == "rms":
        sigma = math.sqrt(energy / (n * m))
    else:
        sigma = math.sqrt(float(np.median(lam)) / (n * mp_median(m / n)))
    edge = sigma**2 * (math.sqrt(n) + math.sqrt(m)) ** 2
    tw = sigma**2 * (math.sqrt(n) + math.sqrt(m)) * (1 / math.sqrt(n) + 1 / math.sqrt(m)) ** (1 / 3)
    shares = [float(lam[: math.ceil(p * s.size)].sum()) / energy if energy else math.nan
              for p in (0.01, 0.1)]  # fmt: skip
    return {
        "spectral_norm": top,
        "frobenius_norm": math.sqrt(energy),
        "stable_rank": energy / top**2 if top else math.nan,
        "effective_rank": _entropy_rank(s) if top else math.nan,
        "numerical_rank": rank,
        "alpha": fit.alpha,
        "alpha_xmin": fit.xmin,
        "alpha_ks": fit.ks,
        "alpha_n_tail": fit.n_tail,
        "mp_sigma": sigma,
        "mp_edge": edge,
        "n_spikes": int(np.count_nonzero(lam > edge + config.spike_margin * tw)) if top else 0,
        "energy_top1pct": shares[0],
        "energy_top10pct": shares[1],
    }
