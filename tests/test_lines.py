"""`find_lines` on Gaussian matrices and kernels with planted lines of known strength."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest

from striate.analyses.finding import Finding
from striate.analyses.lines import LinesConfig, find_lines
from striate.errors import StriateError


def _noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _indices(found: list[Finding]) -> set[tuple[int | None, ...]]:
    return {f.index for f in found}


@pytest.mark.parametrize("shape", [(257, 1601), (1601, 257), (64, 97), (97, 33)])
def test_planted_rows_and_columns_are_found_exactly(shape: tuple[int, int]) -> None:
    # lines of >= 32 entries at >= 3x: log-scale noise 0.75 / sqrt(32) puts them at z >= 8
    rows, cols = shape
    w = _noise(shape, seed=rows)
    planted_rows = {3: 3.0, rows // 2: 5.0, rows - 1: 10.0}
    planted_cols = {0: 4.0, cols // 3: 3.0}
    for r, k in planted_rows.items():
        w[r] *= k
    for c, k in planted_cols.items():
        w[:, c] *= k
    found = find_lines(w)
    assert _indices(found) == {(r, None) for r in planted_rows} | {(None, c) for c in planted_cols}
    by_index = {f.index: f for f in found}
    for r, k in planted_rows.items():
        assert by_index[(r, None)].value == pytest.approx(k, rel=0.25)
    # each axis strongest first, rows before columns
    assert [f.extra["axis"] for f in found] == [0] * 3 + [1] * 2
    assert [f.score for f in found[:3]] == sorted((f.score for f in found[:3]), reverse=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", [(8, 8), (11, 7), (64, 64), (257, 1601), (2000, 3), (3, 2000),
                                   (1000, 1), (500, 2), (48, 32, 3, 3), (5, 7, 11)])  # fmt: skip
def test_no_lines_in_pure_noise(shape: tuple[int, ...], seed: int) -> None:
    w = _noise(shape, seed)
    assert find_lines(w) == []
    assert find_lines(w, LinesConfig(quiet=True)) == []


@pytest.mark.parametrize("shape", list(itertools.product([1, 2, 3, 5, 7, 11], repeat=2)))
def test_tiny_shapes_judge_only_axes_with_enough_lines(shape: tuple[int, int]) -> None:
    w = _noise(shape)
    w[0] *= 100
    found = find_lines(w)
    # rows are judged only when there are >= min_count = 8 of them, of >= 8 entries each
    assert [f.index for f in found] == ([] if min(shape) < 8 else [(0, None)])


def test_two_strong_lines_do_not_mask_a_weaker_one() -> None:
    w = _noise((300, 500))
    w[10] *= 50
    w[200] *= 30
    w[100] *= 2.5
    found = find_lines(w)
    assert [f.index for f in found] == [(10, None), (200, None), (100, None)]


def test_a_loud_row_does_not_hide_a_column_line() -> None:
    # an RMS over each column would carry row 5's noise (x30) into every column; the balanced
    # scales divide it out first
    w = _noise((64, 2000))
    w[5] *= 30
    w[:, 100] *= 3
    assert _indices(find_lines(w)) == {(5, None), (None, 100)}


def test_quiet_lines_only_when_asked() -> None:
    w = _noise((400, 300))
    w[17] *= 0.1
    w[:, 250] *= 0.2
    w[30] *= 4
    assert _indices(find_lines(w, LinesConfig(quiet=False))) == {(30, None)}
    found = find_lines(w)
    assert _indices(found) == {(17, None), (30, None), (None, 250)}
    quiet = {f.index: f for f in found}[(17, None)]
    assert float(quiet.extra["z"]) < 0 < quiet.score and quiet.value == pytest.approx(0.1, rel=0.1)
    assert quiet.extra["direction"] == "quiet" and quiet.extra["ratio"] == quiet.value


def test_finding_fields() -> None:
    w = _noise((100, 200))
    w[42] *= 6
    (f,) = find_lines(w)
    assert f.kind == "line" and f.index == (42, None)
    assert f.extra["axis"] == 0
    assert f.extra["scale"] == pytest.approx(float(np.sqrt(np.mean(w[42].astype(np.float64) ** 2))))
    assert f.score == pytest.approx(f.extra["z"]) and f.score >= 6
    assert f.extra["direction"] == "loud" and f.value == pytest.approx(6, rel=0.1)
    assert f.detail.startswith(
        f"loud row 42: scale {f.value:.3g}x the median line (z={f.score:.1f}"
    )


def test_a_block_of_adjacent_loud_rows_is_a_band_not_lines() -> None:
    w = _noise((64, 192))
    w[32:48] *= 3  # an attention head
    w[:, 7] *= 8  # a real line
    w[10:12] *= 6  # two adjacent lines are still lines
    assert _indices(find_lines(w)) == {(None, 7), (10, None), (11, None)}


def test_cap_per_axis_keeps_the_strongest() -> None:
    w = _noise((1000, 100))
    strengths = {20 * i: 3.0 * 1.3**i for i in range(30)}  # 30 lines, well apart
    for r, k in strengths.items():
        w[r] *= k
    found = find_lines(w, LinesConfig(max_per_axis=5))
    assert [f.index[0] for f in found] == [20 * i for i in range(29, 24, -1)]


def test_rows_of_nearly_equal_norm_have_no_lines() -> None:
    w = _noise((500, 300))
    w /= np.linalg.norm(w, axis=1, keepdims=True)  # weight-normalised: the MAD is tiny
    w[3] *= 1.05
    assert find_lines(w) == []  # 5% louder is z ~ 10 here, but not 2x the median


@pytest.mark.parametrize(
    ("shape", "axes", "in_axis", "out_axis"),
    [((64, 48, 3, 3), (0, 1), 1, 0), ((3, 3, 48, 64), (3, 2), 2, 3), ((64, 48, 5), (0, 1), 1, 0)],
)
def test_conv_kernels_input_and_output_channel_lines(
    shape: tuple[int, ...], axes: tuple[int, int], in_axis: int, out_axis: int
) -> None:
    w = _noise(shape)
    sel_in: list[slice | int] = [slice(None)] * len(shape)
    sel_in[in_axis] = 5
    w[tuple(sel_in)] *= 4
    sel_out: list[slice | int] = [slice(None)] * len(shape)
    sel_out[out_axis] = 30
    w[tuple(sel_out)] *= 3
    found = find_lines(w, axes=axes)
    in_index: list[int | None] = [None] * len(shape)
    in_index[in_axis] = 5
    out_index: list[int | None] = [None] * len(shape)
    out_index[out_axis] = 30
    assert [f.index for f in found] == [tuple(out_index), tuple(in_index)]
    assert [f.extra["axis"] for f in found] == [out_axis, in_axis]
    assert found[1].detail.startswith(f"loud input channel (axis {in_axis}) 5: scale")


def test_nan_rows_do_not_become_lines() -> None:
    w = _noise((200, 300))
    w[7] = np.nan  # a whole row
    w[9, ::2] = np.nan  # half a row: its scale is judged on the other half
    w[11, 5] = np.inf
    w[13, :] = np.where(np.arange(300) % 3 == 0, -np.inf, w[13])
    w[:, 40] = np.nan  # a whole column
    w[150] *= 5  # the one real line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = find_lines(w, LinesConfig(quiet=True))
    assert _indices(found) == {(150, None)}
    assert np.isfinite(found[0].extra["scale"])


def test_dead_and_all_nan_tensors_give_nothing() -> None:
    assert find_lines(np.zeros((50, 60), np.float32)) == []
    assert find_lines(np.full((50, 60), np.nan, np.float32)) == []
    assert find_lines(np.ones(100, np.float32)) == []  # 1-D: norm outliers, not lines
    w = _noise((50, 60))
    w[3] = 0  # a dead row is not a line (nor does it skew the others)
    w[4] *= 5
    assert _indices(find_lines(w, LinesConfig(quiet=True))) == {(4, None)}


def test_bad_axes_raise() -> None:
    w = _noise((10, 10, 3))
    with pytest.raises(StriateError, match=r"axes \(1, 1\) name the same axis twice"):
        find_lines(w, axes=(1, 1))
    with pytest.raises(StriateError, match=r"axes \(0, 3\) do not fit a tensor of shape"):
        find_lines(w, axes=(0, 3))


@pytest.mark.parametrize(
    ("width", "expected"), [(1, 1), (2, 2), (3, 3), (4, 2), (5, 1), (6, 0), (9, 0)]
)
def test_adjacent_loud_lines_become_a_band_from_six_on(width: int, expected: int) -> None:
    for seed in range(3):
        w = _noise((128, 384), seed)
        w[40 : 40 + width] *= 3
        found = find_lines(w)
        assert len(found) == expected
        assert all(40 <= f.index[0] < 40 + width for f in found)


@pytest.mark.parametrize("trim", [0.01, 0.05, 0.1, 0.2, 0.5])
def test_the_trimmed_noise_constant_matches_scipys_distributions(trim: float) -> None:
    from scipy.special import gammainc
    from scipy.stats import norm

    from striate.analyses.lines import _trimmed_log_noise

    xi = float(norm.ppf(1 - trim / 2))
    p0, p2 = 1 - trim, float(gammainc(1.5, xi * xi / 2))
    p1 = math.sqrt(2 / math.pi) * (1 - math.exp(-xi * xi / 2))
    m1, m2 = p1 - xi * p0, p2 - 2 * xi * p1 + xi * xi * p0
    expected = math.sqrt((m2 - m1 * m1) / p0**2) / (p1 / p0)
    assert _trimmed_log_noise(trim) == pytest.approx(expected, rel=1e-12)
