"""Attention heads: how many a model has, and how a projection's storage splits into them.

>>> from striate.anatomy.heads import HeadCounts, head_partition
>>> from striate.anatomy import describe
>>> part = describe({"h.0.attn.c_attn.weight": (768, 2304)},
...                 config={"model_type": "gpt2", "n_embd": 768})["h.0.attn.c_attn.weight"]
>>> head_partition((768, 2304), part, HeadCounts(12, None))   # q, k, v side by side
(36, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from striate.anatomy.records import TensorAnatomy
from striate.checkpoint import Checkpoint

#: which head count splits each attention role: queries (and the output), keys/values, fused qkv
HEAD_ROLES = {"attn_q": "q", "attn_k": "kv", "attn_v": "kv", "attn_qkv": "qkv", "attn_out": "q"}


@dataclass(frozen=True)
class HeadCounts:
    """Attention heads, as the model's config says; None where it does not say."""

    n_heads: int | None
    n_kv_heads: int | None  # grouped-query attention; None: as many as n_heads


def head_counts(ckpt: Checkpoint) -> HeadCounts:
    """Attention head counts from config.json or GGUF metadata, when the file says."""
    config = ckpt.config or {}
    n = config.get("num_attention_heads") or config.get("n_head") or config.get("num_heads")
    kv = config.get("num_key_value_heads")
    arch = ckpt.metadata.get("general.architecture")
    if arch:
        n = n or ckpt.metadata.get(f"{arch}.attention.head_count")
        kv = kv or ckpt.metadata.get(f"{arch}.attention.head_count_kv")
    return HeadCounts(_positive_int(n), _positive_int(kv))


def head_partition(
    shape: Sequence[int], part: TensorAnatomy, heads: HeadCounts
) -> tuple[int, int] | None:
    """(n_blocks, head_axis) of an attention projection of this `shape` whose head count is
    known: the stored axis that is not the residual stream splits into `n_blocks` heads."""
    kind = HEAD_ROLES.get(part.role)
    if kind is None or len(shape) != 2 or part.residual_axis is None or heads.n_heads is None:
        return None
    n_blocks = {"q": heads.n_heads, "kv": heads.n_kv_heads or heads.n_heads,
                "qkv": 3 * heads.n_heads}[kind]  # fmt: skip
    head_axis = 1 - part.residual_axis
    if n_blocks < 2 or shape[head_axis] % n_blocks:
        return None
    return n_blocks, head_axis


def _positive_int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, np.integer)) and int(value) > 0 else None


__all__ = ["HEAD_ROLES", "HeadCounts", "head_counts", "head_partition"]
