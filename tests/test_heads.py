"""Head blocks: planted per-head scales, noise at the null, fused qkv, a monotone score."""

from __future__ import annotations

import numpy as np
import pytest

from striate.analyses.heads import HeadsConfig, head_blocks


def _scaled(scales: np.ndarray, head_size: int = 64, d: int = 768, seed: int = 0) -> np.ndarray:
    """[n_heads * head_size, d] noise whose rows of head h are multiplied by scales[h]."""
    w = np.random.default_rng(seed).standard_normal((len(scales) * head_size, d))
    return (w * np.repeat(scales, head_size)[:, None]).astype(np.float32)


def test_planted_strong_heads_found_exactly() -> None:
    scales = np.ones(12)
    scales[3], scales[9] = 3.0, 2.0
    w = _scaled(scales)
    r = head_blocks(w, 12, 0, HeadsConfig())
    assert [f.extra["head"] for f in r.findings] == [3, 9]
    assert [f.index for f in r.findings] == [(192, None), (576, None)]
    assert r.findings[0].extra == {
        "head": 3, "head_size": 64, "start": 192, "stop": 256,
        "z": r.findings[0].extra["z"], "ratio": r.findings[0].extra["ratio"],
    }  # fmt: skip
    assert r.findings[0].extra["ratio"] == pytest.approx(3.0, rel=0.02)
    assert r.findings[0].detail == "head 3 (rows 192-255) norm 3x the median head"
    assert all(f.kind == "head" and f.score >= 4 for f in r.findings)
    assert r.score > 0.95 and r.z > 50
    blocks = w.astype(np.float64).reshape(12, 64, 768)
    np.testing.assert_allclose(r.norms, np.linalg.norm(blocks, axis=(1, 2)), rtol=1e-10)
    assert [f.value for f in r.findings] == [r.norms[3], r.norms[9]]


def test_weak_heads_are_found_too() -> None:
    scales = np.ones(16)
    scales[5] = 0.3
    r = head_blocks(_scaled(scales, head_size=32, d=512), 16, 0, HeadsConfig())
    assert [(f.extra["head"], f.extra["z"] < 0) for f in r.findings] == [(5, True)]
    assert r.findings[0].detail.startswith("head 5 (rows 160-191) norm 0.3")


def test_pure_noise_scores_at_the_null_without_findings() -> None:
    zs = []
    for seed in range(8):
        w = np.random.default_rng(seed).standard_normal((768, 768)).astype(np.float32)
        r = head_blocks(w, 12, 0, HeadsConfig(seed=seed))
        assert r.findings == []
        assert r.null == pytest.approx(11 / 767, rel=1e-12)
        assert r.score < 0.05
        zs.append(r.z)
    assert max(abs(z) for z in zs) < 4
    assert abs(np.mean(zs)) < 1.5


def test_fused_qkv_columns() -> None:
    d, n_heads, hd = 384, 6, 64
    w = np.random.default_rng(1).standard_normal((d, 3 * d)).astype(np.float32)
    k_head_2 = n_heads + 2  # the k part comes second in GPT-2's c_attn
    w[:, k_head_2 * hd : (k_head_2 + 1) * hd] *= 4
    r = head_blocks(w, 3 * n_heads, 1, HeadsConfig())
    (f,) = r.findings
    assert f.index == (None, 512)
    assert f.extra["start"] == 512 and f.extra["stop"] == 576 and f.extra["head_size"] == 64
    assert f.detail == "head 8 (columns 512-575) norm 4x the median head"
    assert r.norms.shape == (18,) and r.norms.dtype == np.float64
    assert r.score > 0.9


def test_score_rises_monotonically_with_contrast() -> None:
    u = np.random.default_rng(5).standard_normal(12)
    base = np.random.default_rng(6).standard_normal((768, 768))
    scores = []
    for contrast in [0.0, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]:
        w = (base * np.repeat(np.exp(contrast * u), 64)[:, None]).astype(np.float32)
        scores.append(head_blocks(w, 12, 0, HeadsConfig(perms=0)).score)
    assert np.all(np.diff(scores) > 0), scores
    assert scores[0] < 0.05 and scores[-1] > 0.99


def test_eta2_matches_a_direct_anova() -> None:
    rng = np.random.default_rng(2)
    w = rng.standard_normal((30, 7)).astype(np.float32) * rng.uniform(0.5, 2, (30, 1))
    r = head_blocks(w, 5, 0, HeadsConfig(perms=0))
    y = np.log(np.sqrt((w.astype(np.float64) ** 2).mean(axis=1)))
    groups = y.reshape(5, 6)
    between = 6 * ((groups.mean(axis=1) - y.mean()) ** 2).sum()
    np.testing.assert_allclose(r.score, between / ((y - y.mean()) ** 2).sum(), rtol=1e-10)
    assert np.isnan(r.z) and r.null == pytest.approx(4 / 29)


def test_permutation_z_is_seeded() -> None:
    w = _scaled(np.linspace(1, 1.1, 12), seed=3)
    a, b = head_blocks(w, 12, 0, HeadsConfig()), head_blocks(w, 12, 0, HeadsConfig())
    c = head_blocks(w, 12, 0, HeadsConfig(seed=1))
    assert a.z == b.z and a.z != c.z
    assert a.z == pytest.approx(c.z, rel=0.2)


def test_nonfinite_entries_are_left_out() -> None:
    scales = np.ones(12)
    scales[7] = 3.0
    w = _scaled(scales)
    w[0, :5], w[449, 3] = np.nan, np.inf
    w[10] = np.nan  # a whole row: left out of eta^2
    r = head_blocks(w, 12, 0, HeadsConfig())
    assert np.isfinite(r.norms).all() and np.isfinite(r.score) and np.isfinite(r.z)
    assert [f.extra["head"] for f in r.findings] == [7]
    finite = np.where(np.isfinite(w), w, 0).astype(np.float64).reshape(12, 64, 768)
    np.testing.assert_allclose(r.norms, np.linalg.norm(finite, axis=(1, 2)), rtol=1e-10)


def test_a_nan_head_gets_a_nan_norm_and_no_finding() -> None:
    w = _scaled(np.ones(6), head_size=8, d=32)
    w[16:24] = np.nan
    r = head_blocks(w, 6, 0, HeadsConfig())
    assert np.isnan(r.norms[2]) and np.isfinite(np.delete(r.norms, 2)).all()
    assert r.findings == []


def test_three_axis_tensor_and_errors() -> None:
    w = np.random.default_rng(4).standard_normal((4, 96, 5)).astype(np.float32)
    w[:, 48:64] *= 5
    (f,) = head_blocks(w, 6, 1, HeadsConfig()).findings
    assert f.index == (None, 48, None)
    assert f.detail.startswith("head 3 (indices on axis 1 48-63)")
    with pytest.raises(ValueError, match=r"axis 1 of shape \(4, 96, 5\) has 96 indices, not "):
        head_blocks(w, 7, 1, HeadsConfig())
    with pytest.raises(ValueError, match="head_axis=3 is out of range"):
        head_blocks(w, 6, 3, HeadsConfig())


def test_too_few_heads_give_no_single_head_findings() -> None:
    w = _scaled(np.array([0.6, 1.0, 1.0]), head_size=64, d=64)  # 3 key/value heads, one weak
    assert head_blocks(w, 3, 0, HeadsConfig()).findings == []
    (f,) = head_blocks(w, 3, 0, HeadsConfig(min_heads=3, z=2.0)).findings
    assert f.extra["head"] == 0
