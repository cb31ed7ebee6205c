"""Faint and quiet structure at the issue's target strengths, and silence on structure-free nulls.

Planted answers: lines at 1.5x and 0.3x, hotspots at 12 sigma, a residual dim at 1.2x in every
matrix (a line in none), in both storage layouts (nn.Linear [out, in], GPT-2 Conv1D [in, out]);
nulls over several seeds (Gaussian and Student-t) within the false-alarm bound; closed forms for
the line-noise constant and the pooled statistic. docs/calibration.md measures the same at scale.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import genpareto, norm

from striate.analyses.hotspots import find_hotspots, fit_gpd
from striate.analyses.lines import LINE_NOISE, POWER, find_lines, line_z
from striate.analyses.residual import pool_z, pooled_evidence, pooled_expected, residual_dims
from striate.analyses.robust import line_mean_abs

D, HIDDEN = 96, 384  # the smallest target matrix


def _noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("layout", ["linear", "conv1d"])
@pytest.mark.parametrize("seed", range(4))
def test_faint_loud_and_quiet_residual_lines_in_both_layouts(layout: str, seed: int) -> None:
    w = _noise((D, HIDDEN), seed)  # nn.Linear [out, in]: residual dims are columns of length 96
    w[:, 40] *= 0.3  # a dark stripe (0.3x)
    w[17] *= 1.5  # a faint loud line of length 384
    if layout == "conv1d":
        w = w.T.copy()  # Conv1D [in, out]: the same lines on the other axes
    found = {f.index: f for f in find_lines(w)}
    loud = (17, None) if layout == "linear" else (None, 17)
    quiet = (None, 40) if layout == "linear" else (40, None)
    assert set(found) == {loud, quiet}
    assert found[loud].extra["direction"] == "loud"
    assert found[loud].value == pytest.approx(1.5, rel=0.12)
    assert found[quiet].extra["direction"] == "quiet"
    assert found[quiet].value == pytest.approx(0.3, rel=0.2)


@pytest.mark.parametrize("layout", ["linear", "conv1d"])
def test_twelve_sigma_hotspots_in_both_layouts(layout: str) -> None:
    for seed in range(6):
        w = _noise((D, HIDDEN), seed)
        w[33, 250] = 12.0 * (-1) ** seed
        if layout == "conv1d":
            w = w.T.copy()
        index = (33, 250) if layout == "linear" else (250, 33)
        assert [f.index for f in find_hotspots(w)] == [index]


def test_a_super_weight_is_a_hotspot_and_does_not_make_its_row_a_line() -> None:
    w = _noise((D, HIDDEN), 0)
    w[12, 300] = 2000.0
    assert find_lines(w) == []
    (spot,) = find_hotspots(w)
    assert spot.index == (12, 300) and spot.score == pytest.approx(2000, rel=0.1)


@pytest.mark.parametrize("df", [None, 4, 6])
def test_structure_free_nulls_stay_within_the_false_alarm_bound(df: int | None) -> None:
    """40 tensors per null; the detectors target <= 1 false finding per 100 tensors, so more
    than 2 here (P < 1% at that rate) means the bound is broken."""
    rng = np.random.default_rng(123 if df is None else df)
    false = 0
    for _ in range(40):
        shape = (D, HIDDEN)
        w = rng.standard_normal(shape) if df is None else rng.standard_t(df, shape)
        w = w.astype(np.float32)
        false += len(find_lines(w)) + len(find_hotspots(w))
    assert false <= 2


def test_line_z_is_standard_normal_on_noise_and_the_noise_constant_is_right() -> None:
    z = np.concatenate([line_z(_noise((HIDDEN, D), s), 0) for s in range(20)])  # 7,680 lines
    assert abs(float(z.mean())) < 0.05
    assert 0.9 < float(z.std()) <= 1.05  # the MAD term or the floor, whichever is larger
    # the closed-form constant against simulation: sd of scale**POWER / its mean, times sqrt(m)
    scale = line_mean_abs(_noise((40_000, 400), 7), axis=1) ** POWER
    assert float(scale.std() / scale.mean()) * math.sqrt(400) == pytest.approx(LINE_NOISE, rel=0.03)


def test_generalized_pareto_fit_recovers_a_planted_tail_with_censoring() -> None:
    y = genpareto.rvs(0.25, scale=2.0, size=20_000, random_state=np.random.default_rng(3))
    y = np.sort(y)[::-1]
    xi, beta = fit_gpd(y[50:], censored=50, at=float(y[50]))
    assert xi == pytest.approx(0.25, abs=0.03) and beta == pytest.approx(2.0, rel=0.05)
    xi0, _ = fit_gpd(np.random.default_rng(4).exponential(0.5, 5_000))
    assert xi0 <= 0.03  # an exponential tail is fitted as one (shape at its floor 0)


def test_pooled_statistic_is_stouffers_z() -> None:
    zs = [np.array([1.0, np.nan, -2.0]), np.array([3.0, 1.0, np.nan]), np.array([2.0, 1.0, 4.0])]
    pooled, n = pool_z(zs)
    np.testing.assert_allclose(pooled, [6 / math.sqrt(3), 2 / math.sqrt(2), 2 / math.sqrt(2)])
    np.testing.assert_array_equal(n, [3, 2, 2])
    np.testing.assert_allclose(
        pooled_expected(np.array([5.0]), 384), 3 * 768 * norm.sf(5.0), rtol=1e-9
    )


def test_a_dim_at_1_2x_in_every_matrix_is_a_line_in_none_but_stands_out_pooled() -> None:
    evidence: list[tuple[str, np.ndarray]] = []
    for t in range(20):
        w = _noise((D, HIDDEN), 100 + t)  # Linear [out, in]: reads the stream along columns
        w[:, 200] *= 1.2
        assert find_lines(w) == []  # a line in none
        evidence.append(("read", line_z(w, 1)))
    pooled = pooled_evidence(evidence)
    empty = residual_dims_input()
    dims = residual_dims(empty, pooled)
    assert list(dims["residual_dim"]) == [200]  # the only significant dim, and no false one
    top = dims.iloc[0]
    assert top["direction"] == "loud" and top["n_tensors_pooled"] == 20
    assert top["pooled_z"] == pytest.approx(top["pooled_z_read"]) and top["pooled_z"] > 7


def test_reads_and_writes_of_opposite_sign_are_mixed_not_cancelled() -> None:
    evidence: list[tuple[str, np.ndarray]] = []
    for t in range(10):
        read = _noise((D, HIDDEN), 200 + t)
        read[:, 7] *= 0.8  # read quietly
        write = _noise((HIDDEN, D), 300 + t)
        write[7] *= 1.25  # written loudly
        evidence += [("read", line_z(read, 1)), ("write", line_z(write, 0))]
    dims = residual_dims(residual_dims_input(), pooled_evidence(evidence))
    row = dims.set_index("residual_dim").loc[7]
    assert row["direction"] == "mixed"
    assert row["pooled_z_read"] < -5 and row["pooled_z_write"] > 5
    assert abs(row["pooled_z"]) < min(-row["pooled_z_read"], row["pooled_z_write"])


def residual_dims_input() -> pd.DataFrame:
    return pd.DataFrame(columns=["kind", "tensor", "layer", "score", "residual_dim"])
