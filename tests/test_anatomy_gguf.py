"""The anatomy of GGUF files as llama.cpp's converter names their tensors."""

from __future__ import annotations

import pytest

from striate.anatomy import FFNTriple, TensorAnatomy, describe

Shapes = dict[str, tuple[int, ...]]


def test_bert_gguf_names_from_llama_cpps_own_table() -> None:
    """A BERT written to GGUF by llama.cpp's converter: the names come from the gguf package's
    table for its BERT architecture, so the family is bert and every weight has its role."""
    gguf = pytest.importorskip("gguf")
    arch, hidden, ffn, vocab = gguf.MODEL_ARCH.BERT, 32, 64, 100
    shapes: Shapes = {}
    for tensor in gguf.MODEL_TENSORS[arch]:
        template = gguf.TENSOR_NAMES[tensor]
        if template in ("cls", "cls.output", "blk.{bid}.attn_qkv", "output_norm"):
            continue  # the classifier head, a fused QKV and a final norm: not in MiniLM
        for bid in range(2) if "{bid}" in template else [None]:
            name = template.format(bid=bid)
            shape: tuple[int, ...] = (hidden,) if name.endswith("norm") else (hidden, hidden)
            if name.endswith("ffn_up"):
                shape = (ffn, hidden)
            elif name.endswith("ffn_down"):
                shape = (hidden, ffn)
            elif name in ("token_embd", "position_embd", "token_types"):
                shape = ({"token_embd": vocab, "position_embd": 16, "token_types": 2}[name], hidden)
            shapes[name + ".weight"] = shape
    a = describe(shapes, None, {"general.architecture": "bert"})
    assert (a.family, a.n_layers, a.hidden_size) == ("bert", 2, hidden)
    assert "other" not in {t.role for t in a.tensors.values()}
    assert a["blk.1.attn_output_norm.weight"] == TensorAnatomy(
        "blk.1.attn_output_norm.weight", "norm", 1, 0, "vector"
    )
    assert a["token_types.weight"].role == "embedding"
    assert a["blk.0.ffn_up.weight"].residual_axis == 1
    assert a.ffn[1] == FFNTriple(1, "blk.1.ffn_up.weight", "blk.1.ffn_down.weight", None)
