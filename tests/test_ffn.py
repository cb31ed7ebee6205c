"""FFN neurons: planted layers in every layout, planted clusters and slopes, similarity, figures.

Alignments and norms are planted exactly (an input direction u, a unit w orthogonal to it, the
output a u + sqrt(1 - a^2) w), so they must come back to float precision; statistics are checked
against scipy as a second implementation; the real models are pinned to what they show.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import PIL.Image
import planted
import pytest
from scipy import stats

import striate
from striate.analyses.ffn import (
    FFNConfig,
    ffn_layer_summary,
    ffn_neurons,
    neuron_vectors,
    two_clusters,
)
from striate.analyses.ffn_distribution import (
    SARLE_UNIFORM,
    bimodality_coefficient,
    bootstrap_pearson,
    fit_line,
    gaussian_mixture,
    pearson,
    spearman,
)
from striate.analyses.ffn_similarity import column_similarity, cosine_matrix
from striate.checkpoint import Checkpoint
from striate.render.ffn_figures import draw_depth_curves, draw_layer_figure, draw_similarity
from striate.render.ffn_panels import axis_range

D, F = 48, 130  # residual and FFN widths of the planted layers


def unit_rows(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def plant(
    rng: np.random.Generator, alignment: np.ndarray, in_norm: np.ndarray, out_norm: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Input and output vectors (n, D) with exactly these norms and cos(input, output)."""
    u = unit_rows(rng.standard_normal((alignment.size, D)))
    w = rng.standard_normal(u.shape)
    w = unit_rows(w - np.sum(w * u, axis=1, keepdims=True) * u)  # unit, orthogonal to u
    out = alignment[:, None] * u + np.sqrt(1 - alignment**2)[:, None] * w
    return in_norm[:, None] * u, out_norm[:, None] * out


@pytest.fixture
def layer() -> dict[str, np.ndarray]:
    """One planted layer: alignment = -0.1 - 1.5 bias + noise, exact norms, and a gate."""
    rng = np.random.default_rng(0)
    bias = rng.normal(0.0, 0.1, F)
    alignment = np.clip(-0.1 - 1.5 * bias + rng.normal(0.0, 0.05, F), -0.95, 0.95)
    in_norm, out_norm = rng.uniform(0.5, 2.0, F), rng.uniform(0.2, 1.0, F)
    v_in, v_out = plant(rng, alignment, in_norm, out_norm)
    gate = rng.standard_normal((F, D))
    return {"in": v_in, "out": v_out, "gate": gate, "bias": bias, "alignment": alignment,
            "in_norm": in_norm, "out_norm": out_norm}  # fmt: skip


# ---- layouts ---------------------------------------------------------------------------------


