"""A GPT-2 in plain torch whose state dict is Hugging Face's `GPT2LMHeadModel`'s, name for name.

    transformer.wte.weight           (vocab, d)      token embedding, tied to the output
    transformer.wpe.weight           (n_ctx, d)      learned position embedding
    transformer.h.N.ln_1.weight/bias (d,)            pre-attention LayerNorm
    transformer.h.N.attn.c_attn.weight/bias  (d, 3d) / (3d,)   q, k, v side by side, Conv1D
    transformer.h.N.attn.c_proj.weight/bias  (d, d) / (d,)
    transformer.h.N.ln_2.weight/bias (d,)            pre-MLP LayerNorm
    transformer.h.N.mlp.c_fc.weight/bias     (d, 4d) / (4d,)   Conv1D, GELU after it
    transformer.h.N.mlp.c_proj.weight/bias   (4d, d) / (d,)
    transformer.ln_f.weight/bias     (d,)

Conv1D stores its weight [in, out] and computes x @ W + b: the transpose of nn.Linear's
[out, in]. The output layer is `wte` itself (logits = x @ wte.T); like the files
`save_pretrained` writes, the state dict holds no separate `lm_head.weight`, and no causal-mask
buffer (`attn.bias`). The init is GPT-2's (Radford et al. 2019, and Hugging Face's
`_init_weights`): every weight N(0, 0.02), the two residual projections (`attn.c_proj`,
`mlp.c_proj`) N(0, 0.02 / sqrt(2 n_layer)), biases 0, LayerNorm gains 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

INIT_STD = 0.02  # GPT-2's initializer_range


@dataclass(frozen=True)
class GPTShape:
    """The model's sizes. `d_model` must differ from `vocab` and `n_ctx`, so that the anatomy
    tells the residual axis of `wte` and `wpe` from their other one."""

    vocab: int = 256
    n_ctx: int = 128
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 192


class Conv1D(nn.Module):
    """Hugging Face's Conv1D: y = x @ weight + bias, weight stored [n_in, n_out]."""

    def __init__(self, n_in: int, n_out: int, std: float = INIT_STD) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_in, n_out) * std)
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.addmm(self.bias, x.reshape(-1, x.size(-1)), self.weight)  # (B*T, n_out)
        return y.view(*x.shape[:-1], -1)


class Attention(nn.Module):
    def __init__(self, shape: GPTShape) -> None:
        super().__init__()
        d = shape.d_model
        self.n_head = shape.n_head
        self.c_attn = Conv1D(d, 3 * d)
        self.c_proj = Conv1D(d, d, INIT_STD / math.sqrt(2 * shape.n_layer))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)  # (B, T, d) each
        q, k, v = (
            t.view(B, T, self.n_head, -1).transpose(1, 2) for t in (q, k, v)
        )  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        out: torch.Tensor = self.c_proj(y.transpose(1, 2).reshape(B, T, d))
        return out


class MLP(nn.Module):
    def __init__(self, shape: GPTShape) -> None:
        super().__init__()
        d = shape.d_model
        self.c_fc = Conv1D(d, 4 * d)
        self.c_proj = Conv1D(4 * d, d, INIT_STD / math.sqrt(2 * shape.n_layer))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))  # gelu_new
        return out


class Block(nn.Module):
    def __init__(self, shape: GPTShape) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(shape.d_model)
        self.attn = Attention(shape)
        self.ln_2 = nn.LayerNorm(shape.d_model)
        self.mlp = MLP(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        out: torch.Tensor = x + self.mlp(self.ln_2(x))
        return out


class Transformer(nn.Module):
    """The module under `transformer.`: embeddings, blocks, final LayerNorm."""

    def __init__(self, shape: GPTShape) -> None:
        super().__init__()
        self.wte = nn.Embedding(shape.vocab, shape.d_model)
        self.wpe = nn.Embedding(shape.n_ctx, shape.d_model)
        for emb in (self.wte, self.wpe):
            nn.init.normal_(emb.weight, std=INIT_STD)
        self.h = nn.ModuleList(Block(shape) for _ in range(shape.n_layer))
        self.ln_f = nn.LayerNorm(shape.d_model)


class GPT2(nn.Module):
    """GPT-2's language model: tokens (B, T) -> logits (B, T, vocab)."""

    def __init__(self, shape: GPTShape) -> None:
        super().__init__()
        if shape.d_model in (shape.vocab, shape.n_ctx):
            raise ValueError(f"d_model {shape.d_model} equals the vocabulary or the context: "
                             "the residual axis of wte or wpe would be ambiguous")  # fmt: skip
        self.shape = shape
        self.transformer = Transformer(shape)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = self.transformer
        pos = torch.arange(idx.size(1), device=idx.device)
        x: torch.Tensor = t.wte(idx) + t.wpe(pos)  # (B, T, d)
        for block in t.h:
            x = block(x)
        logits: torch.Tensor = t.ln_f(x) @ t.wte.weight.T  # tied: (B, T, vocab)
        return logits

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of next-token prediction; idx, targets (B, T)."""
        logits = self(idx)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, object]]:
    """AdamW groups as nanoGPT makes them: matrices and embeddings decay, biases and LayerNorm
    parameters do not (so a bias that gets no gradient, such as the keys', stays at 0)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


__all__ = ["GPT2", "INIT_STD", "Conv1D", "GPTShape", "Transformer", "param_groups"]
