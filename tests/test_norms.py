"""Norm outliers: planted entries in gain and bias vectors, robust z by hand, MAD = 0, NaN."""

from __future__ import annotations

import numpy as np
import pytest

from striate.analyses.norms import NormsConfig, find_norm_outliers


def _gain(d: int, seed: int = 0) -> np.ndarray:
    """A trained-looking gain: around 1 with a small spread."""
    return (1.0 + 0.02 * np.random.default_rng(seed).standard_normal(d)).astype(np.float32)


def test_planted_outliers_found_exactly_strongest_first() -> None:
    g = _gain(768)
    g[447], g[138], g[5] = 12.3, 0.2, -3.0
    found = find_norm_outliers(g, NormsConfig())
    assert [f.index for f in found] == [(447,), (5,), (138,)]
    assert all(f.kind == "norm_outlier" for f in found)
    assert [f.value for f in found] == pytest.approx([12.3, -3.0, 0.2], rel=1e-6)
    assert found[0].extra["z"] > 0 > found[1].extra["z"]
    assert [f.score for f in found] == [abs(float(f.extra["z"])) for f in found]


def test_z_matches_median_and_mad_by_hand() -> None:
    g = _gain(1024, seed=3)
    g[100] = 2.0
    x = g.astype(np.float64)
    med = np.median(x)
    expected = (2.0 - med) / (1.4826 * np.median(np.abs(x - med)))
    (f,) = find_norm_outliers(g, NormsConfig())
    np.testing.assert_allclose(f.extra["z"], expected, rtol=1e-9)
    np.testing.assert_allclose(f.extra["median"], med, rtol=1e-12)
    assert f.detail == f"gain[100] = 2 vs median {med:.4g} (z={expected:.3g})"


@pytest.mark.parametrize("d", [384, 768, 1024, 1600, 2048, 4096])
def test_no_false_positives_on_gaussian_vectors(d: int) -> None:
    for seed in range(10):
        g = np.random.default_rng(seed).standard_normal(d).astype(np.float32)
        assert find_norm_outliers(g, NormsConfig()) == []
        assert find_norm_outliers(1 + 0.05 * g, NormsConfig()) == []


def test_all_ones_with_three_outliers_uses_the_mad_zero_fallback() -> None:
    g = np.ones(768, np.float32)
    g[[10, 300, 767]] = [5.0, 0.0, 2.0]
    x = g.astype(np.float64)
    assert np.median(np.abs(x - 1)) == 0  # MAD = 0
    scale = 1.2533 * np.mean(np.abs(x - 1))
    found = find_norm_outliers(g, NormsConfig())
    assert [f.index for f in found] == [(10,), (300,), (767,)]
    np.testing.assert_allclose([f.extra["z"] for f in found], [4 / scale, -1 / scale, 1 / scale])


def test_constant_vector_and_float_noise_around_it_have_no_outliers() -> None:
    assert find_norm_outliers(np.ones(512, np.float32), NormsConfig()) == []
    g = np.ones(512, np.float32)
    g[[3, 77]] = 1.0 + 1e-6  # below rel_floor: 0.1% of the typical gain
    assert find_norm_outliers(g, NormsConfig()) == []
    assert [f.index for f in find_norm_outliers(g, NormsConfig(rel_floor=0.0))] == [(3,), (77,)]


def test_zero_bias_with_trained_entries() -> None:
    b = np.zeros(384, np.float32)
    b[[7, 99]] = [0.5, -0.8]
    found = find_norm_outliers(b, NormsConfig(), label="bias")
    assert [f.index for f in found] == [(99,), (7,)]
    assert found[0].detail.startswith("bias[99] = -0.8 vs median 0 ")


def test_nonfinite_entries_are_ignored_and_never_reported() -> None:
    g = _gain(768, seed=1)
    g[[0, 50, 51]] = [np.nan, np.inf, -np.inf]
    g[600] = 9.0
    found = find_norm_outliers(g, NormsConfig())
    assert [f.index for f in found] == [(600,)]
    assert np.isfinite(found[0].extra["median"])
    assert find_norm_outliers(np.full(16, np.nan, np.float32), NormsConfig()) == []


def test_cap_and_threshold() -> None:
    g = _gain(2048, seed=2)
    planted = np.arange(100, 120)
    g[planted] = 3.0 + 0.1 * np.arange(20)
    found = find_norm_outliers(g, NormsConfig(max_per_tensor=5))
    assert [f.index[0] for f in found] == [119, 118, 117, 116, 115]
    assert find_norm_outliers(g, NormsConfig(z=1e6)) == []
    assert len(find_norm_outliers(g, NormsConfig(max_per_tensor=100))) == 20


def test_indices_are_storage_coordinates_for_2d_gains() -> None:
    g = _gain(8 * 64).reshape(8, 64)  # e.g. a per-head qk-norm
    g[3, 17] = 10.0
    (f,) = find_norm_outliers(g, NormsConfig())
    assert f.index == (3, 17)
    assert f.detail.startswith("gain[3, 17] = 10 ")


def test_empty_and_all_nan_inputs() -> None:
    assert find_norm_outliers(np.zeros(0, np.float32), NormsConfig()) == []
    assert find_norm_outliers(np.full(8, np.nan, np.float32), NormsConfig()) == []