def test_neuron_vectors_rows_are_neurons_in_every_layout() -> None:
    w = np.arange(6.0).reshape(2, 3)  # (d=2, F=3) stored [in, out] or [out, in]
    np.testing.assert_array_equal(neuron_vectors(w, 0), w.T)
    np.testing.assert_array_equal(neuron_vectors(w, -2), w.T)
    np.testing.assert_array_equal(neuron_vectors(w.T, 1), w.T)
    with pytest.raises(ValueError, match=r"must be 2-D, got shape \(2, 3, 1\)"):
        neuron_vectors(w[..., None], 0)
    with pytest.raises(ValueError, match="residual_axis=2 is out of range"):
        neuron_vectors(w, 2)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_planted_layer_read_through_the_anatomy(
    family: str, layer: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """The same neurons stored as GPT-2 Conv1D (c_fc [d, F], c_proj [F, d]) or nn.Linear
    (up/gate [F, d], down [d, F]) give the same table once the anatomy names the residual axis."""
    v_in, v_out, gate = layer["in"], layer["out"], layer["gate"]
    if family == "gpt2":
        tensors = {"wte.weight": np.zeros((50, D)), "h.0.mlp.c_fc.weight": v_in.T,
                   "h.0.mlp.c_fc.bias": layer["bias"], "h.0.mlp.c_proj.weight": v_out,
                   "h.0.mlp.c_proj.bias": np.zeros(D)}  # fmt: skip
        config = {"model_type": "gpt2", "n_embd": D, "n_head": 4, "n_layer": 1, "vocab_size": 50}
    else:
        p = "model.layers.0.mlp."
        tensors = {"model.embed_tokens.weight": np.zeros((50, D)), p + "up_proj.weight": v_in,
                   p + "gate_proj.weight": gate, p + "down_proj.weight": v_out.T}  # fmt: skip
        config = {"model_type": "llama", "hidden_size": D, "num_attention_heads": 4,
                  "num_hidden_layers": 1, "intermediate_size": F, "vocab_size": 50}  # fmt: skip
    with striate.open(planted._save(tensors, tmp_path / family, config)) as ckpt:
        anatomy = striate.anatomy_of(ckpt)
        (t,) = anatomy.ffn

        def vectors(name: str) -> np.ndarray:
            axis = anatomy[name].residual_axis
            assert axis is not None
            return neuron_vectors(ckpt.read(name), axis)

        bias = ckpt.read(t.in_bias) if t.in_bias else None
        gated = vectors(t.ffn_gate) if t.ffn_gate else None
        df = ffn_neurons(t.layer, vectors(t.ffn_in), vectors(t.ffn_out), bias, w_gate=gated)
    assert len(df) == F and df["neuron"].tolist() == list(range(F))
    # stored as float32, so 1e-6
    np.testing.assert_allclose(df["alignment"], layer["alignment"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(df["in_norm"], layer["in_norm"], rtol=1e-6)
    np.testing.assert_allclose(df["out_norm"], layer["out_norm"], rtol=1e-6)
    if family == "gpt2":
        np.testing.assert_allclose(df["bias"], layer["bias"], rtol=1e-6)
        assert "gate_norm" not in df.columns
    else:
        assert df["bias"].isna().all()
        np.testing.assert_allclose(df["gate_norm"], np.linalg.norm(gate, axis=1), rtol=1e-6)


# ---- per neuron ------------------------------------------------------------------------------


def test_norms_and_alignments_match_numpy(layer: dict[str, np.ndarray]) -> None:
    v_in, v_out, gate = (layer[k].astype(np.float32) for k in ("in", "out", "gate"))
    df = ffn_neurons(3, v_in, v_out, layer["bias"], w_gate=gate)
    assert list(df.columns) == ["layer", "neuron", "in_norm", "out_norm", "bias", "alignment",
                                "gate_norm", "gate_in_alignment", "gate_out_alignment"]  # fmt: skip
    assert (df["layer"] == 3).all()
    a, b, g = (x.astype(np.float64) for x in (v_in, v_out, gate))

    def cos(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.sum(x * y, axis=1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)

    np.testing.assert_allclose(df["in_norm"], np.linalg.norm(a, axis=1), rtol=1e-12)
    np.testing.assert_allclose(df["out_norm"], np.linalg.norm(b, axis=1), rtol=1e-12)
    np.testing.assert_allclose(df["gate_norm"], np.linalg.norm(g, axis=1), rtol=1e-12)
    np.testing.assert_allclose(df["alignment"], cos(a, b), rtol=0, atol=1e-12)
    np.testing.assert_allclose(df["gate_in_alignment"], cos(g, a), rtol=0, atol=1e-12)
    np.testing.assert_allclose(df["gate_out_alignment"], cos(g, b), rtol=0, atol=1e-12)


def test_output_as_minus_03_input_plus_noise() -> None:
    """out = -0.3 in + noise of sd s: cos -> -0.3 / sqrt(0.09 + s^2) = -0.6 for s = 0.4."""
    rng = np.random.default_rng(1)
    v_in = rng.standard_normal((400, 4096))
    df = ffn_neurons(0, v_in, -0.3 * v_in + 0.4 * rng.standard_normal(v_in.shape), None)
    assert df["alignment"].mean() == pytest.approx(-0.6, abs=0.003)
    assert df["alignment"].std() < 0.02


def test_zero_vector_has_null_alignment_and_bad_shapes_are_refused() -> None:
    v = np.eye(4)
    v_out = v.copy()
    v_out[2] = 0
    df = ffn_neurons(0, v, v_out, None)
    assert df["alignment"].isna().tolist() == [False, False, True, False]
    with pytest.raises(ValueError, match=r"w_in \(4, 4\), w_out \(4, 3\).*neuron_vectors"):
        ffn_neurons(0, v, v[:, :3], None)
    with pytest.raises(ValueError, match=r"bias has shape \(5,\), expected \(4,\)"):
        ffn_neurons(0, v, v, np.zeros(5))


def test_null_bias_is_stored_as_null(tmp_path: Path) -> None:
    df = ffn_neurons(0, np.eye(3), np.eye(3), None)
    df.to_parquet(tmp_path / "ffn.parquet")
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "ffn.parquet").column("bias").null_count == 3


# ---- per layer -------------------------------------------------------------------------------


def test_slope_of_alignment_on_bias_is_recovered(layer: dict[str, np.ndarray]) -> None:
    df = ffn_neurons(0, layer["in"], layer["out"], layer["bias"])
    row = ffn_layer_summary(df, FFNConfig())
    ref = stats.linregress(layer["bias"], layer["alignment"])
    assert row["slope_alignment_on_bias"] == pytest.approx(ref.slope, rel=1e-9)
    assert row["intercept_alignment_on_bias"] == pytest.approx(ref.intercept, rel=1e-9)
    assert row["slope_se"] == pytest.approx(ref.stderr, rel=1e-9)
    assert row["intercept_se"] == pytest.approx(ref.intercept_stderr, rel=1e-9)
    assert abs(float(row["slope_alignment_on_bias"]) - -1.5) < 3 * float(row["slope_se"])
    assert abs(float(row["intercept_alignment_on_bias"]) - -0.1) < 3 * float(row["intercept_se"])
    assert row["pearson_bias_alignment"] == pytest.approx(ref.rvalue, rel=1e-9)
    rho = stats.spearmanr(layer["bias"], layer["alignment"]).statistic
    assert row["spearman_bias_alignment"] == pytest.approx(rho, rel=1e-9)


@pytest.mark.parametrize("rho", [0.5, -0.2])
def test_bootstrap_interval_of_r_matches_fishers_closed_form(rho: float) -> None:
    """For Gaussian pairs the percentile bootstrap agrees with Fisher's z interval."""
    rng = np.random.default_rng(5)
    n = 2000
    x = rng.normal(size=n)
    y = rho * x + math.sqrt(1 - rho**2) * rng.normal(size=n)
    low, high = bootstrap_pearson(x, y, 2000, seed=0)
    z, se = math.atanh(pearson(x, y)), 1 / math.sqrt(n - 3)
    assert low == pytest.approx(math.tanh(z - 1.96 * se), abs=0.006)
    assert high == pytest.approx(math.tanh(z + 1.96 * se), abs=0.006)
    assert low < rho < high
    assert bootstrap_pearson(x, y, 2000, seed=0) == (low, high)  # seeded
    assert all(map(math.isnan, bootstrap_pearson(x, np.zeros(n), 100, seed=0)))
    assert all(map(math.isnan, bootstrap_pearson(x, y, 0, seed=0)))


def test_layer_rows_give_the_norm_bias_correlations_with_intervals() -> None:
    """r(|M1_i|, b_i) planted positive and r(|M2_i|, b_i) planted zero, as in seed 001."""
    rng = np.random.default_rng(6)
    n = 1500
    bias = rng.normal(size=n)
    in_norm = np.exp(0.3 * bias + 0.3 * rng.normal(size=n))
    v_in, v_out = plant(rng, rng.uniform(-0.5, 0.5, n), in_norm, rng.uniform(0.5, 1.5, n))
    row = ffn_layer_summary(ffn_neurons(0, v_in, v_out, bias), FFNConfig())
    r_in = stats.pearsonr(in_norm, bias).statistic
    assert row["pearson_in_norm_bias"] == pytest.approx(r_in, rel=1e-9)
    assert row["pearson_in_norm_bias_ci_low"] < r_in < row["pearson_in_norm_bias_ci_high"]
    assert row["pearson_in_norm_bias_ci_low"] > 0.5
    assert row["pearson_out_norm_bias_ci_low"] < 0 < row["pearson_out_norm_bias_ci_high"]
    none = ffn_layer_summary(ffn_neurons(0, v_in, v_out, None), FFNConfig())
    assert math.isnan(none["pearson_in_norm_bias_ci_low"])


def test_bias_an_exact_line_of_alignment_gives_the_inverse_slope() -> None:
    rng = np.random.default_rng(2)
    alignment = rng.uniform(-0.8, 0.8, F)
    v_in, v_out = plant(rng, alignment, np.ones(F), np.ones(F))
    row = ffn_layer_summary(ffn_neurons(0, v_in, v_out, 0.2 - 0.5 * alignment), FFNConfig())
    assert row["slope_alignment_on_bias"] == pytest.approx(-2.0, rel=1e-9)  # a = (0.2 - b) / 0.5
    assert row["intercept_alignment_on_bias"] == pytest.approx(0.4, rel=1e-9)
    assert row["slope_se"] == pytest.approx(0.0, abs=1e-9)


def test_two_planted_clusters() -> None:
    rng = np.random.default_rng(3)
    n_pos = 400
    alignment = np.r_[rng.normal(0.5, 0.08, n_pos), rng.normal(-0.5, 0.08, 600)]
    v_in, v_out = plant(rng, np.clip(alignment, -0.99, 0.99), np.ones(1000), np.ones(1000))
    row = ffn_layer_summary(ffn_neurons(0, v_in, v_out, None), FFNConfig())
    assert row["share_positive"] == pytest.approx(0.4, abs=1e-12)  # Phi(-5): none cross 0.1
    assert row["share_negative"] == pytest.approx(0.6, abs=1e-12)
    assert row["bimodality"] > 0.75 > SARLE_UNIFORM
    assert row["gmm_mean_low"] == pytest.approx(-0.5, abs=0.01)
    assert row["gmm_mean_high"] == pytest.approx(0.5, abs=0.01)
    assert row["gmm_sd_high"] == pytest.approx(0.08, abs=0.01)
    assert row["gmm_weight_high"] == pytest.approx(0.4, abs=0.005)
    assert row["gmm_ashman_d"] > 10 and row["gmm_delta_bic"] > 1000
    assert row["n_clusters"] == 2


def test_one_planted_cluster() -> None:
    rng = np.random.default_rng(4)
    alignment = rng.normal(-0.1, 0.1, 1000)
    v_in, v_out = plant(rng, alignment, np.ones(1000), np.ones(1000))
    row = ffn_layer_summary(ffn_neurons(0, v_in, v_out, None), FFNConfig())
    assert row["bimodality"] == pytest.approx(1 / 3, abs=0.03)  # a Gaussian's
    assert row["n_clusters"] == 1
    assert row["alignment_mean"] == pytest.approx(-0.1, abs=0.01)
    assert row["share_negative"] == pytest.approx(stats.norm.cdf(0.0), abs=0.04)  # P(a < -0.1)


def test_summary_keys_with_and_without_bias_and_gate(layer: dict[str, np.ndarray]) -> None:
    plain = ffn_layer_summary(ffn_neurons(2, layer["in"], layer["out"], None), FFNConfig())
    assert plain["layer"] == 2 and plain["n_neurons"] == F
    assert plain["has_bias"] == 0 and plain["gated"] == 0
    assert math.isnan(plain["bias_mean"]) and math.isnan(plain["slope_alignment_on_bias"])
    assert math.isnan(plain["pearson_in_norm_bias"])
    assert plain["pearson_in_norm_out_norm"] == pytest.approx(
        stats.pearsonr(layer["in_norm"], layer["out_norm"]).statistic, rel=1e-9
    )
    assert not any(k.startswith("gate_") for k in plain)
    df = ffn_neurons(2, layer["in"], layer["out"], layer["bias"], w_gate=layer["gate"])
    gated = ffn_layer_summary(df, FFNConfig())
    assert gated["has_bias"] == 1 and gated["gated"] == 1
    assert gated["gate_norm_mean"] == pytest.approx(df["gate_norm"].mean(), rel=1e-12)
    assert gated["gate_in_abs_alignment_mean"] == pytest.approx(
        df["gate_in_alignment"].abs().mean(), rel=1e-12
    )
    assert "pearson_alignment_gate_norm" in gated and "spearman_in_norm_gate_norm" in gated
    assert set(plain) - {"gated"} < set(gated)
    with pytest.raises(ValueError, match="one layer's neurons"):
        ffn_layer_summary(pd.concat([df, df.assign(layer=3)]), FFNConfig())


# ---- distribution statistics against scipy ---------------------------------------------------


def test_distribution_statistics_match_scipy() -> None:
    rng = np.random.default_rng(5)
    x = rng.gamma(2.0, size=301)
    y = np.round(x + rng.normal(0, 1, 301), 1)  # ties in y
    y[7] = np.nan
    ok = np.isfinite(y)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x[ok], y[ok]).statistic, rel=1e-12)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x[ok], y[ok]).statistic, rel=1e-12)
    b, skew, kurt = bimodality_coefficient(x)
    assert skew == pytest.approx(stats.skew(x, bias=False), rel=1e-12)
    assert kurt == pytest.approx(stats.kurtosis(x, bias=False), rel=1e-12)
    n = x.size
    assert b == pytest.approx((skew**2 + 1) / (kurt + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))))
    assert bimodality_coefficient(np.linspace(0, 1, 100_001))[0] == pytest.approx(5 / 9, rel=1e-3)
    assert all(math.isnan(v) for v in bimodality_coefficient(np.ones(10)))
    assert all(math.isnan(v) for v in fit_line(np.ones(5), np.arange(5.0)))
    assert math.isnan(gaussian_mixture(np.ones(50)).mean_low)


