"""Synthetic checkpoints with planted structure and the answers a scan must find.

Both models plant the same story in their own layout: residual dimension 7 is a "spectral line"
in the attention input and FFN output of every layer and an outlier of every norm gain; one
hotspot sits in layer 1's FFN input at residual dimension 20; the position embedding (GPT-2) is
the sinusoidal encoding; head 2 of layer 0's query projection has 3x the scale of the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

D, F, HEADS, LAYERS, VOCAB, POSITIONS = 64, 256, 8, 2, 300, 128
LINE_DIM, HOT_DIM, HOT_FFN, STRONG_HEAD = 7, 20, 100, 2


@dataclass(frozen=True)
class Planted:
    path: Path
    line_tensors: dict[str, tuple[int | None, ...]]  # tensor -> index of its planted line
    hotspot: tuple[str, tuple[int, int]]
    norm_tensors: list[str]
    head_tensor: str


def sinusoidal(n_pos: int, d: int) -> np.ndarray:
    pos = np.arange(n_pos)[:, None]
    freq = 1.0 / 10000 ** (np.arange(0, d, 2) / d)
    pe = np.zeros((n_pos, d))
    pe[:, 0::2], pe[:, 1::2] = np.sin(pos * freq), np.cos(pos * freq)
    return pe


def _gain(rng: np.random.Generator) -> np.ndarray:
    g = 1 + 0.02 * rng.standard_normal(D)
    g[LINE_DIM] = 6.0
    return g


def _save(tensors: dict[str, np.ndarray], folder: Path, config: dict[str, object]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {
            k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
            for k, v in tensors.items()
        },
        folder / "model.safetensors",
    )
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def gpt2(folder: Path, seed: int = 0) -> Planted:
    """Hugging Face GPT-2 names, Conv1D layout [in, out]: the residual is axis 0 of c_attn/c_fc
    (they read it) and axis 1 of both c_proj (they write it)."""
    rng = np.random.default_rng(seed)
    t: dict[str, np.ndarray] = {
        "wte.weight": 0.02 * rng.standard_normal((VOCAB, D)),
        "wpe.weight": 0.1 * sinusoidal(POSITIONS, D),
        "ln_f.weight": _gain(rng),
        "ln_f.bias": 0.01 * rng.standard_normal(D),
    }
    lines: dict[str, tuple[int | None, ...]] = {}
    for i in range(LAYERS):
        p = f"h.{i}."
        c_attn = 0.02 * rng.standard_normal((D, 3 * D))
        c_attn[LINE_DIM, :] *= 8  # reads residual dim 7 strongly: a row line
        c_proj = 0.02 * rng.standard_normal((D, D))
        c_fc = 0.02 * rng.standard_normal((D, F))
        mlp_proj = 0.02 * rng.standard_normal((F, D))
        mlp_proj[:, LINE_DIM] *= 8  # writes residual dim 7 strongly: a column line
        t |= {
            p + "ln_1.weight": _gain(rng), p + "ln_1.bias": 0.01 * rng.standard_normal(D),
            p + "attn.c_attn.weight": c_attn, p + "attn.c_attn.bias": np.zeros(3 * D),
            p + "attn.c_proj.weight": c_proj, p + "attn.c_proj.bias": np.zeros(D),
            p + "ln_2.weight": _gain(rng), p + "ln_2.bias": 0.01 * rng.standard_normal(D),
            p + "mlp.c_fc.weight": c_fc, p + "mlp.c_fc.bias": np.zeros(F),
            p + "mlp.c_proj.weight": mlp_proj, p + "mlp.c_proj.bias": np.zeros(D),
        }  # fmt: skip
        lines[p + "attn.c_attn.weight"] = (LINE_DIM, None)
        lines[p + "mlp.c_proj.weight"] = (None, LINE_DIM)
    hd = D // HEADS
    q = slice(STRONG_HEAD * hd, (STRONG_HEAD + 1) * hd)  # query columns of head 2
    t["h.0.attn.c_attn.weight"][:, q] *= 3
    t["h.1.mlp.c_fc.weight"][HOT_DIM, HOT_FFN] = 1.0  # ~50 sigma
    config = {"model_type": "gpt2", "n_embd": D, "n_head": HEADS, "n_layer": LAYERS,
              "n_positions": POSITIONS, "vocab_size": VOCAB}  # fmt: skip
    norms = [f"h.{i}.ln_{j}.weight" for i in range(LAYERS) for j in (1, 2)] + ["ln_f.weight"]
    return Planted(
        _save(t, folder, config), lines, ("h.1.mlp.c_fc.weight", (HOT_DIM, HOT_FFN)), norms,
        "h.0.attn.c_attn.weight",
    )  # fmt: skip


def llama(folder: Path, seed: int = 0) -> Planted:
    """LLaMA names, nn.Linear layout [out, in]: the residual is axis 1 of q/k/v/gate/up (they
    read it) and axis 0 of o_proj/down_proj (they write it)."""
    rng = np.random.default_rng(seed)
    t: dict[str, np.ndarray] = {
        "model.embed_tokens.weight": 0.02 * rng.standard_normal((VOCAB, D)),
        "model.norm.weight": _gain(rng),
        "lm_head.weight": 0.02 * rng.standard_normal((VOCAB, D)),
    }
    lines: dict[str, tuple[int | None, ...]] = {}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        for name, shape in [("self_attn.q_proj", (D, D)), ("self_attn.k_proj", (D, D)),
                            ("self_attn.v_proj", (D, D)), ("self_attn.o_proj", (D, D)),
                            ("mlp.gate_proj", (F, D)), ("mlp.up_proj", (F, D)),
                            ("mlp.down_proj", (D, F))]:  # fmt: skip
            t[p + name + ".weight"] = 0.02 * rng.standard_normal(shape)
        t[p + "self_attn.q_proj.weight"][:, LINE_DIM] *= 8  # reads dim 7: a column line
        t[p + "mlp.down_proj.weight"][LINE_DIM, :] *= 8  # writes dim 7: a row line
        t[p + "input_layernorm.weight"] = _gain(rng)
        t[p + "post_attention_layernorm.weight"] = _gain(rng)
        lines[p + "self_attn.q_proj.weight"] = (None, LINE_DIM)
        lines[p + "mlp.down_proj.weight"] = (LINE_DIM, None)
    hd = D // HEADS
    t["model.layers.0.self_attn.q_proj.weight"][STRONG_HEAD * hd : (STRONG_HEAD + 1) * hd] *= 3
    t["model.layers.1.mlp.up_proj.weight"][HOT_FFN, HOT_DIM] = 1.0
    config = {"model_type": "llama", "hidden_size": D, "num_attention_heads": HEADS,
              "num_key_value_heads": HEADS, "num_hidden_layers": LAYERS,
              "intermediate_size": F, "vocab_size": VOCAB}  # fmt: skip
    kinds = ("input_layernorm", "post_attention_layernorm")
    norms = [f"model.layers.{i}.{n}.weight" for i in range(LAYERS) for n in kinds]
    norms.append("model.norm.weight")
    return Planted(
        _save(t, folder, config), lines,
        ("model.layers.1.mlp.up_proj.weight", (HOT_FFN, HOT_DIM)), norms,
        "model.layers.0.self_attn.q_proj.weight",
    )  # fmt: skip
