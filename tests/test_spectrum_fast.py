"""The fast paths of the spectrum analysis against plain second implementations.

`fit_power_law` computes the KS distance of only the candidates x_min that can have the smallest
one (a lower bound from every 16th point rules out the rest); here a plain loop over every
candidate, written from the definition (Clauset, Shalizi & Newman 2009), must give the same fit
to 1e-12 on spectra of random, spiked, heavy-tailed, tied and degenerate kinds, with and without
thinned candidates, small and large (several blocks).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from striate.analyses.powerlaw import fit_power_law
from striate.analyses.spectrum import (
    SpectrumConfig,
    mp_median,
    rank_tolerance,
    singular_values,
    spectrum_metrics,
)
from striate.anatomy import anatomy_of
from striate.checkpoint import Checkpoint
from striate.errors import StriateError


def plain_fit(
    x: np.ndarray, min_tail: int = 2, max_candidates: int | None = None
) -> tuple[float, float, float, int]:
    """(alpha, xmin, D, n_tail): every candidate's tail, alpha and D computed on their own."""
    x = np.sort(x[np.isfinite(x) & (x > 0)])
    n = len(x)
    last = n - max(min_tail, 2)
    candidates = list(range(last + 1))
    if max_candidates is not None and len(candidates) > max_candidates:
        tails = np.geomspace(n - last, n, max_candidates)
        candidates = sorted({int(n - round(t)) for t in tails})
    best = (math.inf, math.nan, math.nan, 0)
    for i in candidates:
        tail = x[i:]
        logs = np.log(tail / x[i])
        if logs.sum() <= 0:
            continue  # the whole tail equals x_min: no alpha
        alpha = 1 + len(tail) / logs.sum()
        model = 1 - (tail / x[i]) ** (1 - alpha)
        d = float(np.max(np.abs(model - np.arange(len(tail)) / len(tail))))
        if d < best[0]:  # strictly: the first of equal D's, the largest tail
            best = (d, alpha, x[i], len(tail))
    return best[1], best[2], best[0], best[3]


def _esd(shape: tuple[int, int], rng: np.random.Generator, spikes: int = 0) -> np.ndarray:
    """Eigenvalues of W^T W above the rank tolerance, W Gaussian plus `spikes` planted ones."""
    w = rng.standard_normal(shape)
    for k in range(spikes):
        w += (3.0 + k) * np.outer(rng.standard_normal(shape[0]), rng.standard_normal(shape[1]))
    s = np.linalg.svd(w, compute_uv=False)
    return np.asarray(s[s > rank_tolerance(shape, SpectrumConfig()) * s[0]] ** 2)


def _spectra() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(27)
    pareto = (1 - rng.random(1500)) ** (-1 / 1.5)
    return [
        ("square, eigenvalues near 0", _esd((383, 383), rng)),
        ("rectangular with 4 spikes", _esd((1151, 383), rng, spikes=4)),
        ("square with 2 spikes", _esd((577, 577), rng, spikes=2)),
        ("uniform bulk under a Pareto tail", np.r_[rng.uniform(0.05, 1, 1300), pareto[:700]]),
        ("pure Pareto, flat KS landscape", pareto),
        ("heavy tail, alpha 1.5", (1 - rng.random(997)) ** (-2.0)),
        ("ties", np.round(rng.lognormal(size=601), 1) + 0.1),
        ("constant run under a small tail", np.r_[np.ones(200), rng.lognormal(size=23) + 1]),
        ("large, several blocks", np.r_[rng.gamma(4.0, size=2400), 40 * pareto[:101]]),
        ("short", rng.lognormal(size=21)),
    ]


SPECTRA = _spectra()


@pytest.mark.parametrize(("kind", "x"), SPECTRA, ids=[k for k, _ in SPECTRA])
@pytest.mark.parametrize(("min_tail", "max_candidates"), [(2, None), (10, None), (2, 60), (5, 400)])
def test_fit_power_law_matches_every_candidate_computed_plainly(
    kind: str, x: np.ndarray, min_tail: int, max_candidates: int | None
) -> None:
    fit = fit_power_law(x, min_tail=min_tail, max_candidates=max_candidates)
    alpha, xmin, ks, n_tail = plain_fit(x, min_tail, max_candidates)
    assert (fit.alpha, fit.xmin, fit.ks) == pytest.approx((alpha, xmin, ks), rel=1e-12), kind
    assert fit.n_tail == n_tail
    assert fit.sigma == pytest.approx((alpha - 1) / math.sqrt(n_tail), rel=1e-12)


def test_extreme_values_flag_nonfinite_matrices() -> None:
    for bad in (np.nan, np.inf, -np.inf):
        m = np.ones((5, 7))
        m[2, 3] = bad
        got = singular_values(m)
        assert got.shape == (5,) and np.isnan(got).all(), bad


def test_scale_of_an_int8_matrix_with_minus_128() -> None:
    """max |m| of int8 data is 128, which np.abs(int8) would wrap to -128."""
    m = np.random.default_rng(3).integers(-127, 128, size=(40, 60)).astype(np.int8)
    m[0, 0] = -128
    np.testing.assert_allclose(
        singular_values(m), np.linalg.svd(m.astype(np.float64), compute_uv=False), rtol=1e-10
    )