def test_two_clusters_needs_all_three_tests() -> None:
    config = FFNConfig()
    mix = gaussian_mixture(np.r_[np.linspace(-0.6, -0.4, 500), np.linspace(0.4, 0.6, 500)])
    assert two_clusters(mix, config)
    assert not two_clusters(mix, FFNConfig(min_separation=100))
    assert not two_clusters(mix, FFNConfig(bic_margin=1e9))
    assert not two_clusters(mix, FFNConfig(min_cluster_share=0.51))


# ---- column similarity -----------------------------------------------------------------------


def test_shared_direction_versus_isotropic() -> None:
    rng = np.random.default_rng(6)
    iso = rng.standard_normal((600, 64))
    shared = iso + 2.0  # every vector leans along (1, ..., 1)
    a, b = column_similarity(iso, FFNConfig()), column_similarity(shared, FFNConfig())
    assert abs(a.mean_offdiag) < 0.002
    assert a.top_share == pytest.approx(a.top_share_null, rel=0.15)
    assert a.top_share_null == pytest.approx((600**-0.5 + 64**-0.5) ** 2)
    # cos = |mean|^2 / (|mean|^2 + |noise|^2) = 4 d / (4 d + d) = 0.8
    assert b.mean_offdiag == pytest.approx(0.8, abs=0.02)
    assert b.top_share == pytest.approx(0.8, abs=0.03)
    direction = np.ones(64) / 8
    assert abs(float(b.top_direction @ direction)) == pytest.approx(1.0, abs=0.01)
    assert float(b.top_direction @ direction) > 0  # signed towards the neurons


