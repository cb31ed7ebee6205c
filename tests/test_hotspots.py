"""`find_hotspots` on Gaussian matrices and kernels with planted weights and lines."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from striate.analyses.finding import Finding
from striate.analyses.hotspots import HotspotsConfig, find_hotspots

Z10 = HotspotsConfig()


def _noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _indices(found: list[Finding]) -> set[tuple[int | None, ...]]:
    return {f.index for f in found}


def test_planted_hotspots_exact_indices_and_monotone_scores() -> None:
    w = _noise((500, 700))
    strengths = [25.0, -30.0, 40.0, -60.0, 100.0, 250.0]  # in units of the noise sigma
    spots = [(11 + 80 * k, 3 + 110 * k) for k in range(len(strengths))]
    for (r, c), s in zip(spots, strengths, strict=True):
        w[r, c] = s
    w[7, 650] = 6.0  # a 6-sigma weight is noise, not a hotspot
    found = find_hotspots(w)
    assert [f.index for f in found] == spots[::-1]  # strongest first = the planted order reversed
    assert [f.value for f in found] == strengths[::-1]
    scores = [f.score for f in found]
    assert scores == sorted(scores, reverse=True)
    for f, s in zip(found, strengths[::-1], strict=True):
        assert f.score == pytest.approx(abs(s), rel=0.15)  # z in units of the noise sigma


def test_twelve_sigma_is_found_and_alpha_is_the_expected_count() -> None:
    w = _noise((400, 300), seed=1)
    w[10, 20], w[200, 100], w[399, 299] = 12.0, -15.0, 18.0
    found = find_hotspots(w)
    assert _indices(found) == {(10, 20), (200, 100), (399, 299)}
    for f in found:
        assert f.extra["expected"] <= HotspotsConfig().alpha
        assert f.significance == pytest.approx(-np.log10(f.extra["expected"]))
    by_index = {f.index: f.significance for f in found}
    assert by_index[(10, 20)] < by_index[(200, 100)] < by_index[(399, 299)]
    strictest = HotspotsConfig(alpha=10 ** -(by_index[(200, 100)] - 1e-6))
    assert _indices(find_hotspots(w, strictest)) == {(200, 100), (399, 299)}


def test_lines_are_not_hotspots_but_a_hotspot_on_a_line_is() -> None:
    w = _noise((257, 1601))
    w[100] *= 20  # a strong row line
    w[:, 555] *= 5  # and a column line crossing it
    assert find_hotspots(w, Z10) == []
    w[100, 1234] = 20 * 40.0  # 40 sigma of its own (20x) row
    w[30, 555] = 5 * 50.0  # 50 sigma of its own (5x) column
    found = find_hotspots(w)
    assert [f.index for f in found] == [(30, 555), (100, 1234)]
    assert found[1].extra["row_scale"] == pytest.approx(20, rel=0.1)
    assert found[0].extra["col_scale"] == pytest.approx(5, rel=0.1)


def test_a_hotspot_in_a_quiet_row_is_judged_against_that_row() -> None:
    w = _noise((300, 400))
    w[50] *= 0.01
    w[50, 60] = 0.4  # 40 sigma of its row, though smaller than a typical weight elsewhere
    (f,) = find_hotspots(w)
    assert f.index == (50, 60) and f.score == pytest.approx(40, rel=0.15)


@pytest.mark.parametrize(
    ("shape", "axes", "spot"),
    [((64, 32, 3, 3), (0, 1), (10, 7, 2, 1)), ((3, 3, 32, 64), (3, 2), (2, 1, 7, 10)),
     ((64, 32, 5), (0, 1), (63, 0, 4)), ((5, 64, 32), (1, 2), (4, 10, 31))],
)  # fmt: skip
def test_conv_kernels_give_the_full_storage_index(
    shape: tuple[int, ...], axes: tuple[int, int], spot: tuple[int, ...]
) -> None:
    w = _noise(shape)
    w[spot] = -50.0
    (f,) = find_hotspots(w, axes=axes)
    assert f.index == spot and f.value == -50.0
    assert f.detail.startswith(f"w[{', '.join(map(str, spot))}] = -50, z=")


@pytest.mark.parametrize(
    "shape", [(2048, 1536), (512, 512, 3, 3), (16, 200_000), (200_000, 16), (10, 5000)]
)
def test_no_hotspots_in_pure_noise(shape: tuple[int, ...]) -> None:
    w = _noise(shape, seed=len(shape))
    assert find_hotspots(w) == []
    if min(shape[:2]) >= 32:  # long lines: noise stays far below even z = 10
        assert find_hotspots(w, Z10) == []


def test_nan_and_inf_are_never_hotspots() -> None:
    w = _noise((300, 400))
    rng = np.random.default_rng(5)
    w[rng.random(w.shape) < 0.01] = np.nan
    w[rng.random(w.shape) < 0.001] = np.inf
    w[3, 4], w[5, 6] = -np.inf, np.inf
    w[20] = np.nan  # a whole row
    w[:, 30] = np.inf  # a whole column
    w[100, 200] = 50.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = find_hotspots(w, Z10)
    assert _indices(found) == {(100, 200)}


def test_cap_keeps_the_strongest() -> None:
    w = _noise((1000, 800))
    for k in range(50):
        w[20 * k, 16 * k] = 30.0 * 1.2**k  # 20% apart: well above the ~3% noise of z
    found = find_hotspots(w)
    assert len(found) == HotspotsConfig().max_per_tensor == 32
    assert [f.index for f in found] == [(20 * k, 16 * k) for k in range(49, 17, -1)]


def test_finding_fields() -> None:
    w = _noise((200, 300))
    w[12, 147] = 41.0
    (f,) = find_hotspots(w)
    assert f.kind == "hotspot" and f.value == 41.0
    assert f.extra["local_sigma"] == pytest.approx(1.0, rel=0.1)
    assert f.detail.startswith(
        f"w[12, 147] = 41, z={f.score:.1f} against its row and column scales "
        f"(local sigma {f.extra['local_sigma']:.3g}); expected "
    )


def test_vectors_tiny_and_degenerate_tensors_give_nothing() -> None:
    assert find_hotspots(np.array([0.0, 0.0, 100.0], np.float32)) == []  # 1-D: norm outliers
    assert find_hotspots(np.array([[0.0, 1.0], [2.0, 300.0]], np.float32)) == []
    assert find_hotspots(np.zeros((40, 50), np.float32)) == []
    assert find_hotspots(np.full((40, 50), np.nan, np.float32)) == []
    assert find_hotspots(np.ones((40, 50), np.float32)) == []
