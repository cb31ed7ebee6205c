"""Dynamics analysis: planted rotations of singular vectors, planted rank schedules and
low-rank updates, random-subspace overlaps, and layer alignment."""

from __future__ import annotations

import math

import numpy as np
import pytest

from striate.analyses.dynamics import (
    DYNAMICS_KEYS,
    DynamicsConfig,
    checkpoint_dynamics,
    layer_alignment,
    subspace_overlap,
    top_singular,
    update_metrics,
)
from striate.analyses.spectrum import singular_values, spectrum_metrics


def _orthonormal(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((n, k)))
    return q  # (n, k)


def _planted(rows: int, cols: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Full orthonormal bases U (rows, rows), V (cols, cols)."""
    rng = np.random.default_rng(seed)
    return _orthonormal(rows, rows, rng), _orthonormal(cols, cols, rng)


def test_top_singular_planted() -> None:
    u, v = _planted(7, 5)
    s = np.array([5.0, 3.0, 2.0, 1.0, 0.5])
    w = u[:, :5] @ np.diag(s) @ v.T
    uk, sk, vhk = top_singular(w, 3)
    assert uk.shape == (7, 3) and sk.shape == (3,) and vhk.shape == (3, 5)
    np.testing.assert_allclose(sk, s[:3], rtol=1e-13)
    np.testing.assert_allclose(np.abs(np.sum(uk * u[:, :3], axis=0)), 1.0, rtol=1e-12)
    assert top_singular(w, 99)[1].shape == (5,)  # clipped to the smaller side


@pytest.mark.parametrize("theta", [0.0, 0.3, math.pi / 4, 1.2, math.pi / 2])
def test_rotated_left_vector_overlap_is_cos2(theta: float) -> None:
    u, v = _planted(11, 7, seed=1)
    s = np.array([9.0, 4.0, 3.0, 2.0, 1.0, 0.5, 0.25])
    w_final = u[:, :7] @ np.diag(s) @ v.T
    u_rot = u[:, :7].copy()
    # u_1 turned by theta toward u_10, a direction outside W's column space: V untouched
    u_rot[:, 0] = math.cos(theta) * u[:, 0] + math.sin(theta) * u[:, 10]
    w_t = u_rot @ np.diag(s) @ v.T
    r = checkpoint_dynamics(w_t, w_final, w_final, w_final, DynamicsConfig(top_k=1))
    assert r["overlap_left_final"] == pytest.approx(math.cos(theta) ** 2, abs=1e-10)
    assert r["overlap_right_final"] == pytest.approx(1.0, abs=1e-10)
    assert r["overlap_left_prev"] == pytest.approx(math.cos(theta) ** 2, abs=1e-10)
    # k = 2: one of the two principal angles is theta, the other 0
    r2 = checkpoint_dynamics(w_t, w_final, None, w_final, DynamicsConfig(top_k=2))
    assert r2["overlap_left_final"] == pytest.approx((1 + math.cos(theta) ** 2) / 2, abs=1e-10)


def _entropy_rank(s: np.ndarray) -> float:
    p = s[s > 0] / s[s > 0].sum()
    return float(np.exp(-np.sum(p * np.log(p))))


# float32 storage leaves singular values ~ eps32 * s_1 where the planted ones are 0; the entropy
# of the effective rank counts them (spectrum's definition): 1e-5 relative at float32
@pytest.mark.parametrize(("dtype", "rtol"), [(np.float64, 1e-9), (np.float32, 1e-4)])
def test_rank_decay_schedule_closed_forms(dtype: type, rtol: float) -> None:
    u, v = _planted(9, 6, seed=2)
    s0 = np.array([6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    series = []
    for t in range(6):  # direction 6 - t ... zeroed: s_t keeps the top 6 - t values
        s_t = np.where(np.arange(6) < 6 - t, s0, 0.0)
        series.append((s_t, (u[:, :6] @ np.diag(s_t) @ v.T).astype(dtype)))
    w0, final = series[0][1], series[-1][1]
    for t in range(1, 6):
        s_t, w_t = series[t]
        r = checkpoint_dynamics(w_t, w0, series[t - 1][1], final, DynamicsConfig(top_k=3))
        d0 = s0 - s_t  # W_t - W_0 = U diag(s_t - s0) V^T: singular values |s0 - s_t|
        dp = series[t - 1][0] - s_t  # one direction removed: rank 1
        np.testing.assert_allclose(r["update0_norm"], np.linalg.norm(d0), rtol=rtol)
        np.testing.assert_allclose(r["update0_stable_rank"], np.sum(d0**2) / d0.max() ** 2,
                                   rtol=rtol)  # fmt: skip
        np.testing.assert_allclose(r["update0_effective_rank"], _entropy_rank(d0), rtol=rtol)
        np.testing.assert_allclose(r["update0_relative"],
                                   np.linalg.norm(d0) / np.linalg.norm(s0), rtol=rtol)  # fmt: skip
        np.testing.assert_allclose(r["update_prev_norm"], np.linalg.norm(dp), rtol=rtol)
        np.testing.assert_allclose(r["update_prev_stable_rank"], 1.0, rtol=rtol)
        np.testing.assert_allclose(r["update_prev_effective_rank"], 1.0, rtol=rtol)
        # the final matrix keeps only direction 1, so k clips to rank 1 and it still matches
        np.testing.assert_allclose(r["overlap_left_final"], 1.0, atol=rtol)
        np.testing.assert_allclose(r["overlap_right_final"], 1.0, atol=rtol)


def test_first_checkpoint_has_nan_prev() -> None:
    w = np.random.default_rng(3).standard_normal((8, 5)).astype(np.float32)
    r = checkpoint_dynamics(w, w, None, w)
    assert tuple(r) == DYNAMICS_KEYS
    assert r["update0_norm"] == 0.0 and r["update0_relative"] == 0.0
    assert math.isnan(r["update0_effective_rank"]) and math.isnan(r["update0_stable_rank"])
    assert all(math.isnan(r[k]) for k in DYNAMICS_KEYS if "prev" in k)
    assert r["overlap_left_final"] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("rank", [1, 2, 3, 5])
def test_low_rank_update(rank: int) -> None:
    rng = np.random.default_rng(rank)
    m, n = 13, 11
    a, b = rng.standard_normal((m, rank)), rng.standard_normal((n, rank))
    w0 = rng.standard_normal((m, n))
    w1 = w0 + a @ b.T
    r = update_metrics(w0, w1)
    np.testing.assert_allclose(r["norm"], np.linalg.norm(a @ b.T), rtol=1e-10)
    d = w1 - w0
    assert spectrum_metrics(singular_values(d), d.shape)["numerical_rank"] == rank
    s = np.linalg.svd(a @ b.T, compute_uv=False)
    np.testing.assert_allclose(r["stable_rank"], np.sum(s**2) / s[0] ** 2, rtol=1e-8)
    assert r["effective_rank"] <= rank + 1e-9


def test_random_subspace_overlap_near_k_over_n() -> None:
    n, k = 64, 8
    vals = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        vals.append(subspace_overlap(_orthonormal(n, k, rng), _orthonormal(n, k, rng)))
    # E = k / n = 0.125; one draw has sd ~ sqrt(2 / n^2) ~ 0.02, the mean of 20 ~ 0.005
    assert np.mean(vals) == pytest.approx(k / n, abs=0.02)
    assert all(0 <= x <= 1 for x in vals)


def test_subspace_overlap_identities() -> None:
    q = _orthonormal(10, 4, np.random.default_rng(0))
    assert subspace_overlap(q, q) == pytest.approx(1.0, abs=1e-12)
    assert subspace_overlap(q, q @ _orthonormal(4, 4, np.random.default_rng(1))) == pytest.approx(
        1.0, abs=1e-12
    )
    assert math.isnan(subspace_overlap(np.full((10, 2), np.nan), q))
    with pytest.raises(ValueError, match="subspace_overlap"):
        subspace_overlap(q, q[:5])


def test_layer_alignment() -> None:
    rng = np.random.default_rng(4)
    u_l, v_l = _planted(12, 9, seed=5)
    w_l = u_l[:, :9] @ np.diag(np.arange(9, 0, -1.0)) @ v_l.T  # [12, 9]
    cfg = DynamicsConfig(top_k=3)
    v_next = u_l[:, :3]  # w_next reads exactly w_l's top-3 output directions
    w_next = _orthonormal(5, 3, rng) @ np.diag([3.0, 2.0, 1.0]) @ v_next.T  # [5, 12]
    assert layer_alignment(w_l, w_next, cfg) == pytest.approx(1.0, abs=1e-10)
    w_orth = _orthonormal(5, 3, rng) @ np.diag([3.0, 2.0, 1.0]) @ u_l[:, 9:12].T
    assert layer_alignment(w_l, w_orth, cfg) == pytest.approx(0.0, abs=1e-10)
    with pytest.raises(ValueError, match="do not chain"):
        layer_alignment(w_l, w_next.T, cfg)


def test_nonfinite_and_zero_give_nan() -> None:
    w = np.random.default_rng(6).standard_normal((6, 4)).astype(np.float32)
    bad = w.copy()
    bad[0, 0] = np.nan
    r = checkpoint_dynamics(bad, w, w, w)
    assert all(math.isnan(r[k]) for k in DYNAMICS_KEYS if k.startswith(("update", "overlap")))
    inf = w.copy()
    inf[1, 1] = np.inf
    assert all(math.isnan(x) for x in update_metrics(w, inf).values())
    assert math.isnan(layer_alignment(np.zeros((4, 3)), w[:4]))
    z = np.zeros_like(w)
    rz = checkpoint_dynamics(z, z, z, w)
    assert math.isnan(rz["update0_relative"]) and math.isnan(rz["overlap_left_final"])
    assert all(np.isnan(x).all() for x in top_singular(bad, 2))