@pytest.mark.parametrize("n, d", [(2, 1), (3, 2), (5, 3), (7, 5), (11, 7), (701, 13)])
def test_blockwise_matrix_equals_the_direct_one(n: int, d: int) -> None:
    rng = np.random.default_rng(n)
    v = rng.standard_normal((n, d)) + 0.3
    sim = column_similarity(v, FFNConfig(similarity_clusters=4, similarity_max=1024))
    u = unit_rows(v)
    assert sorted(sim.order.tolist()) == list(range(n))
    np.testing.assert_allclose(sim.matrix, u[sim.order] @ u[sim.order].T, rtol=0, atol=5e-4)
    c = u @ u.T
    assert sim.mean_offdiag == pytest.approx((c.sum() - n) / (n * (n - 1)), rel=1e-9, abs=1e-12)
    assert sim.mean_abs_offdiag == pytest.approx((np.abs(c).sum() - n) / (n * (n - 1)), rel=1e-6)
    assert sim.top_share == pytest.approx(np.linalg.eigvalsh(c)[-1] / n, rel=1e-9)
    assert np.all(np.diff(sim.clusters) >= 0) and sim.clusters[0] == 0
    np.testing.assert_allclose(cosine_matrix(u), c, rtol=0, atol=1e-6)


def test_similarity_sample_is_seeded_and_skips_dead_neurons() -> None:
    rng = np.random.default_rng(7)
    v = rng.standard_normal((300, 16))
    v[[5, 9]] = 0
    v[11, 3] = np.nan
    config = FFNConfig(similarity_max=100)
    one, two = column_similarity(v, config), column_similarity(v, config)
    other = column_similarity(v, FFNConfig(similarity_max=100, seed=1))
    assert one.matrix.shape == (100, 100) and one.n_neurons == 297 and one.d_model == 16
    np.testing.assert_array_equal(one.order, two.order)
    assert set(one.order.tolist()) != set(other.order.tolist())
    assert not {5, 9, 11} & set(one.order.tolist())
    with pytest.raises(ValueError, match="fewer than 2"):
        column_similarity(np.zeros((5, 3)), config)


