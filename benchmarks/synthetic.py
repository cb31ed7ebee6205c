"""Synthetic LLaMA-shaped checkpoints for the benchmarks: sharded bf16 safetensors + config.json.

Weights are Gaussian with a few planted rank-one spikes per matrix (so spectra have something
above the Marchenko-Pastur bulk), written shard by shard: generating a model never holds more
than one tensor in memory, so models bigger than RAM can be made.

    python benchmarks/synthetic.py /tmp/llama300m --hidden 1024 --layers 24
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file


def ffn_size(hidden: int) -> int:
    """LLaMA's FFN width: 8/3 of the hidden size, rounded up to a multiple of 256."""
    return -(-8 * hidden // (3 * 256)) * 256


def llama_shapes(
    hidden: int, layers: int, ffn: int | None = None, vocab: int = 32000
) -> Iterator[tuple[str, tuple[int, ...]]]:
    """Tensor names and shapes of a LLaMA model (as Hugging Face stores it), file order."""
    ffn = ffn or ffn_size(hidden)
    yield "model.embed_tokens.weight", (vocab, hidden)
    for i in range(layers):
        p = f"model.layers.{i}."
        yield p + "input_layernorm.weight", (hidden,)
        for proj in ("q", "k", "v", "o"):
            yield p + f"self_attn.{proj}_proj.weight", (hidden, hidden)
        yield p + "post_attention_layernorm.weight", (hidden,)
        yield p + "mlp.gate_proj.weight", (ffn, hidden)
        yield p + "mlp.up_proj.weight", (ffn, hidden)
        yield p + "mlp.down_proj.weight", (hidden, ffn)
    yield "model.norm.weight", (hidden,)
    yield "lm_head.weight", (vocab, hidden)


def tensor(shape: tuple[int, ...], rng: np.random.Generator) -> torch.Tensor:
    if len(shape) == 1:
        return torch.ones(shape, dtype=torch.bfloat16)
    n, m = shape
    w = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32)) * (1.0 / m**0.5)
    for k in range(3):  # planted spikes: s ~ 3, 4, 5 times the bulk edge
        u = torch.from_numpy(rng.standard_normal(n, dtype=np.float32)) / n**0.5
        v = torch.from_numpy(rng.standard_normal(m, dtype=np.float32)) / m**0.5
        w += (3 + k) * (1 + (n / m) ** 0.5) * torch.outer(u, v)
    return w.to(torch.bfloat16)


def write_llama(
    folder: Path, hidden: int, layers: int, *, ffn: int | None = None, vocab: int = 32000,
    shard_bytes: int = 2 << 30, seed: int = 0,
) -> Path:  # fmt: skip
    """Write the model into `folder` (shards of at most `shard_bytes`) and return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shapes = list(llama_shapes(hidden, layers, ffn, vocab))
    shards: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    size = 0
    for name, shape in shapes:
        nbytes = 2 * int(np.prod(shape))
        if size + nbytes > shard_bytes and shards[-1]:
            shards.append([])
            size = 0
        shards[-1].append((name, shape))
        size += nbytes
    weight_map = {}
    for k, shard in enumerate(shards):
        file = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file({name: tensor(shape, rng) for name, shape in shard}, str(folder / file))
        weight_map |= {name: file for name, _ in shard}
    total = sum(2 * int(np.prod(s)) for _, s in shapes)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    config = {"model_type": "llama", "hidden_size": hidden, "num_hidden_layers": layers,
              "num_attention_heads": max(1, hidden // 64),
              "intermediate_size": ffn or ffn_size(hidden),
              "vocab_size": vocab, "torch_dtype": "bfloat16"}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def n_params(hidden: int, layers: int, ffn: int | None = None, vocab: int = 32000) -> int:
    return sum(int(np.prod(s)) for _, s in llama_shapes(hidden, layers, ffn, vocab))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--vocab", type=int, default=32000)
    a = ap.parse_args()
    write_llama(a.folder, a.hidden, a.layers, vocab=a.vocab)
    print(f"{n_params(a.hidden, a.layers, vocab=a.vocab):,} parameters in {a.folder}")
