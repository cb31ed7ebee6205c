"""Odd tensors through a whole scan: each is analysed or skipped with a recorded reason.

NaN, ±Inf, denormals, all zeros, constant, a single element, a scalar, zero-size dimensions,
1-D, 3-D and 5-D, huge aspect ratios, integer and boolean tensors, float16 overflow and quantized
blocks in odd counts. Non-finite values are findings with their counts and first indices, and
never reach another statistic. A RuntimeWarning anywhere fails the test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from test_gguf import write_gguf

import striate

D = 64
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def odd_tensors() -> dict[str, Any]:
    rng = np.random.default_rng(0)

    def noise(*shape: int) -> np.ndarray:
        return rng.normal(0, 0.02, shape).astype(np.float32)

    down = noise(D, 4 * D)
    down[3, 5], down[10, 7], down[11, 0] = np.nan, np.inf, -np.inf
    t: dict[str, Any] = {
        "model.embed_tokens.weight": noise(1000, D),
        "model.layers.0.mlp.up_proj.weight": noise(4 * D, D),
        "model.layers.0.mlp.down_proj.weight": down,
        "model.layers.0.mlp.gate_proj.weight": np.full((4 * D, D), np.nan, np.float32),
        "model.layers.0.self_attn.q_proj.weight": np.zeros((D, D), np.float32),
        "model.layers.0.self_attn.k_proj.weight": np.full((D, D), 0.5, np.float32),
        "model.layers.0.self_attn.v_proj.weight": noise(D, D) * np.float32(1e-38),  # subnormal
        "model.layers.0.self_attn.o_proj.weight": noise(D, D),
        "model.layers.0.input_layernorm.weight": np.r_[[np.nan] * 3, [1.0] * (D - 3)].astype(
            np.float32
        ),
        "model.layers.0.post_attention_layernorm.weight": np.ones(D, np.float32),
        "scalar": np.array(3.0, np.float32),
        "single": np.array([2.0], np.float32),
        "empty": np.zeros((0, 5), np.float32),
        "empty3": np.zeros((4, 0, 3), np.float32),
        "wide": noise(1, 200_000),
        "tall": noise(100_000, 2),
        "cube": noise(4, 8, 16),
        "five": noise(2, 3, 4, 5, 6),
        "conv.weight": noise(16, 8, 3, 3),
        "conv_nan.weight": np.full((16, 8, 3, 3), np.nan, np.float32),
    }
    out = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in t.items()}
    out["ints"] = torch.arange(100, dtype=torch.int64).reshape(10, 10)
    out["bools"] = torch.ones(10, 10, dtype=torch.bool)
    out["f16_overflow"] = torch.tensor([[65504.0, float("inf")], [1.0, 2.0]], dtype=torch.float16)
    out["bf16"] = torch.from_numpy(noise(64, 64)).to(torch.bfloat16)
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[striate.Run, dict[str, Any]]:
    d = tmp_path_factory.mktemp("odd")
    tensors = odd_tensors()
    save_file(tensors, str(d / "model.safetensors"))
    config = {"model_type": "llama", "hidden_size": D, "num_attention_heads": 4,
              "num_hidden_layers": 1, "intermediate_size": 4 * D}  # fmt: skip
    (d / "config.json").write_text(json.dumps(config))
    return striate.scan(d, out=d / "run"), tensors


def row(run: striate.Run, name: str) -> pd.Series:
    return run.tensors.set_index("name").loc[name]


def test_every_odd_tensor_is_done_and_has_its_picture(run: tuple[striate.Run, Any]) -> None:
    r, tensors = run
    assert set(r.tensors["name"]) == set(tensors)
    assert r.failed == {}
    statuses = r.manifest["tensors"]
    assert all(s["status"] == "done" and "image_error" not in s for s in statuses.values())
    missing = r.tensors[r.tensors["image"].isna()]["name"].tolist()
    assert missing == [], missing  # empty tensors get a card saying so, not nothing


def test_nonfinite_values_are_findings_with_counts_and_first_indices(
    run: tuple[striate.Run, Any],
) -> None:
    r, _ = run
    f = r.findings[r.findings["kind"] == "nonfinite"].set_index("tensor")
    down = f.loc["model.layers.0.mlp.down_proj.weight"]
    assert (down["n_nan"], down["n_inf"]) == (1, 2)
    assert "first at (3, 5), (10, 7), (11, 0)" in down["detail"]
    gate = f.loc["model.layers.0.mlp.gate_proj.weight"]
    assert (gate["n_nan"], gate["n_inf"]) == (4 * D * D, 0)
    assert f.loc["f16_overflow"]["n_inf"] == 1
    assert f.loc["conv_nan.weight"]["n_nan"] == 16 * 8 * 9
    assert f.loc["model.layers.0.input_layernorm.weight"]["n_nan"] == 3
    assert set(f.index) == {
        "model.layers.0.mlp.down_proj.weight", "model.layers.0.mlp.gate_proj.weight",
        "f16_overflow", "conv_nan.weight", "model.layers.0.input_layernorm.weight",
    }  # fmt: skip


def test_nonfinite_values_never_poison_other_statistics(run: tuple[striate.Run, Any]) -> None:
    r, tensors = run
    w = tensors["model.layers.0.mlp.down_proj.weight"].numpy()
    finite = w[np.isfinite(w)].astype(np.float64)
    down = row(r, "model.layers.0.mlp.down_proj.weight")
    assert down["mean"] == pytest.approx(finite.mean(), rel=1e-9)
    assert down["std"] == pytest.approx(finite.std(), rel=1e-9)
    assert (down["min"], down["max"]) == (finite.min(), finite.max())
    norm = row(r, "model.layers.0.input_layernorm.weight")
    assert (norm["mean"], norm["std"], norm["n_nan"]) == (1.0, 0.0, 3)
    f16 = row(r, "f16_overflow")
    assert (f16["max"], f16["n_inf"]) == (65504.0, 1)
    # the nonfinite tensor is not a norm outlier, a line or a hotspot of its own NaNs
    kinds = r.findings[r.findings["tensor"] == "model.layers.0.mlp.gate_proj.weight"]["kind"]
    assert list(kinds) == ["nonfinite"]


def test_spectra_are_computed_or_skipped_with_a_reason(run: tuple[striate.Run, Any]) -> None:
    r, _ = run
    t = r.tensors.set_index("name")
    has_spectrum = t["spectral_norm"].notna()
    assert (has_spectrum | t["spectrum_skipped"].notna()).all(), t[~has_spectrum].index.tolist()
    assert "non-finite" in t.loc["model.layers.0.mlp.down_proj.weight", "spectrum_skipped"]
    assert t.loc["model.layers.0.self_attn.q_proj.weight", "spectral_norm"] == 0.0
    assert t.loc["model.layers.0.self_attn.k_proj.weight", "spectral_norm"] == pytest.approx(32.0)
    assert t.loc["model.layers.0.self_attn.k_proj.weight", "stable_rank"] == pytest.approx(1.0)
    sub = t.loc["model.layers.0.self_attn.v_proj.weight"]
    assert 0 < sub["spectral_norm"] < 1e-36 and sub["stable_rank"] > 1  # subnormals: no underflow
    assert t.loc["ints", "spectral_norm"] > 0 and t.loc["bools", "spectral_norm"] == pytest.approx(
        10
    )
    for name, words in [("wide", "smaller side 1"), ("tall", "smaller side 2"),
                        ("scalar", "not a matrix"), ("empty", "smaller side 0")]:  # fmt: skip
        assert words in t.loc[name, "spectrum_skipped"], name


def test_integer_boolean_and_tiny_tensors_have_exact_statistics(
    run: tuple[striate.Run, Any],
) -> None:
    r, _ = run
    ints = row(r, "ints")
    assert (ints["mean"], ints["min"], ints["max"]) == (49.5, 0.0, 99.0)
    assert ints["std"] == pytest.approx(np.arange(100).std())
    bools = row(r, "bools")
    assert (bools["mean"], bools["std"]) == (1.0, 0.0)
    assert (row(r, "scalar")["mean"], row(r, "single")["max"]) == (3.0, 2.0)
    empty = row(r, "empty")
    assert empty["numel"] == 0 and np.isnan(empty["mean"]) and empty["n_nan"] == 0


def test_ffn_layer_with_nonfinite_gate_is_skipped_with_its_reason(
    run: tuple[striate.Run, Any],
) -> None:
    r, _ = run
    assert "neuron vectors are finite" in r.manifest["ffn_skipped"]["0"]


def test_quantized_blocks_in_odd_counts(tmp_path: Path) -> None:
    import gguf

    x = np.random.default_rng(3).normal(0, 1, (5, 96)).astype(np.float32)  # 15 Q8_0 blocks
    raw = gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q8_0)
    y = np.random.default_rng(4).normal(0, 1, (3, 32)).astype(np.float32)  # 3 Q4_0 blocks
    raw4 = gguf.quants.quantize(y, gguf.GGMLQuantizationType.Q4_0)
    path = write_gguf(tmp_path / "q.gguf", {"blk.0.ffn_up.weight": (raw, "Q8_0"),
                                           "odd": (raw4, "Q4_0")})  # fmt: skip
    r = striate.scan(path, out=tmp_path / "run")
    assert r.failed == {}
    t = r.tensors.set_index("name")
    assert tuple(t.loc["blk.0.ffn_up.weight", "shape"]) == (5, 96)
    assert t.loc["blk.0.ffn_up.weight", "max"] == pytest.approx(x.max(), rel=1 / 127)
    assert tuple(t.loc["odd", "shape"]) == (3, 32)