# ---- figures ---------------------------------------------------------------------------------


def test_axis_range_keeps_to_the_bulk_only_for_far_outliers() -> None:
    bulk = np.linspace(0.0, 1.0, 1001)
    assert axis_range(bulk) == (-0.06, 1.06)
    assert axis_range(np.r_[bulk, 1.5]) == pytest.approx((-0.09, 1.59))  # near: kept in view
    far = np.r_[bulk, 100.0]
    q_lo, q_hi = np.percentile(far, [1, 99])
    top = q_hi + 3 * (q_hi - q_lo)  # the view stops 3 central spans past the 99th percentile
    assert axis_range(far) == pytest.approx((-0.06 * top, 1.06 * top))
    assert axis_range(np.array([np.nan])) == (-1.0, 1.0)


def _png(path: Path) -> tuple[int, int]:
    with PIL.Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_figures_are_drawn(layer: dict[str, np.ndarray], tmp_path: Path) -> None:
    frames = [ffn_neurons(i, layer["in"], layer["out"], layer["bias"]) for i in range(3)]
    neurons = pd.concat(frames, ignore_index=True)
    neurons.loc[7, "out_norm"] = 50.0  # far outlier: drawn on the border
    title = "h.$0$.mlp_{x} ^ \\alpha"  # must not be parsed as math
    draw_layer_figure(neurons, 1, tmp_path / "layer.png", title=title)
    gated = ffn_neurons(0, layer["in"], layer["out"], None, w_gate=layer["gate"])
    draw_layer_figure(gated, 0, tmp_path / "gated.png", title=title)
    summaries = pd.DataFrame([ffn_layer_summary(f, FFNConfig()) for f in frames])
    draw_depth_curves(summaries, tmp_path / "depth.png", title=title)
    draw_depth_curves(pd.DataFrame([ffn_layer_summary(gated, FFNConfig())]), tmp_path / "nb.png")
    sim = column_similarity(layer["in"], FFNConfig())
    draw_similarity(sim, title, tmp_path / "sim.png")
    for name in ("layer", "gated", "depth", "nb", "sim"):
        w, h = _png(tmp_path / f"{name}.png")
        assert w >= 1000 and h >= 500
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{n}.png" for n in ("layer", "gated", "depth", "nb", "sim")
    )  # no temp files left
    with pytest.raises(ValueError, match="no neurons of layer 9"):
        draw_layer_figure(neurons, 9, tmp_path / "none.png")