def test_metrics_repeat_exactly_with_mp_median_remembered_per_ratio() -> None:
    s = np.sqrt(_esd((700, 300), np.random.default_rng(4), spikes=2))
    s = np.r_[s, np.zeros(300 - s.size)]
    first, again = spectrum_metrics(s, (700, 300)), spectrum_metrics(s, (700, 300))
    assert first == again
    assert mp_median(3 / 7) == mp_median(np.float64(3) / 7) == mp_median(300 / 700)


@pytest.mark.parametrize("value", [1.0, 2.5, 0.3])
def test_a_tail_of_equal_values_gives_no_fit(value: float) -> None:
    """Every candidate's tail is one repeated value: nothing to fit, whatever its rounding."""
    fit = fit_power_law(np.full(300, value))
    assert math.isnan(fit.alpha) and fit.n_tail == 0
    mixed = fit_power_law(np.r_[np.linspace(0.1, 1.0, 50), np.full(50, value + 1.0)])
    assert mixed.xmin < value + 1.0  # the equal top values are never a tail of their own


# ---- the float32 Gram (`spectrum.gram = "float32"`) against float64 ---------------------------


def _planted_matrix(shape: tuple[int, int], kind: str, seed: int) -> np.ndarray:
    """Gaussian; Gaussian with a power-law tail of singular directions; half rank."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape).astype(np.float32) * np.float32(0.02)
    m = min(shape)
    if kind == "heavy":
        u, _ = np.linalg.qr(rng.standard_normal((shape[0], 32)))
        v, _ = np.linalg.qr(rng.standard_normal((shape[1], 32)))
        s = 0.02 * math.sqrt(max(shape)) * np.arange(1, 33) ** -0.7 * 8
        w += (u * s @ v.T).astype(np.float32)
    elif kind == "half-rank":
        w = (w[:, : m // 2] @ rng.standard_normal((m // 2, shape[1])).astype(np.float32)) / 30
    return w


FLOAT32_CASES = [((1536, 576), "gauss"), ((576, 1536), "heavy"), ((2048, 768), "heavy"),
                 ((1024, 1024), "gauss"), ((900, 300), "half-rank")]  # fmt: skip


def _float32_within_bounds(w: np.ndarray, eigen_bound: float) -> tuple[np.ndarray, np.ndarray]:
    """float32 against float64 Gram on `w`: every eigenvalue within the textbook bound and
    `eigen_bound` * lambda_1, every metric within the module docstring's bounds."""
    shape = (int(w.shape[0]), int(w.shape[1]))
    config = SpectrumConfig()
    floor = rank_tolerance(shape, config)
    exact = singular_values(w, floor=floor)
    fast = singular_values(w, floor=floor, gram="float32")
    lam, lam32 = exact**2, fast**2
    assert np.abs(lam32 - lam).max() <= max(shape) * np.finfo(np.float32).eps * lam.sum()
    assert np.abs(lam32 - lam).max() <= eigen_bound * lam[0]
    a, b = spectrum_metrics(exact, shape, config), spectrum_metrics(fast, shape, config)
    for key in ("spectral_norm", "frobenius_norm", "stable_rank", "energy_top1pct",
                "energy_top10pct"):  # fmt: skip
        assert b[key] == pytest.approx(a[key], rel=1e-6), key
    for key in ("mp_sigma", "mp_edge", "effective_rank"):
        assert b[key] == pytest.approx(a[key], rel=1e-4), key
    if a["alpha_xmin"] == pytest.approx(b["alpha_xmin"], rel=1e-4):
        for key in ("alpha", "alpha_ks"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, nan_ok=True), key
    for key in ("numerical_rank", "alpha_n_tail", "n_spikes"):
        assert b[key] == a[key], key
    return exact, fast


@pytest.mark.parametrize(("shape", "kind"), FLOAT32_CASES)
def test_a_float32_gram_stays_within_its_stated_bounds(shape: tuple[int, int], kind: str) -> None:
    exact, fast = _float32_within_bounds(_planted_matrix(shape, kind, seed=sum(shape)), 2e-8)
    if kind == "half-rank":  # the median is among the zeros: taken from the SVD, exactly
        assert np.count_nonzero(fast > 1e-6 * fast[0]) == min(shape) // 2
        np.testing.assert_allclose(fast, exact, rtol=0, atol=1e-12 * exact[0])


@pytest.mark.sample
def test_a_float32_gram_on_every_minilm_matrix(minilm: Checkpoint) -> None:
    anatomy = anatomy_of(minilm)
    names = [n for n in minilm.names() if anatomy[n].layout == "linear"
             and len(minilm.info(n).shape) == 2]  # fmt: skip
    assert len(names) == 37  # 36 in the layers, and the pooler
    for name in names:  # the super weights of the FFN outputs: errors up to ~2e-7 lambda_1
        _float32_within_bounds(minilm.read(name), 3e-7)


def test_the_gram_precision_is_a_checked_setting() -> None:
    with pytest.raises(StriateError, match=r"unknown spectrum\.gram 'float16'"):
        SpectrumConfig(gram="float16")
