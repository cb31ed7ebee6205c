"""The GPT-2 specimen: its model against GPT-2's layout and a second implementation, the
measures on planted answers and closed forms, and the quick preset end to end (checkpoints read
as GPT-2, the loss falls, the init statistics are those of GPT-2's random init)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from pictures import assert_drawn

import striate
from striate.analyses.norm_links import norm_links
from striate.experiments import run_experiment
from striate.experiments.claims import VERDICTS
from striate.experiments.data import python_corpus
from striate.experiments.gpt_measures import (
    embedding_by_frequency,
    ffn_at_init,
    fit_sinusoid,
    hypergeom_p,
    norm_line_overlap,
    wpe_components,
)
from striate.experiments.gpt_model import GPT2, Conv1D, GPTShape
from striate.experiments.gpt_specimen import CLAIMS, PRESETS, lr_factor

SHAPE = GPTShape(vocab=256, n_ctx=24, n_layer=2, n_head=4, d_model=16)


def hf_names(n_layer: int) -> set[str]:
    """The names of Hugging Face's GPT2LMHeadModel as `save_pretrained` writes them (the tied
    lm_head.weight left out), with the `transformer.` prefix."""
    block = [f"{m}.{p}" for m in ("ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc",
                                  "mlp.c_proj") for p in ("weight", "bias")]  # fmt: skip
    names = {"transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight",
             "transformer.ln_f.bias"}  # fmt: skip
    return names | {f"transformer.h.{i}.{n}" for i in range(n_layer) for n in block}


# --- the model ---------------------------------------------------------------------------------


def test_state_dict_has_gpt2_names_and_conv1d_shapes() -> None:
    sd = GPT2(SHAPE).state_dict()
    assert set(sd) == hf_names(2)
    d = SHAPE.d_model
    assert sd["transformer.h.1.attn.c_attn.weight"].shape == (d, 3 * d)  # [in, out]
    assert sd["transformer.h.1.mlp.c_fc.weight"].shape == (d, 4 * d)
    assert sd["transformer.h.1.mlp.c_proj.weight"].shape == (4 * d, d)
    assert sd["transformer.wpe.weight"].shape == (24, d)
    with pytest.raises(ValueError, match="ambiguous"):
        GPT2(GPTShape(n_ctx=16, d_model=16))


def test_conv1d_is_a_transposed_linear() -> None:
    torch.manual_seed(1)
    conv, x = Conv1D(5, 7), torch.randn(2, 3, 5)
    torch.nn.init.normal_(conv.bias)
    expected = F.linear(x, conv.weight.T, conv.bias)
    torch.testing.assert_close(conv(x), expected, rtol=1e-6, atol=1e-6)


def test_attention_is_causal_and_the_key_bias_gets_no_gradient() -> None:
    torch.manual_seed(0)
    model = GPT2(SHAPE)
    x = torch.randint(0, 256, (3, 24))
    y = x.clone()
    y[:, 10:] = torch.randint(0, 256, (3, 14))  # the future changes ...
    torch.testing.assert_close(model(x)[:, :10], model(y)[:, :10])  # ... the past does not see it
    model.loss(x[:, :-1], x[:, 1:]).backward()  # type: ignore[no-untyped-call]
    grad = model.transformer.h[0].attn.c_attn.bias.grad
    assert grad is not None
    _, k, v = grad.split(SHAPE.d_model)  # q, k, v
    # softmax ignores a shift common to every key: the keys' bias gets float noise only
    assert k.norm() < 1e-5 * v.norm() and v.norm() > 1e-4


def test_learning_rate_warms_up_then_decays_to_its_floor() -> None:
    cfg = PRESETS["quick"]
    assert lr_factor(0, cfg) == pytest.approx(1 / cfg.warmup)
    assert lr_factor(cfg.warmup, cfg) == pytest.approx(1.0)
    assert lr_factor(cfg.steps, cfg) == pytest.approx(cfg.min_lr_ratio)
    middle = (cfg.warmup + cfg.steps) / 2
    assert lr_factor(int(middle), cfg) == pytest.approx((1 + cfg.min_lr_ratio) / 2, abs=0.01)


def test_corpus_is_sorted_split_by_file_and_skips_site_packages(tmp_path: Path) -> None:
    for i in range(12):
        (tmp_path / "pkg").mkdir(exist_ok=True)
        (tmp_path / "pkg" / f"m{i:02d}.py").write_bytes(bytes([65 + i]) * 3)
    (tmp_path / "site-packages").mkdir()
    (tmp_path / "site-packages" / "x.py").write_bytes(b"zzz")
    (tmp_path / "notes.txt").write_bytes(b"not python")
    c = python_corpus(root=tmp_path, val_every=5)
    # files 4 and 9 (E, J) held out, in sorted order; site-packages and .txt never read
    assert bytes(c.val.tolist()) == b"EEEJJJ"
    assert bytes(c.train.tolist()) == b"AAABBBCCCDDDFFFGGGHHHIIIKKKLLL"
    assert (c.train_files, c.val_files) == (10, 2)
    assert python_corpus(root=tmp_path, val_every=5).sha256 == c.sha256
    assert python_corpus(max_bytes=33, root=tmp_path, val_every=5).train.numel() == 9 * 3  # 11 fit


# --- the measures --------------------------------------------------------------------------------


def test_fit_sinusoid_recovers_a_planted_sinusoid() -> None:
    t = np.arange(256)
    clean = 3.0 * np.sin(2 * np.pi * 0.0731 * t - 2.1) - 1.0
    fit = fit_sinusoid(clean)
    assert fit.frequency == pytest.approx(0.0731, abs=1e-7)
    assert (fit.amplitude, fit.phase, fit.offset) == pytest.approx((3.0, -2.1, -1.0), abs=1e-5)
    assert fit.r2 == pytest.approx(1.0, abs=1e-10)
    noisy = clean + np.random.default_rng(0).normal(0, 0.3, t.size)
    fit = fit_sinusoid(noisy)
    assert fit.frequency == pytest.approx(0.0731, abs=2e-4)
    assert fit.r2 == pytest.approx(4.5 / (4.5 + 0.09), abs=0.01)  # var signal / var total


def test_fit_sinusoid_gives_noise_a_low_r2_and_a_ramp_half_a_cycle() -> None:
    rng = np.random.default_rng(1)
    r2 = [fit_sinusoid(rng.standard_normal(256)).r2 for _ in range(30)]
    assert max(r2) < 0.12 and 0.02 < np.mean(r2) < 0.08
    ramp = fit_sinusoid(np.arange(256.0))  # the lowest frequency is half a cycle: a bend
    assert ramp.cycles == pytest.approx(0.5) and ramp.r2 > 0.98


def test_wpe_components_find_planted_sinusoids() -> None:
    t, rng = np.arange(128), np.random.default_rng(2)
    u, v = np.linalg.qr(rng.standard_normal((40, 2)))[0].T  # orthonormal directions
    wpe = 3 * np.outer(np.sin(2 * np.pi * 5 * t / 128), u) + np.outer(
        np.cos(2 * np.pi * 2 * t / 128), v
    )
    out = wpe_components(wpe + rng.normal(0, 1e-4, wpe.shape), k=2)
    first, second = out["components"]
    assert (first["cycles"], second["cycles"]) == pytest.approx((5.0, 2.0), abs=1e-3)
    assert first["variance_share"] == pytest.approx(9 / 10, abs=1e-4)  # 3^2 : 1^2
    assert out["mean_r2"] == pytest.approx(1.0, abs=1e-5)


def test_hypergeometric_overlap_matches_its_closed_form() -> None:
    # P(X >= 2), 3 outliers among 20 dims, 4 of them line dims: (C(4,2) C(16,1) + C(4,3)) / C(20,3)
    assert hypergeom_p(2, 20, 4, 3) == pytest.approx(100 / 1140, rel=1e-12)
    assert hypergeom_p(0, 20, 4, 3) == 1.0 and hypergeom_p(1, 20, 0, 3) == 1.0
    layer = {"layer": 0, "shape": [[20]] * 5}
    tensors = pd.DataFrame({
        "name": ["h.0.ln_1.weight", "h.0.attn.c_attn.weight", "h.0.ln_2.weight",
                 "h.0.mlp.c_fc.weight", "h.0.mlp.c_proj.weight"],
        "role": ["norm", "attn_qkv", "norm", "ffn_in", "ffn_out"], **layer,
    })  # fmt: skip
    findings = pd.DataFrame({
        "kind": ["norm_outlier", "norm_outlier", "norm_outlier", "line", "line", "line", "line",
                 "line"],
        "tensor": ["h.0.ln_1.weight", "h.0.ln_1.weight", "h.0.ln_2.weight",
                   "h.0.attn.c_attn.weight", "h.0.attn.c_attn.weight", "h.0.mlp.c_fc.weight",
                   "h.0.mlp.c_fc.weight", "h.0.mlp.c_proj.weight"],
        "residual_dim": [3, 7, 11, 3, 5, 11, 12, 7],  # c_proj's line at 7 is fed by no gain
    })  # fmt: skip
    links = norm_links(findings, tensors, "gpt2", 20)
    out = norm_line_overlap(findings, tensors, links, 20)
    assert (out["outlier_dims"], out["overlap_dims"]) == ([3, 7, 11], [3, 11])
    assert (out["n_line_dims"], out["n_fed_matrices"]) == (4, 2)
    assert out["p_value"] == pytest.approx(100 / 1140, rel=1e-12)
    assert out["expected_overlap"] == pytest.approx(3 * 4 / 20)


def test_embedding_by_frequency_on_planted_rows() -> None:
    counts = np.zeros(256, int)
    counts[:8] = [50, 40, 30, 20, 10, 5, 2, 1]  # 8 occur: quarters of 2
    rng = np.random.default_rng(3)
    wte = rng.standard_normal((256, 12))
    wte /= np.linalg.norm(wte, axis=1, keepdims=True)
    wte[:2] *= 2.0  # the frequent quarter: twice as long
    wte[7] = wte[6]  # the rare quarter: one row twice
    out = embedding_by_frequency(wte, counts)
    assert out["frequent"]["tokens"] == [0, 1] and out["rare"]["tokens"] == [6, 7]
    assert out["norm_ratio"] == pytest.approx(2.0, rel=1e-12)
    assert out["rare"]["mean_cos_to_mean"] == pytest.approx(1.0, rel=1e-12)
    cos = (
        wte[0] @ wte[1] / 4
    )  # of two rows at cosine c, each has cos sqrt((1 + c) / 2) to their mean
    assert out["frequent"]["mean_cos_to_mean"] == pytest.approx(math.sqrt((1 + cos) / 2))


# --- the quick preset, end to end -------------------------------------------------------------


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_experiment("gpt-specimen", tmp_path_factory.mktemp("gpt"), preset="quick")


def test_checkpoints_read_as_gpt2_with_conv1d_layout(quick: Path) -> None:
    cfg, folder = PRESETS["quick"], quick / "checkpoints" / "specimen"
    steps = sorted(int(p.stem.split("_")[1]) for p in folder.glob("step_*.safetensors"))
    assert steps[0] == 0 and steps[-1] == cfg.steps and len(steps) == cfg.checkpoints
    d = cfg.d_model
    with striate.open(folder / "step_0000000.safetensors") as ckpt:
        assert set(ckpt.names()) == hf_names(cfg.n_layer)
        anat = striate.anatomy_of(ckpt)
    assert (anat.family, anat.hidden_size, anat.n_layers) == ("gpt2", d, cfg.n_layer)
    expected = {  # name: (role, layout, residual axis)
        "transformer.h.1.attn.c_attn.weight": ("attn_qkv", "conv1d", 0),  # [d, 3d]
        "transformer.h.1.attn.c_proj.weight": ("attn_out", "conv1d", 1),  # [d, d] writes: out
        "transformer.h.1.mlp.c_fc.weight": ("ffn_in", "conv1d", 0),  # [d, 4d]
        "transformer.h.1.mlp.c_proj.weight": ("ffn_out", "conv1d", 1),  # [4d, d]
        "transformer.wte.weight": ("embedding", "embedding", 1),  # [256, d]
        "transformer.wpe.weight": ("position_embedding", "embedding", 1),  # [n_ctx, d]
        "transformer.h.1.ln_2.weight": ("norm", "vector", 0),
    }
    for name, facts in expected.items():
        t = anat[name]
        assert (t.role, t.layout, t.residual_axis) == facts, name
    summary = json.loads((quick / "summary.json").read_text())
    assert summary["anatomy"]["family"] == "gpt2"
    assert summary["tracked_checkpoints"] == cfg.checkpoints


def test_loss_falls(quick: Path) -> None:
    metrics = pd.read_parquet(quick / "metrics.parquet")
    val = metrics["val_loss"].to_numpy()
    assert val[0] == pytest.approx(math.log(256), abs=0.3)  # near uniform over the bytes at init
    assert val[-1] < 2.8 and np.all(np.diff(val) < 0.05)  # falls, and never rises by much
    loss = json.loads((quick / "summary.json").read_text())["loss"]
    assert loss["val_final"] == pytest.approx(val[-1])
    assert loss["val_final_bits_per_byte"] == pytest.approx(val[-1] / math.log(2))


def test_init_statistics_are_those_of_gpt2s_random_init(quick: Path) -> None:
    """At step 0 the scan's FFN statistics match their closed forms within 4 standard errors,
    and the layer-0 attention bias is 0."""
    cfg = PRESETS["quick"]
    s = json.loads((quick / "summary.json").read_text())
    init, closed = s["ffn"]["init"]["all"], ffn_at_init(cfg.d_model, cfg.n_layer)
    assert closed == s["ffn"]["expected_at_init"]
    n, d = 4 * cfg.d_model * cfg.n_layer, cfg.d_model  # neurons, dims
    chi = closed["mean_in_norm"] / 0.02  # E||x|| for x ~ N(0, I_d); Var = d - chi^2
    se_cos = math.sqrt((1 / d - closed["mean_abs_alignment"] ** 2) / n)  # E cos^2 = 1 / d
    se_in = 0.02 * math.sqrt((d - chi**2) / n)
    assert closed["mean_abs_alignment"] == pytest.approx(math.sqrt(2 / (math.pi * d)), rel=0.02)
    assert init["mean_abs_alignment"] == pytest.approx(closed["mean_abs_alignment"], abs=4 * se_cos)
    assert init["mean_alignment"] == pytest.approx(0.0, abs=4 * math.sqrt(1 / d / n))
    assert init["mean_in_norm"] == pytest.approx(closed["mean_in_norm"], abs=4 * se_in)
    out_scale = 1 / math.sqrt(2 * cfg.n_layer)  # GPT-2's scaled init of the residual projections
    assert init["mean_out_norm"] == pytest.approx(
        closed["mean_out_norm"], abs=4 * se_in * out_scale
    )
    bias = s["attention_bias"]
    assert [bias["init"][p]["norm"] for p in "qkv"] == [0.0, 0.0, 0.0]
    assert bias["trained"]["k"]["norm"] < 0.1 * min(bias["trained"][p]["norm"] for p in "qv")
    assert s["norm_lines"]["init"]["n_gain_outliers"] == 0  # gains of all ones: nothing stands out
    assert s["embedding"]["init"]["norm_ratio"] == pytest.approx(1.0, abs=0.1)


def test_claims_are_decided_on_the_summary(quick: Path) -> None:
    s = json.loads((quick / "summary.json").read_text())
    rows = json.loads((quick / "claims.json").read_text())
    assert [r["id"] for r in rows] == [c.id for c in CLAIMS]
    assert all(r["verdict"] in VERDICTS and r["n_seeds"] == 1 for r in rows)
    by_id = {r["id"]: r["per_seed"][0] for r in rows}
    assert by_id["wpe_top_components_are_sinusoids"] == pytest.approx(
        s["wpe"]["trained"]["mean_r2"]
    )
    assert by_id["gain_outliers_sit_on_lines"] == pytest.approx(
        s["norm_lines"]["trained"]["p_value"]
    )
    wpe = s["wpe"]
    assert by_id["wpe_more_sinusoidal_than_a_random_walk"] == pytest.approx(
        wpe["trained"]["mean_r2"] - wpe["random_walk"]["mean_r2"]
    )
    assert any("vocabulary of 50,257" in d for d in rows[0]["deviations"])
    figures = json.loads((quick / "manifest.json").read_text())["figures"]
    assert figures == ["figures/wpe.png", "figures/embedding_rows.png",
                       "figures/attention_bias.png", "figures/loss.png"]  # fmt: skip
    for f in figures:
        assert_drawn(quick / f)


SPECIMEN = Path(__file__).resolve().parents[1] / "docs" / "reproductions" / "gpt-specimen"


def test_the_readme_states_the_committed_specimen_and_its_scan() -> None:
    """The README's paragraph on our GPT-2 specimen (next to MiniLM's and SmolLM2's): the scan of
    the committed checkpoint (seed 0, the end of training) and the numbers of the committed
    reproduction it quotes."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = text.index("`striate scan docs/reproductions/gpt-specimen/specimen.safetensors`")
    paragraph = " ".join(text[start : text.index("![", start)].split())
    run = striate.scan(SPECIMEN / "specimen.safetensors")
    assert run.manifest["family"] == "gpt2" and run.failed == {}
    hidden = int(run.manifest["hidden_size"])
    dims = run.residual_dims[run.residual_dims["significance"] >= 3]
    n_dims, n_quiet, top = len(dims), int((dims["direction"] == "quiet").sum()), dims.iloc[0]
    claims = json.loads((SPECIMEN / "claims.json").read_text())
    seeds = json.loads((SPECIMEN / "summary.json").read_text())["per_seed"]
    emb = [s["embedding"]["trained"] for s in seeds.values()]
    ratio = [1 / e["norm_ratio"] for e in emb]
    rare = [e["rare"]["mean_cos_to_mean"] for e in emb]
    frequent = [e["frequent"]["mean_cos_to_mean"] for e in emb]
    met = sum(c["verdict"] == "met" for c in claims)
    settings = json.loads((SPECIMEN / "manifest.json").read_text())["settings"]
    model = seeds["0"]["model"]
    phrases = [
        f"{model['shape']['n_layer']} layers, d_model {model['shape']['d_model']}",
        f"{model['parameters'] / 1e6:.2f}M parameters, {settings['steps']:,} steps",
        f"reports {len(run.findings) or 'no'} findings",
        f"{n_dims} of its {hidden} residual dimensions stand out when the evidence of all "
        f"{top['n_tensors_pooled']} tensors along the stream is pooled (dimension "
        f"{top['residual_dim']} leads, {top['direction']}; {n_quiet} of the {n_dims} are quiet)",
        f"{met} of {len(claims)} claims met over {len(seeds)} seeds",
        f"{min(ratio):.1f}-{max(ratio):.1f} times longer",
        f"mean cosine to their mean {min(rare):.3f}-{max(rare):.3f}",
        f"against {min(frequent):.2f}-{max(frequent):.2f} for the frequent quarter",
    ]
    for phrase in phrases:
        assert phrase in paragraph, phrase
    size = (SPECIMEN / "specimen.safetensors").stat().st_size / 1e6
    assert f"`docs/reproductions/gpt-specimen/specimen.safetensors` ({size:.1f} MB)" in text