# ---- real models -----------------------------------------------------------------------------


def _model(ckpt: Checkpoint) -> tuple[pd.DataFrame, pd.DataFrame]:
    anatomy = striate.anatomy_of(ckpt)

    def vectors(name: str) -> np.ndarray:
        axis = anatomy[name].residual_axis
        assert axis is not None
        return neuron_vectors(ckpt.read(name), axis)

    frames = []
    for t in anatomy.ffn:
        bias = ckpt.read(t.in_bias) if t.in_bias else None
        gate = vectors(t.ffn_gate) if t.ffn_gate else None
        frames.append(
            ffn_neurons(t.layer, vectors(t.ffn_in), vectors(t.ffn_out), bias, w_gate=gate)
        )
    layers = pd.DataFrame([ffn_layer_summary(f, FFNConfig()) for f in frames])
    return pd.concat(frames, ignore_index=True), layers


def _sane(neurons: pd.DataFrame, n_layers: int, n_neurons: int) -> None:
    assert len(neurons) == n_layers * n_neurons
    assert neurons.groupby("layer").size().tolist() == [n_neurons] * n_layers
    for col in ("in_norm", "out_norm", "alignment"):
        assert np.isfinite(neurons[col]).all()
    assert neurons["alignment"].between(-1, 1).all()


