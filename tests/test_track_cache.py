"""`striate track` computes each checkpoint's SVD of each matrix once: its dynamics and alignment
tables against a reference that recomputes every SVD from the definitions, and SVD counts."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from striate.analyses.dynamics import (
    DYNAMICS_KEYS,
    TopFactors,
    dynamics_from_factors,
    top_factors,
)
from striate.track import track

EPS32 = float(np.finfo(np.float32).eps)
STEPS = (0, 10, 20, 40, 80, 160, 320)
HEAD_FROM = 3  # `6.weight` exists from the fourth checkpoint on: in alignment, not dynamics
# odd prime shapes, distinct, so an SVD's input shape names its matrix; 0 -> 2 -> 4 -> 6 chain
SHAPES = {"0.weight": (23, 11), "2.weight": (17, 23), "4.weight": (5, 17),
          "conv.weight": (7, 3, 3, 3), "6.weight": (3, 5)}  # fmt: skip


def _series(folder: Path, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """W_t = W_0 + g_t A diag(3, 2, 1) B^T + noise_t: a rank-3 update grows on the schedule g_t;
    noise only at the second and fifth checkpoint, so the steps 20 -> 40 and 160 -> 320 are
    rank 3 (up to float32 rounding); `4.weight` stays put from step 10 to 20 (a zero update)."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    init = {n: rng.standard_normal(s) / math.sqrt(s[-1]) for n, s in SHAPES.items()}
    grow = {n: (rng.standard_normal((s[0], 3)), rng.standard_normal((3, *s[1:])))
            for n, s in SHAPES.items()}  # fmt: skip
    folder.mkdir(parents=True)
    series: list[dict[str, np.ndarray]] = []
    for t, step in enumerate(STEPS):
        g = math.log1p(step) / math.log1p(STEPS[-1])
        tensors = {}
        for name, shape in SHAPES.items():
            if name == "6.weight" and t < HEAD_FROM:
                continue
            a, b = grow[name]
            w = init[name] + g * np.tensordot(a * [3.0, 2.0, 1.0], b, axes=1)
            if t % 3 == 1:
                w = w + 0.01 * rng.standard_normal(shape)
            tensors[name] = w.astype(np.float32)
            tensors[name.replace("weight", "bias")] = rng.standard_normal(shape[0]).astype(
                np.float32
            )
        if t == 2:
            tensors["4.weight"] = series[1]["4.weight"]
        series.append(tensors)
        save_file(tensors, str(folder / f"ckpt_{step:04d}.safetensors"))
    return series


# the reference: every SVD recomputed with numpy, from the dynamics module docstring


def _matrix(w: np.ndarray) -> np.ndarray:
    return np.asarray(w, dtype=np.float64).reshape(w.shape[0], -1)  # conv: [out, in*kh*kw]


def _update(w_from: np.ndarray, w_to: np.ndarray) -> dict[str, float]:
    d = w_to - w_from
    s = np.linalg.svd(d, compute_uv=False)
    norm, base = float(np.linalg.norm(d)), float(np.linalg.norm(w_from))
    if s[0] == 0:
        effective, stable = math.nan, math.nan
    else:
        p = s[s > 0] / s.sum()
        effective, stable = float(np.exp(-np.sum(p * np.log(p)))), float(np.sum(s**2) / s[0] ** 2)
    return {"norm": norm, "relative": norm / base if base else math.nan,
            "effective_rank": effective, "stable_rank": stable}  # fmt: skip


