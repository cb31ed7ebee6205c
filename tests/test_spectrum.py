"""Spectrum analysis: planted singular values, closed forms, random-matrix laws, a planted power
law, conv layouts, the figures, and MiniLM's 36 matrices."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from striate.analyses.powerlaw import fit_power_law
from striate.analyses.spectrum import (
    SPECTRUM_COUNTS,
    SPECTRUM_KEYS,
    SpectrumConfig,
    as_matrix,
    mp_median,
    mp_pdf,
    rank_tolerance,
    singular_values,
    skip_reason,
    spectrum_metrics,
)
from striate.anatomy import anatomy_of
from striate.checkpoint import Checkpoint
from striate.errors import StriateError
from striate.render.spectrum_figures import (
    depth_series,
    draw_depth_metrics,
    draw_spectrum,
    esd_histogram,
)

SHAPES = [(7, 11), (11, 7), (64, 33), (33, 64), (13, 13), (1, 5), (300, 17)]


def planted(s: np.ndarray, shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """U diag(s) V^T of `shape` with Haar-random orthonormal U, V (float64)."""
    rng = np.random.default_rng(seed)
    k = len(s)
    u, _ = np.linalg.qr(rng.standard_normal((shape[0], k)))
    v, _ = np.linalg.qr(rng.standard_normal((shape[1], k)))
    return np.asarray((u * s) @ v.T)


# singular values -------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_planted_singular_values_recovered_to_1e_10(shape: tuple[int, int]) -> None:
    k = min(shape)
    s = np.sort(np.geomspace(0.1, 10.0, k) * np.random.default_rng(1).uniform(1, 1.05, k))[::-1]
    got = singular_values(planted(s, shape))
    assert got.dtype == np.float64 and got.shape == (k,)
    np.testing.assert_allclose(got, s, rtol=1e-10)
    np.testing.assert_allclose(singular_values(planted(s, shape).T), s, rtol=1e-10)


def test_ill_conditioned_matrix_uses_the_svd_and_keeps_tiny_values() -> None:
    s = np.geomspace(1.0, 1e-12, 30)  # Gram eigenvalues would lose everything below ~1e-8
    got = singular_values(planted(s, (40, 30), seed=2))
    np.testing.assert_allclose(got, s, rtol=0, atol=1e-14)
    np.testing.assert_allclose(got[:20], s[:20], rtol=1e-6)


def test_rank_deficient_matrix_has_zero_tail() -> None:
    s = np.array([5.0, 3.0, 2.0])
    got = singular_values(planted(s, (50, 20), seed=3))
    np.testing.assert_allclose(got[:3], s, rtol=1e-12)
    np.testing.assert_allclose(got[3:], 0, atol=1e-13)


def _count_svds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    svd = np.linalg.svd

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return svd(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(np.linalg, "svd", counted)
    return calls


def test_values_below_the_rank_tolerance_cost_no_svd(monkeypatch: pytest.MonkeyPatch) -> None:
    # 5 zero singular values under 115 spread over two decades: the Gram cannot give the zeros
    # accurately, but with floor = the rank tolerance none of them is needed
    s = np.r_[np.geomspace(10.0, 0.1, 115), np.zeros(5)]
    m, shape = planted(s, (200, 120), seed=6), (200, 120)
    config = SpectrumConfig(rank_tol=1e-3)
    svds = _count_svds(monkeypatch)
    exact = singular_values(m)
    assert len(svds) == 1  # floor 0: every value accurate, so the SVD
    fast = singular_values(m, floor=rank_tolerance(shape, config))
    assert len(svds) == 1  # no second SVD
    np.testing.assert_allclose(fast[:115], s[:115], rtol=1e-10)
    assert np.all(fast[115:] < 1e-6 * s[0])  # the Gram's absolute accuracy
    a, b = spectrum_metrics(exact, shape, config), spectrum_metrics(fast, shape, config)
    assert a["numerical_rank"] == b["numerical_rank"] == 115
    for key in SPECTRUM_KEYS:
        rtol = 1e-6 if key == "effective_rank" else 1e-10
        assert b[key] == pytest.approx(a[key], rel=rtol), key


def test_the_svd_still_runs_when_small_values_are_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    svds = _count_svds(monkeypatch)
    half = planted(np.r_[np.ones(40), np.zeros(60)], (150, 100), seed=7)  # zeros hold the median
    np.testing.assert_allclose(singular_values(half, floor=1e-3)[40:], 0, atol=1e-13)
    assert len(svds) == 1
    tiny = planted(np.geomspace(1.0, 1e-7, 30), (40, 30), seed=8)  # needed down to 1e-5 s_1
    np.testing.assert_allclose(singular_values(tiny, floor=1e-5), np.geomspace(1.0, 1e-7, 30),
                               rtol=1e-6, atol=1e-14)  # fmt: skip
    assert len(svds) == 2


def test_rank_tolerance() -> None:
    assert rank_tolerance((10, 300), SpectrumConfig()) == 300 * np.finfo(np.float32).eps
    assert rank_tolerance((10, 300), SpectrumConfig(rank_tol=0.01)) == 0.01


def test_singular_values_of_float32_and_huge_scales() -> None:
    m = planted(np.array([4.0, 2.0, 1.0]), (9, 3), seed=4)
    np.testing.assert_allclose(singular_values(m.astype(np.float32)), [4, 2, 1], rtol=1e-6)
    np.testing.assert_allclose(singular_values(m * 1e200), [4e200, 2e200, 1e200], rtol=1e-12)


def test_singular_values_edge_cases() -> None:
    assert singular_values(np.zeros((0, 4))).shape == (0,)
    np.testing.assert_array_equal(singular_values(np.zeros((3, 5))), np.zeros(3))
    bad = np.ones((4, 6))
    bad[1, 2] = np.nan
    assert np.isnan(singular_values(bad)).all() and singular_values(bad).shape == (4,)
    with pytest.raises(ValueError, match="2-D"):
        singular_values(np.ones(3))


# as_matrix ---------------------------------------------------------------------------------


def test_conv_layouts_give_the_same_matrix() -> None:
    oihw = np.random.default_rng(5).normal(size=(8, 3, 5, 2))  # [out, in, kh, kw]
    hwio = oihw.transpose(2, 3, 1, 0)  # Keras [kh, kw, in, out]
    a, b = as_matrix(oihw, "oihw"), as_matrix(hwio, "hwio")
    assert a is not None and b is not None and a.shape == (8, 30)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[2], oihw[2].reshape(-1))  # row = one output channel
    conv1d_3d = oihw[..., 0]  # [out, in, k]
    assert as_matrix(conv1d_3d, None).shape == (8, 15)  # type: ignore[union-attr]
    np.testing.assert_array_equal(
        as_matrix(conv1d_3d.transpose(2, 1, 0), "hwio"), as_matrix(conv1d_3d, "oihw")
    )


def test_as_matrix_2d_layouts_and_vectors() -> None:
    w = np.arange(12.0).reshape(3, 4)
    assert as_matrix(w, "linear") is w
    np.testing.assert_array_equal(as_matrix(w, "conv1d"), w.T)  # GPT-2 [in, out] -> [out, in]
    np.testing.assert_array_equal(as_matrix(w, "embedding"), w)
    assert as_matrix(np.ones(5), None) is None
    assert as_matrix(np.float32(1.0) * np.ones(()), None) is None
    assert as_matrix(np.ones((4, 4)), "vector") is None


def test_skip_reason_and_config_errors() -> None:
    cfg = SpectrumConfig(min_size=8, max_side=100)
    assert skip_reason((2, 384), cfg) == "smaller side 2 < spectrum.min_size 8"
    assert skip_reason((384, 384), cfg) == (
        "smaller side 384 > spectrum.max_side 100 (raise it to analyse)"
    )
    assert skip_reason((8, 100), cfg) is None
    with pytest.raises(StriateError) as err:
        SpectrumConfig(mp_noise="mean")
    assert str(err.value) == """unknown spectrum.mp_noise 'mean' (use "median" or "rms")"""


# metrics against closed forms --------------------------------------------------------------


def test_metrics_closed_forms() -> None:
    s = np.array([4.0, 2.0, 2.0, 1.0, 0.5] + [0.25] * 195)  # 200 singular values
    r = spectrum_metrics(s, (300, 200))
    assert list(r) == list(SPECTRUM_KEYS)
    energy = float(np.sum(s**2))
    assert r["spectral_norm"] == 4.0
    assert r["frobenius_norm"] == pytest.approx(math.sqrt(energy), rel=1e-15)
    assert r["stable_rank"] == pytest.approx(energy / 16, rel=1e-15)
    p = s / s.sum()
    assert r["effective_rank"] == pytest.approx(math.exp(-np.sum(p * np.log(p))), rel=1e-13)
    # top 1% of 200 directions = 2 (ceil), top 10% = 20
    assert r["energy_top1pct"] == pytest.approx((16 + 4) / energy, rel=1e-15)
    assert r["energy_top10pct"] == pytest.approx(float(np.sum(s[:20] ** 2)) / energy, rel=1e-15)
    assert r["numerical_rank"] == 200
    assert all(isinstance(r[k], int) for k in SPECTRUM_COUNTS)


@pytest.mark.parametrize("k", [1, 3, 17])
def test_effective_rank_of_k_equal_values_is_k(k: int) -> None:
    s = np.r_[np.full(k, 2.5), np.zeros(20 - k)]
    r = spectrum_metrics(s, (20, 30))
    assert r["effective_rank"] == pytest.approx(k, rel=1e-12)
    assert r["stable_rank"] == pytest.approx(k, rel=1e-12)
    assert r["numerical_rank"] == k


def test_energy_share_uses_ceil_of_the_fraction() -> None:
    s = np.arange(150, 0, -1.0)  # 1% of 150 = 1.5 -> 2 directions, 10% -> 15
    r = spectrum_metrics(s, (150, 150))
    assert r["energy_top1pct"] == pytest.approx((150**2 + 149**2) / np.sum(s**2), rel=1e-14)
    assert r["energy_top10pct"] == pytest.approx(np.sum(s[:15] ** 2) / np.sum(s**2), rel=1e-14)


@pytest.mark.parametrize("noise", [1e-10, 1e-7])
def test_numerical_rank_of_rank_r_plus_tiny_noise(noise: float) -> None:
    rng = np.random.default_rng(6)
    w = planted(np.array([10.0, 7.0, 3.0, 1.0, 0.5]), (120, 80), seed=7)
    w += noise * rng.standard_normal(w.shape)  # noise singular values ~ noise * 20 << tol
    r = spectrum_metrics(singular_values(w), w.shape)
    assert r["numerical_rank"] == 5
    assert spectrum_metrics(singular_values(w), w.shape, SpectrumConfig(rank_tol=1e-14))[
        "numerical_rank"
    ] == 80  # fmt: skip


def test_zero_and_nonfinite_spectra() -> None:
    r = spectrum_metrics(np.zeros(10), (10, 12))
    assert r["spectral_norm"] == 0 and r["numerical_rank"] == 0 and r["n_spikes"] == 0
    assert math.isnan(r["stable_rank"]) and math.isnan(r["alpha"])
    assert all(math.isnan(v) for v in spectrum_metrics(np.full(10, np.nan), (10, 12)).values())
    with pytest.raises(ValueError, match="9 singular values for a matrix of shape"):
        spectrum_metrics(np.ones(9), (10, 12))


# random matrices: Marchenko-Pastur ---------------------------------------------------------


def _mp_cdf(lam: np.ndarray, shape: tuple[int, int], sigma: float) -> np.ndarray:
    grid = np.linspace(0, float(lam.max()) * 1.01, 200_001)
    dens = mp_pdf(grid, shape, sigma)
    cdf = np.concatenate([[0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(grid))])
    return np.interp(lam, grid, cdf)


@pytest.mark.parametrize(("shape", "ratio"), [((2000, 500), 0.25), ((600, 600), 1.0)])
def test_gaussian_matrix_follows_marchenko_pastur(shape: tuple[int, int], ratio: float) -> None:
    sigma = 0.3
    w = np.random.default_rng(8).normal(0, sigma, size=shape)
    s = singular_values(w)
    r = spectrum_metrics(s, shape)
    assert r["mp_sigma"] == pytest.approx(sigma, rel=0.02)
    n, m = max(shape), min(shape)
    assert r["mp_edge"] == pytest.approx(sigma**2 * (math.sqrt(n) + math.sqrt(m)) ** 2, rel=0.04)
    assert s[0] ** 2 == pytest.approx(r["mp_edge"], rel=0.04)  # the top sits at the edge
    lam = np.sort(s**2)
    ks = np.max(np.abs(_mp_cdf(lam, shape, sigma) - (np.arange(m) + 0.5) / m))
    assert ks < 0.02  # Kolmogorov-Smirnov distance to the MP law
    assert r["n_spikes"] == 0
    assert np.median(lam) / (n * sigma**2) == pytest.approx(mp_median(ratio), rel=0.02)


def test_mp_pdf_integrates_to_one_and_mp_median_matches_quadrature() -> None:
    for ratio in (0.05, 0.3, 0.7):  # (at ratio 1 the density diverges at 0: no plain sum)
        shape = (1000, round(1000 * ratio))
        grid = np.linspace(0, 5 * 1000 * 0.04, 400_001)
        dens = mp_pdf(grid, shape, 0.2)
        assert np.trapezoid(dens, grid) == pytest.approx(1, abs=2e-3)
        cdf = np.cumsum(dens) * (grid[1] - grid[0])
        med = np.interp(0.5, cdf, grid) / (1000 * 0.04)
        assert mp_median(shape[1] / 1000) == pytest.approx(med, rel=1e-3)
    assert mp_median(1.0) == pytest.approx(0.6527759, abs=1e-6)  # scipy.integrate reference


@pytest.mark.parametrize("seed", range(4))
def test_gaussian_plus_planted_rank_3_has_three_spikes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = 1000, 400  # noise edge s = sqrt(n) + sqrt(m) = 51.6; BBP threshold (nm)^(1/4) = 25
    w = rng.standard_normal((n, m)) + planted(np.array([150.0, 120.0, 100.0]), (n, m), seed)
    for noise in ("median", "rms"):
        r = spectrum_metrics(singular_values(w), w.shape, SpectrumConfig(mp_noise=noise))
        assert r["n_spikes"] == 3, noise
    assert r["mp_sigma"] > 1  # rms counts the signal as noise: an upper bound
    assert spectrum_metrics(singular_values(w), w.shape)["mp_sigma"] == pytest.approx(1, rel=0.02)


# power law ---------------------------------------------------------------------------------


def _reference_fit(x: np.ndarray) -> tuple[float, float, float]:
    """Clauset et al. written out plainly: every x_min but the largest, KS below each step."""
    x = np.sort(x)
    best = (math.inf, math.nan, math.nan)
    for i in range(len(x) - 1):
        tail = x[i:]
        alpha = 1 + len(tail) / np.sum(np.log(tail / x[i]))
        d = np.max(np.abs(1 - (tail / x[i]) ** (1 - alpha) - np.arange(len(tail)) / len(tail)))
        if d < best[0]:
            best = (d, alpha, x[i])
    return best[1], best[2], best[0]


@pytest.mark.parametrize("seed", range(3))
def test_fit_power_law_matches_a_plain_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = np.r_[rng.uniform(0.1, 1, 150), (1 - rng.random(150)) ** (-1 / 1.8)]
    fit = fit_power_law(x)
    alpha, xmin, ks = _reference_fit(x)
    assert (fit.alpha, fit.xmin, fit.ks) == pytest.approx((alpha, xmin, ks), rel=1e-12)
    assert fit.n_tail == int(np.sum(x >= xmin)) and fit.n == 300
    scaled = fit_power_law(x * 37.0)  # alpha and D do not depend on the units
    assert (scaled.alpha, scaled.ks, scaled.xmin) == pytest.approx(
        (fit.alpha, fit.ks, fit.xmin * 37), rel=1e-12
    )


@pytest.mark.parametrize(("alpha", "seed"), [(2.0, 0), (2.5, 1), (3.5, 2), (5.0, 3)])
def test_planted_power_law_spectrum_is_recovered(alpha: float, seed: int) -> None:
    """Eigenvalues drawn from a Pareto density lambda^-alpha (lambda >= 1) become the singular
    values sqrt(lambda) of a 600 x 900 matrix; alpha comes back within 4 standard errors
    (alpha - 1) / sqrt(n_tail) (seed 3 is 1.85 of them off)."""
    rng = np.random.default_rng(seed)
    lam = (1 - rng.random(600)) ** (-1 / (alpha - 1))
    w = planted(np.sort(np.sqrt(lam))[::-1], (600, 900), seed)
    r = spectrum_metrics(singular_values(w), w.shape)
    err = (alpha - 1) / math.sqrt(r["alpha_n_tail"])
    assert r["alpha_n_tail"] >= 100
    assert r["alpha"] == pytest.approx(alpha, abs=4 * err)
    assert r["alpha_ks"] < 0.06


def test_power_law_tail_above_a_bulk_finds_its_xmin() -> None:
    """A uniform bulk on [0.05, 1] under a Pareto tail (alpha 2.5) from 1: over 8 draws the
    KS choice of x_min sits at 1 (median within 5%; single draws may pick a point up the
    tail), and alpha is within 4 standard errors every time."""
    xmins = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        x = np.r_[rng.uniform(0.05, 1.0, 2000), (1 - rng.random(800)) ** (-1 / 1.5)]
        fit = fit_power_law(x)
        assert fit.alpha == pytest.approx(2.5, abs=4 * fit.sigma)
        xmins.append(fit.xmin)
        thin = fit_power_law(x, max_candidates=300)  # a subset of the candidates:
        assert thin.ks >= fit.ks  # never a better D, and still a good alpha
        assert thin.alpha == pytest.approx(2.5, abs=4 * thin.sigma)
    assert np.median(xmins) == pytest.approx(1.0, rel=0.05)


def test_fit_power_law_degenerate_inputs() -> None:
    assert math.isnan(fit_power_law(np.array([1.0])).alpha)
    assert math.isnan(fit_power_law(np.ones(50)).alpha)  # all equal: no tail to fit
    assert math.isnan(fit_power_law(np.arange(1.0, 10), min_n=20).alpha)
    assert fit_power_law(np.array([0, -1, np.nan, np.inf, 1, 2, 3.0])).n == 3


# figures -----------------------------------------------------------------------------------


def test_esd_histogram_is_a_density_on_log_bins() -> None:
    lam = np.random.default_rng(10).lognormal(size=5000)
    edges, dens = esd_histogram(np.r_[lam, 0.0, np.nan])
    assert edges.shape == (61,) and dens.shape == (60,)
    assert np.sum(dens * np.diff(edges)) == pytest.approx(1, rel=1e-12)
    np.testing.assert_allclose(np.diff(np.log(edges)), np.log(edges[1] / edges[0]), rtol=1e-9)
    assert esd_histogram(np.zeros(3))[0].size == 0


def _png(path: Path) -> np.ndarray:
    img = np.asarray(matplotlib.image.imread(path))
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 600
    return img


def test_draw_spectrum_writes_a_png_with_a_math_looking_title(tmp_path: Path) -> None:
    w = np.random.default_rng(11).normal(size=(300, 120)) + planted(
        np.array([80.0, 60.0]), (300, 120)
    )
    s = singular_values(w)
    path = tmp_path / "sub" / "spec.png"
    draw_spectrum(s, spectrum_metrics(s, w.shape), "h.$0$.a_{b}^2 \\alpha", path, shape=w.shape)
    _png(path)
    assert not list(path.parent.glob(".*.tmp"))  # atomic: no temp file left behind
    draw_spectrum(np.zeros(5), spectrum_metrics(np.zeros(5), (5, 9)), "zero", tmp_path / "z.png")
    _png(tmp_path / "z.png")  # the failing panel shows its error, the file still exists


def test_draw_depth_metrics(tmp_path: Path) -> None:
    rows = []
    for layer in range(4):
        for role in ("attn_q", "ffn_in", "made_up_role"):
            rows.append({"name": f"l{layer}.{role}", "role": role, "layer": layer,
                         "alpha": 2 + layer * 0.5, "stable_rank": 10.0 * (layer + 1),
                         "spectral_norm": 10.0**layer, "n_spikes": layer})  # fmt: skip
    rows.append({"name": "emb", "role": "embedding", "layer": None, "alpha": 3.0})
    table = pd.DataFrame(rows)
    table.loc[2, "alpha"] = np.nan
    draw_depth_metrics(table, tmp_path / "depth.png")
    _png(tmp_path / "depth.png")
    draw_depth_metrics(table.iloc[0:0], tmp_path / "empty.png")
    _png(tmp_path / "empty.png")


def test_depth_series_splits_roles_with_several_matrices_per_layer() -> None:
    names = ["_blocks.1._expand_conv.weight", "_blocks.1._depthwise_conv.weight",
             "_blocks.2._expand_conv.weight", "_blocks.2._depthwise_conv.weight",
             "encoder.layer.2.attention.self.query.weight"]  # fmt: skip
    table = pd.DataFrame(
        {"name": names, "role": ["conv"] * 4 + ["attn_q"], "layer": [1, 1, 2, 2, 2]}
    )
    assert depth_series(table) == [
        "conv _expand_conv", "conv _depthwise_conv", "conv _expand_conv", "conv _depthwise_conv",
        "attn_q",
    ]  # fmt: skip


# real weights ------------------------------------------------------------------------------


@pytest.mark.sample
def test_minilm_matrices_have_plausible_spectra(minilm: Checkpoint) -> None:
    anatomy = anatomy_of(minilm)
    rows = []
    for name in minilm.names():
        t = anatomy[name]
        if t.layer is None or t.layout != "linear":
            continue
        m = as_matrix(minilm.read(name), t.layout)
        assert m is not None and skip_reason(m.shape, SpectrumConfig()) is None
        rows.append({"role": t.role, **spectrum_metrics(singular_values(m), m.shape)})
    table = pd.DataFrame(rows)
    assert len(table) == 36
    assert np.isfinite(table.drop(columns="role").to_numpy(dtype=float)).all()
    assert table["alpha"].between(2.0, 9.0).all()  # trained layers: heavy tails
    assert 2.5 < table["alpha"].median() < 5.0
    assert (table["alpha_n_tail"] >= 9).all() and (table["alpha_ks"] < 0.15).all()
    assert table["stable_rank"].between(5, 100).all()  # far below min(shape) = 384
    assert (table["effective_rank"] < 384).all() and (table["numerical_rank"] >= 380).all()
    assert (table["energy_top1pct"] < table["energy_top10pct"]).all()
    assert table["n_spikes"].between(1, 100).all()
    ffn = table[table["role"] == "ffn_in"]
    assert (ffn["spectral_norm"] > 7).all()  # the largest operators of the model
