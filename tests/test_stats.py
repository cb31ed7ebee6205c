"""`tensor_stats` and the robust helpers: closed forms, planted fractions, a second
implementation (numpy, float64), and NaN / Inf / empty tensors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from striate.analyses.robust import (
    MEAN_AD_TO_SIGMA,
    line_medians,
    line_sigma,
    median,
    median_sigma,
    robust_z,
)
from striate.analyses.stats import STAT_KEYS, tensor_stats

SHAPES = [(1,), (2, 3), (5, 7), (11, 3, 2), (257, 1601)]


def _reference(x: np.ndarray) -> dict[str, float]:
    """A second implementation in float64 on the finite values."""
    v = x[np.isfinite(x)].astype(np.float64)
    d = v - v.mean()
    m2, m4 = np.mean(d**2), np.mean(d**4)
    return {"mean": v.mean(), "std": v.std(), "min": v.min(), "max": v.max(),
            "abs_max": np.abs(v).max(), "median": np.median(v),
            "kurtosis": m4 / m2**2 - 3 if m2 > 0 else np.nan}  # fmt: skip


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_float64_reference_on_random_tensors(shape: tuple[int, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    w = (rng.standard_t(5, size=shape) * 0.02 + 0.001).astype(np.float32)
    s = tensor_stats(w)
    assert list(s) == list(STAT_KEYS)
    assert s["numel"] == w.size and (s["n_nan"], s["n_inf"]) == (0, 0)
    ref = _reference(w)
    for key in ("mean", "std", "min", "max", "abs_max", "median"):
        assert s[key] == pytest.approx(ref[key], rel=1e-9, abs=1e-12), key
    if w.size > 1:
        assert s["kurtosis"] == pytest.approx(ref["kurtosis"], rel=1e-9, abs=1e-12)


def test_kurtosis_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    w = np.random.default_rng(3).laplace(size=(300, 70)).astype(np.float32)
    expected = stats.kurtosis(w.ravel().astype(np.float64))  # Fisher, biased: the defaults
    assert tensor_stats(w)["kurtosis"] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("n", [2, 3, 5, 7, 11, 101])
def test_kurtosis_of_discrete_uniform_closed_form(n: int) -> None:
    # excess kurtosis of the uniform distribution on n equally spaced points
    w = np.tile(np.arange(n, dtype=np.float32), 13)
    expected = -6 * (n * n + 1) / (5 * (n * n - 1))
    assert tensor_stats(w)["kurtosis"] == pytest.approx(expected, rel=1e-12)


def test_kurtosis_of_a_gaussian_is_near_zero() -> None:
    w = np.random.default_rng(0).standard_normal(1_000_000).astype(np.float32)
    # the standard error of the sample excess kurtosis is sqrt(24 / n) ~ 0.005
    assert tensor_stats(w)["kurtosis"] == pytest.approx(0.0, abs=0.025)


@pytest.mark.parametrize("k", [0, 1, 137, 2000])
def test_planted_outliers_give_exactly_their_fraction(k: int) -> None:
    rng = np.random.default_rng(k)
    n = 100_000
    w = rng.uniform(-1, 1, size=n).astype(np.float32)  # no tail beyond 6 robust sigmas (4.4)
    where = rng.choice(n, size=k, replace=False)
    w[where] = rng.choice([-50.0, 50.0], size=k)
    s = tensor_stats(w.reshape(400, 250))
    assert s["frac_beyond_6sigma"] == pytest.approx(k / n, rel=1e-12, abs=1e-15)
    # robust sigma of U(-1, 1): MAD = 0.5, barely moved by 2% outliers
    assert s["robust_sigma"] == pytest.approx(1.4826 * 0.5, rel=0.03)


def test_constant_tensor() -> None:
    s = tensor_stats(np.full((5, 7), 3.25, dtype=np.float32))
    assert (s["mean"], s["std"], s["min"], s["max"], s["median"]) == (3.25, 0.0, 3.25, 3.25, 3.25)
    assert (s["robust_sigma"], s["frac_beyond_6sigma"], s["n_zero"]) == (0.0, 0.0, 0)
    assert np.isnan(s["kurtosis"])  # m2 = 0: undefined


def test_sparse_tensor_falls_back_to_mean_absolute_deviation() -> None:
    w = np.zeros(1000, dtype=np.float32)
    w[::10] = np.tile([1.0, -1.0], 50)  # 90% zeros: MAD = 0
    s = tensor_stats(w)
    assert s["median"] == 0.0 and s["n_zero"] == 900
    assert s["robust_sigma"] == pytest.approx(MEAN_AD_TO_SIGMA * 0.1, rel=1e-12)
    assert s["frac_beyond_6sigma"] == pytest.approx(0.1, rel=1e-12)  # 1 > 6 * 0.125


def test_nan_and_inf_are_counted_and_left_out() -> None:
    w = np.array([[1, 2, np.nan, 0], [np.inf, 3, 4, -np.inf], [np.nan, np.nan, 0, 5]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = tensor_stats(w)
    assert (s["numel"], s["n_nan"], s["n_inf"], s["n_zero"]) == (12, 3, 2, 2)
    finite = np.array([1, 2, 0, 3, 4, 0, 5], np.float64)
    assert s["mean"] == pytest.approx(finite.mean(), rel=1e-12)
    assert s["std"] == pytest.approx(finite.std(), rel=1e-12)
    assert (s["min"], s["max"], s["abs_max"], s["median"]) == (0.0, 5.0, 5.0, 2.0)


@pytest.mark.parametrize("w", [np.zeros((0, 4), np.float32), np.full((3, 2), np.nan, np.float32),
                               np.array([np.inf, -np.inf, np.nan], np.float32)])  # fmt: skip
def test_empty_and_all_nonfinite_give_nan_stats_and_counts(w: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = tensor_stats(w)
    assert s["numel"] == w.size and s["n_nan"] + s["n_inf"] == w.size and s["n_zero"] == 0
    assert s["n_nan"] == int(np.isnan(w).sum())
    for key in set(STAT_KEYS) - {"numel", "n_nan", "n_inf", "n_zero"}:
        assert np.isnan(s[key]), key
    assert all(isinstance(s[k], int) for k in ("numel", "n_nan", "n_inf", "n_zero"))


def test_mean_is_accumulated_in_float64() -> None:
    w = np.full(3_000_001, 0.1, dtype=np.float32)
    w[-1] = 1e4  # a naive float32 running sum would lose the small values against this one
    expected = (3_000_000 * float(np.float32(0.1)) + 1e4) / 3_000_001
    assert tensor_stats(w)["mean"] == pytest.approx(expected, rel=1e-12)


# robust helpers


def test_median_sigma_and_robust_z() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 100.0, np.nan])
    med, sigma = median_sigma(x)
    assert med == 3.0 and sigma == pytest.approx(1.4826)
    z, med, sigma = robust_z(x)
    np.testing.assert_allclose(z[:5], (x[:5] - 3.0) / 1.4826, rtol=1e-12)
    assert np.isnan(z[5]) and med == 3.0
    z, _, sigma = robust_z(np.array([2.0, 2.0, np.inf]))
    assert sigma == 0.0 and list(z[:2]) == [0.0, 0.0] and np.isnan(z[2])


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (7, 5), (11, 64), (64, 11)])
@pytest.mark.parametrize("axis", [0, 1])
def test_line_medians_match_nanmedian(shape: tuple[int, int], axis: int) -> None:
    rng = np.random.default_rng(sum(shape) + axis)
    a = rng.standard_normal(shape).astype(np.float32)
    a[rng.random(shape) < 0.2] = np.nan  # lines with different numbers of NaN, some all-NaN
    a[rng.random(shape) < 0.05] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nanmedian warns on all-NaN lines
        expected = np.nanmedian(np.where(np.isfinite(a), a, np.nan), axis=axis)
    np.testing.assert_allclose(line_medians(a, axis), expected, rtol=1e-6)
    assert median(a) == pytest.approx(float(np.median(a[np.isfinite(a)])), rel=1e-6)


def test_line_sigma_is_a_gaussian_sigma_unmoved_by_one_huge_value() -> None:
    g = np.random.default_rng(0).standard_normal((50, 20_000)).astype(np.float32)
    g *= np.linspace(1, 5, 50, dtype=np.float32)[:, None]
    g[:, 7] = 1e6
    np.testing.assert_allclose(line_sigma(g, 1), np.linspace(1, 5, 50), rtol=0.02)
    zeros = np.zeros((3, 100), np.float32)
    zeros[1, :4] = 1.0  # 96% zeros: falls back to 1.2533 * mean |x|
    zeros[2] = np.nan
    out = line_sigma(zeros, 1)
    assert out[0] == 0.0 and out[1] == pytest.approx(MEAN_AD_TO_SIGMA * 0.04) and np.isnan(out[2])