def _top(w: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Projectors onto the top-k left and right singular subspaces (sign-free), and the
    numerical rank among the top k."""
    u, s, vh = np.linalg.svd(w)
    k = min(k, *w.shape)
    rank = int(np.count_nonzero(s[:k] > max(w.shape) * EPS32 * s[0]))
    return u[:, :rank], vh[:rank].T, rank


def _overlap(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """tr(P_a P_b) / k over the first k columns: the mean squared cosine of the angles."""
    pa, pb = a[:, :k] @ a[:, :k].T, b[:, :k] @ b[:, :k].T
    return float(np.trace(pa @ pb) / k)


def _overlaps(w: np.ndarray, v: np.ndarray, k: int) -> tuple[float, float]:
    (uw, vw, rw), (uv, vv, rv) = _top(w, k), _top(v, k)
    k = min(rw, rv)
    return (_overlap(uw, uv, k), _overlap(vw, vv, k)) if k else (math.nan, math.nan)


def _reference(series: list[dict[str, np.ndarray]], k: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    names = [n for n in SHAPES if n != "6.weight"]
    rows = []
    for name in names:
        w = [_matrix(tensors[name]) for tensors in series]
        for t, step in enumerate(STEPS):
            row: dict[str, Any] = {"step": step, "tensor": name}
            row.update({f"update0_{key}": x for key, x in _update(w[0], w[t]).items()})
            prev = _update(w[t - 1], w[t]) if t else dict.fromkeys(_update(w[0], w[0]), math.nan)
            row.update({f"update_prev_{key}": x for key, x in prev.items()})
            row["overlap_left_final"], row["overlap_right_final"] = _overlaps(w[t], w[-1], k)
            row["overlap_left_prev"], row["overlap_right_prev"] = (
                _overlaps(w[t], w[t - 1], k) if t else (math.nan, math.nan)
            )
            rows.append(row)
    alignment = []
    for t, (step, tensors) in enumerate(zip(STEPS, series, strict=True)):
        linear = ["0.weight", "2.weight", "4.weight"] + (["6.weight"] if t >= HEAD_FROM else [])
        for a, b in itertools.pairwise(linear):
            (u, _, ra), (_, v, rb) = _top(_matrix(tensors[a]), k), _top(_matrix(tensors[b]), k)
            value = _overlap(u, v, min(ra, rb)) if min(ra, rb) else math.nan
            alignment.append({"step": step, "tensor": a, "next_tensor": b, "alignment": value})
    return pd.DataFrame(rows), pd.DataFrame(alignment)


def _assert_same(got: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> None:
    assert list(got.columns) == list(expected.columns)
    got, expected = (x.sort_values(keys, kind="stable").reset_index(drop=True)
                     for x in (got, expected))  # fmt: skip
    values = [c for c in got.columns if c != "step" and pd.api.types.is_float_dtype(got[c])]
    labels = [c for c in got.columns if c not in values]
    pd.testing.assert_frame_equal(got[labels], expected[labels])
    np.testing.assert_allclose(got[values].to_numpy(float), expected[values].to_numpy(float),
                               rtol=1e-10, atol=1e-13)  # fmt: skip


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("cache")
    series = _series(folder / "series")
    track([str(folder / "series")], folder / "run")  # scans the checkpoints into the cache
    return folder, series


def test_tables_match_a_reference_that_recomputes_every_svd(
    tracked: tuple[Path, list[dict[str, Any]]],
) -> None:
    folder, series = tracked
    result = track([str(folder / "series")], folder / "run")
    dynamics, alignment = _reference(series, k=8)
    assert list(result.dynamics.columns) == ["step", "tensor", *DYNAMICS_KEYS]
    # rows: per matrix, per step, matrices in the checkpoint's order
    first = result.dynamics.drop_duplicates("tensor")
    assert list(first.index) == [i * len(STEPS) for i in range(4)]
    assert (result.dynamics.groupby("tensor")["step"].apply(list) == [list(STEPS)] * 4).all()
    _assert_same(result.dynamics, dynamics, ["tensor", "step"])
    _assert_same(result.alignment, alignment, ["step", "tensor"])
    # the planted events show: a zero update, k clipped to 5, exactly rank-3 steps
    d = result.dynamics.set_index(["tensor", "step"])
    assert d.loc[("4.weight", 20), "update_prev_norm"] == 0.0
    assert math.isnan(d.loc[("4.weight", 20), "update_prev_effective_rank"])
    assert d.loc[("0.weight", 40), "update_prev_effective_rank"] < 3.01
    assert d.loc[("0.weight", 80), "update_prev_effective_rank"] > 3.2  # noise: full rank
    # k clips to 5 = the rows of `4.weight`: its left top-k subspace is all of R^5
    np.testing.assert_allclose(d.loc["4.weight", "overlap_left_final"], 1.0, rtol=1e-12)
    assert len(alignment) == 2 * HEAD_FROM + 3 * (len(STEPS) - HEAD_FROM)


def test_one_svd_per_checkpoint_and_matrix(
    tracked: tuple[Path, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _ = tracked
    svd = np.linalg.svd
    vectors: Counter[tuple[int, ...]] = Counter()
    values: Counter[tuple[int, ...]] = Counter()

    def counting_svd(a: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        (vectors if kwargs.get("compute_uv", True) else values)[a.shape] += 1
        return svd(a, *args, **kwargs)

    monkeypatch.setattr(np.linalg, "svd", counting_svd)
    track([str(folder / "series")], folder / "run")  # the scans come from the cache
    monkeypatch.undo()
    matrices = {n: (s[0], math.prod(s[1:])) for n, s in SHAPES.items()}
    expected = {shape: len(STEPS) for shape in matrices.values()}
    expected[matrices["6.weight"]] = len(STEPS) - HEAD_FROM
    assert dict(vectors) == expected  # no matrix's SVD twice at a checkpoint (the old code: ~5)
    assert set(values) <= set(matrices.values())
    # the updates' spectra take singular values only, at most two per step and matrix
    assert values.total() <= 2 * (len(STEPS) - 1) * 4
    assert sum(vectors.values()) + values.total() <= len(STEPS) * 5 + 2 * len(STEPS) * 4


def test_factors_keep_only_the_top_k_and_signs_do_not_matter() -> None:
    rng = np.random.default_rng(1)
    w_final, w_prev = rng.standard_normal((13, 7)), rng.standard_normal((13, 7))
    w_t, w_0 = w_prev + 0.1 * rng.standard_normal((13, 7)), rng.standard_normal((13, 7))
    tops = [top_factors(w, 3) for w in (w_t, w_prev, w_final)]
    for top in tops:
        assert top.u.shape == (13, 3) and top.vh.shape == (3, 7) and top.rank == 3
        assert top.u.base is None and top.vh.base is None  # not views of the full U, Vh
    expected = dynamics_from_factors(w_t, w_0, w_prev, *tops)
    for seed in range(5):  # flip the signs of singular vector pairs (u_i, v_i) at random
        flip = np.random.default_rng(seed).choice([-1.0, 1.0], size=(3, 3))
        flipped = [TopFactors(top.u * f, top.s, top.vh * f[:, None], top.rank)
                   for top, f in zip(tops, flip, strict=True)]  # fmt: skip
        got = dynamics_from_factors(w_t, w_0, w_prev, *flipped)
        np.testing.assert_allclose(list(got.values()), list(expected.values()), rtol=1e-14)


def test_factors_of_another_shape_are_refused() -> None:
    w = np.eye(5)
    with pytest.raises(ValueError, match=r"factors of shapes \[\(5, 5\), \(5, 4\)\]"):
        dynamics_from_factors(w, w, None, top_factors(w, 2), None, top_factors(w[:, :4], 2))
    with pytest.raises(ValueError, match="w_prev and top_prev both or neither"):
        dynamics_from_factors(w, w, w, top_factors(w, 2), None, top_factors(w, 2))