@pytest.mark.sample
def test_minilm_two_clusters_early_one_late_and_a_negative_slope(minilm: Checkpoint) -> None:
    neurons, layers = _model(minilm)
    _sane(neurons, 6, 1536)
    assert np.isfinite(neurons["bias"]).all() and "gate_norm" not in neurons
    assert layers["n_clusters"].tolist() == [2, 2, 2, 2, 2, 1]
    slope, se = layers["slope_alignment_on_bias"], layers["slope_se"]
    assert slope[0] == pytest.approx(-1.111, abs=0.002) and se[0] == pytest.approx(0.074, abs=0.001)
    assert (slope[:5] + 3 * se[:5] < 0).all()  # negative in layers 0-4
    assert abs(slope[5]) < 2 * se[5]  # and not distinguishable from 0 in the last
    assert layers["alignment_mean"].tolist() == pytest.approx(
        [-0.183, -0.154, -0.141, -0.175, -0.205, -0.099], abs=0.001
    )
    assert layers["alignment_std"][5] < 0.5 * layers["alignment_std"][0]
    assert (layers["pearson_in_norm_bias"][:5] < -0.5).all()
    first = minilm.read("encoder.layer.0.intermediate.dense.weight")
    out = neuron_vectors(minilm.read("encoder.layer.0.output.dense.weight"), 0)
    sim_in, sim_out = (column_similarity(v, FFNConfig()) for v in (first, out))
    assert sim_in.mean_offdiag == pytest.approx(0.028, abs=0.001)
    assert sim_in.mean_offdiag > 20 * abs(sim_out.mean_offdiag)
    assert sim_in.top_share > 2.5 * sim_out.top_share


@pytest.mark.sample
def test_smollm2_positive_early_negative_late(smollm2: Checkpoint) -> None:
    neurons, layers = _model(smollm2)
    _sane(neurons, 30, 1536)
    assert neurons["bias"].isna().all() and np.isfinite(neurons["gate_norm"]).all()
    assert (layers["has_bias"] == 0).all() and layers["slope_alignment_on_bias"].isna().all()
    mean = layers["alignment_mean"]
    assert (mean[4:12] > 0.2).all() and (mean[26:] < -0.14).all()
    assert (layers["share_negative"][27:] > 0.8).all() and (layers["share_positive"][5] > 0.85)
    assert layers["n_clusters"][14:22].tolist() == [2] * 8
    assert (layers["pearson_in_norm_out_norm"][3:27] > 0.8).all()
    # up/down signs are arbitrary per neuron (SwiGLU), so only the gate can share a direction
    up, gate = (neuron_vectors(smollm2.read(f"blk.0.ffn_{m}.weight"), 1) for m in ("up", "gate"))
    assert abs(column_similarity(up, FFNConfig()).mean_offdiag) < 0.001
    assert column_similarity(gate, FFNConfig()).mean_offdiag == pytest.approx(0.026, abs=0.001)
