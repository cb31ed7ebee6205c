"""The anatomy on real name lists (tests/data/names, see its README) and planted names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from striate.anatomy import ROLES, Anatomy, FFNTriple, TensorAnatomy, anatomy_of, describe
from striate.anatomy.family import Rule
from striate.checkpoint.base import Checkpoint, TensorInfo

NAMES = Path(__file__).parent / "data" / "names"
Shapes = dict[str, tuple[int, ...]]


def load(stem: str) -> tuple[Shapes, dict[str, Any] | None, dict[str, Any] | None]:
    data = json.loads((NAMES / f"{stem}.json").read_text(encoding="utf-8"))
    return {n: tuple(s) for n, s in data["tensors"]}, data["config"], data["metadata"]


def described(stem: str, *, evidence: bool = True) -> Anatomy:
    shapes, config, metadata = load(stem)
    return describe(shapes, config, metadata) if evidence else describe(shapes)


# stem: family, n_layers, hidden_size, number of tensors, number of FFN triples, role counts
EXPECTED: dict[str, tuple[str, int | None, int | None, int, int, dict[str, int]]] = {
    "gpt2_hf": ("gpt2", 3, 40, 41, 3, {
        "embedding": 1, "position_embedding": 1, "attn_qkv": 3, "attn_out": 3, "ffn_in": 3,
        "ffn_out": 3, "norm": 7, "norm_bias": 7, "bias": 12, "lm_head": 1}),
    "gpt2_legacy": ("gpt2", 3, 40, 46, 3, {
        "embedding": 1, "position_embedding": 1, "attn_qkv": 3, "attn_out": 3, "ffn_in": 3,
        "ffn_out": 3, "norm": 7, "norm_bias": 7, "bias": 12, "other": 6}),
    "nanogpt": ("gpt2", 3, 40, 41, 3, {
        "embedding": 1, "position_embedding": 1, "attn_qkv": 3, "attn_out": 3, "ffn_in": 3,
        "ffn_out": 3, "norm": 7, "norm_bias": 7, "bias": 12, "lm_head": 1}),
    "bert_mlm": ("bert", 3, 40, 60, 3, {
        "embedding": 2, "position_embedding": 1, "attn_q": 3, "attn_k": 3, "attn_v": 3,
        "attn_out": 3, "ffn_in": 3, "ffn_out": 3, "norm": 8, "norm_bias": 8, "bias": 21,
        "classifier": 1, "lm_head": 1}),
    "roberta_cls": ("bert", 3, 40, 57, 3, {
        "embedding": 2, "position_embedding": 1, "attn_q": 3, "attn_k": 3, "attn_v": 3,
        "attn_out": 3, "ffn_in": 3, "ffn_out": 3, "norm": 7, "norm_bias": 7, "bias": 20,
        "classifier": 2}),
    "distilbert_cls": ("bert", 3, 40, 56, 3, {
        "embedding": 1, "position_embedding": 1, "attn_q": 3, "attn_k": 3, "attn_v": 3,
        "attn_out": 3, "ffn_in": 3, "ffn_out": 3, "norm": 7, "norm_bias": 7, "bias": 20,
        "classifier": 2}),
    "minilm_l6": ("bert", 6, 384, 104, 6, {
        "embedding": 2, "position_embedding": 1, "attn_q": 6, "attn_k": 6, "attn_v": 6,
        "attn_out": 6, "ffn_in": 6, "ffn_out": 6, "norm": 13, "norm_bias": 13, "bias": 37,
        "classifier": 1, "other": 1}),
    "llama": ("llama", 3, 48, 30, 3, {
        "embedding": 1, "attn_q": 3, "attn_k": 3, "attn_v": 3, "attn_out": 3, "ffn_in": 3,
        "ffn_gate": 3, "ffn_out": 3, "norm": 7, "lm_head": 1}),
    "mistral": ("llama", 3, 48, 30, 3, {
        "embedding": 1, "attn_q": 3, "attn_k": 3, "attn_v": 3, "attn_out": 3, "ffn_in": 3,
        "ffn_gate": 3, "ffn_out": 3, "norm": 7, "lm_head": 1}),
    "qwen2": ("llama", 3, 48, 39, 3, {
        "embedding": 1, "attn_q": 3, "attn_k": 3, "attn_v": 3, "attn_out": 3, "ffn_in": 3,
        "ffn_gate": 3, "ffn_out": 3, "norm": 7, "bias": 9, "lm_head": 1}),
    "smollm2_gguf": ("llama", 30, 576, 272, 30, {
        "embedding": 1, "attn_q": 30, "attn_k": 30, "attn_v": 30, "attn_out": 30, "ffn_in": 30,
        "ffn_gate": 30, "ffn_out": 30, "norm": 61}),
    "vit_hf4": ("vit", 3, 40, 56, 3, {
        "embedding": 1, "position_embedding": 1, "attn_q": 3, "attn_k": 3, "attn_v": 3,
        "attn_out": 3, "ffn_in": 3, "ffn_out": 3, "norm": 7, "norm_bias": 7, "bias": 20,
        "conv": 1, "classifier": 1}),
    "vit_hf5": ("vit", 3, 40, 56, 3, {
        "embedding": 1, "position_embedding": 1, "attn_q": 3, "attn_k": 3, "attn_v": 3,
        "attn_out": 3, "ffn_in": 3, "ffn_out": 3, "norm": 7, "norm_bias": 7, "bias": 20,
        "conv": 1, "classifier": 1}),
    "vit_timm": ("vit", 3, 40, 44, 3, {
        "embedding": 1, "position_embedding": 1, "attn_qkv": 3, "attn_out": 3, "ffn_in": 3,
        "ffn_out": 3, "norm": 7, "norm_bias": 7, "bias": 14, "conv": 1, "classifier": 1}),
    "resnet18": ("convnet", 8, None, 122, 0, {
        "norm": 20, "norm_bias": 20, "bias": 1, "conv": 20, "classifier": 1, "other": 60}),
    "vgg11": ("convnet", 8, None, 22, 0, {"bias": 11, "conv": 8, "classifier": 3}),
    "mobilenet_v2": ("convnet", 19, None, 314, 0, {
        "norm": 52, "norm_bias": 52, "bias": 1, "conv": 52, "classifier": 1, "other": 156}),
    "efficientnet_lite0": ("convnet", 16, None, 296, 0, {
        "norm": 49, "norm_bias": 49, "bias": 1, "conv": 49, "classifier": 1, "other": 147}),
    "keras_legacy_h5": ("convnet", 2, None, 14, 0, {
        "norm": 1, "norm_bias": 1, "bias": 5, "conv": 3, "classifier": 2, "other": 2}),
    "keras3_weights": ("convnet", None, None, 14, 0, {
        "norm": 1, "norm_bias": 1, "bias": 5, "conv": 3, "classifier": 2, "other": 2}),
}  # fmt: skip


def test_public_api_is_pinned() -> None:

    import striate.anatomy as package

    assert sorted(package.__all__) == sorted(
        ["ROLES", "TensorAnatomy", "FFNTriple", "Anatomy", "describe", "anatomy_of"]
    )
    assert ROLES == (
        "embedding", "position_embedding", "attn_q", "attn_k", "attn_v", "attn_qkv", "attn_out",
        "ffn_in", "ffn_gate", "ffn_out", "norm", "norm_bias", "bias", "conv", "classifier",
        "lm_head", "other",
    )  # fmt: skip


def test_every_name_list_is_covered() -> None:
    assert sorted(p.stem for p in NAMES.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("stem", sorted(EXPECTED))
@pytest.mark.parametrize("evidence", [True, False], ids=["with-config", "names-only"])
def test_summary(stem: str, evidence: bool) -> None:
    family, n_layers, hidden, n_tensors, n_ffn, counts = EXPECTED[stem]
    a = described(stem, evidence=evidence)
    assert (a.family, a.n_layers, a.hidden_size) == (family, n_layers, hidden)
    assert (len(a.tensors), len(a.ffn)) == (n_tensors, n_ffn)
    assert a.role_counts() == counts


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_invariants(stem: str) -> None:
    shapes, _, _ = load(stem)
    a = described(stem)
    assert list(a.tensors) == list(shapes)  # every name, in input order, none dropped
    assert list(a.role_counts()) == [r for r in ROLES if r in a.role_counts()]
    for name, t in a.tensors.items():
        assert t.name == name and t.role in ROLES
        if t.residual_axis is not None:
            assert shapes[name][t.residual_axis] == a.hidden_size
        if t.parent is not None:  # a bias has one entry per output of its weight
            parent = a[t.parent]
            assert t.role == "bias" and parent.layer == t.layer
            w = shapes[t.parent]
            outs = w[-1] if parent.layout in ("conv1d", "hwio") else w[0]
            if "depthwise" in t.parent or "dwconv" in t.parent:  # Keras [kh, kw, in, multiplier]
                outs = w[-2] * w[-1]
            assert shapes[name] == (outs,)
    layers = [f.layer for f in a.ffn]
    assert layers == sorted(set(layers))
    for f in a.ffn:
        assert a[f.ffn_in].role == "ffn_in" and a[f.ffn_out].role == "ffn_out"
        assert a[f.ffn_in].layer == a[f.ffn_out].layer == f.layer


def test_gpt2_conv1d_and_nanogpt_linear_have_opposite_residual_axes() -> None:
    hf, nano = described("gpt2_hf"), described("nanogpt")
    for name, conv1d_axis, linear_axis in [
        ("transformer.h.1.attn.c_attn.weight", 0, 1),  # hf (40, 120), nano (120, 40)
        ("transformer.h.1.mlp.c_fc.weight", 0, 1),  # hf (40, 160), nano (160, 40)
        ("transformer.h.1.mlp.c_proj.weight", 1, 0),  # hf (160, 40), nano (40, 160)
        ("transformer.h.1.attn.c_proj.weight", 1, 0),  # square: only the layout decides
    ]:
        assert (hf[name].layout, hf[name].residual_axis) == ("conv1d", conv1d_axis)
        assert (nano[name].layout, nano[name].residual_axis) == ("linear", linear_axis)
    for a in (hf, nano):
        assert a["lm_head.weight"] == TensorAnatomy("lm_head.weight", "lm_head", None, 1, "linear")
        assert a["transformer.wpe.weight"].residual_axis == 1
        assert a["transformer.ln_f.bias"] == TensorAnatomy(
            "transformer.ln_f.bias", "norm_bias", None, 0, "vector"
        )
        # a writer's bias lies along the stream, a reader's in its own space
        assert a["transformer.h.2.mlp.c_proj.bias"].residual_axis == 0
        assert a["transformer.h.2.mlp.c_fc.bias"] == TensorAnatomy(
            "transformer.h.2.mlp.c_fc.bias", "bias", 2, None, "vector",
            parent="transformer.h.2.mlp.c_fc.weight",
        )  # fmt: skip
    assert hf.ffn[2] == FFNTriple(
        2, "transformer.h.2.mlp.c_fc.weight", "transformer.h.2.mlp.c_proj.weight", None,
        "transformer.h.2.mlp.c_fc.bias", "transformer.h.2.mlp.c_proj.bias",
    )  # fmt: skip


def test_gpt2_mask_buffers_are_other_and_keep_their_layer() -> None:
    a = described("gpt2_legacy")
    assert a["h.1.attn.bias"] == TensorAnatomy("h.1.attn.bias", "other", 1, None, None)
    assert a["h.1.attn.masked_bias"] == TensorAnatomy(
        "h.1.attn.masked_bias", "other", 1, None, None
    )
    assert a["h.1.attn.c_attn.weight"].residual_axis == 0


def test_gpt2_prefixes_from_ddp_and_torch_compile() -> None:
    shapes, _, _ = load("nanogpt")
    plain = described("nanogpt")
    for prefix in ("_orig_mod.", "module."):
        a = describe({prefix + n: s for n, s in shapes.items()})
        assert a.family == "gpt2"
        assert [(t.role, t.layer, t.residual_axis) for t in a.tensors.values()] == [
            (t.role, t.layer, t.residual_axis) for t in plain.tensors.values()
        ]


def test_minilm() -> None:
    a = described("minilm_l6")
    assert a["embeddings.word_embeddings.weight"].residual_axis == 1  # (30522, 384)
    assert a["embeddings.token_type_embeddings.weight"].role == "embedding"
    assert a["embeddings.position_embeddings.weight"].role == "position_embedding"
    assert a["embeddings.position_ids"].role == "other"  # int64 buffer (1, 512)
    assert a["embeddings.LayerNorm.weight"] == TensorAnatomy(
        "embeddings.LayerNorm.weight", "norm", None, 0, "vector"
    )
    layer5 = "encoder.layer.5."
    assert a[layer5 + "attention.self.query.weight"].role == "attn_q"
    assert a[layer5 + "attention.output.dense.weight"].role == "attn_out"
    assert a[layer5 + "attention.output.LayerNorm.weight"].role == "norm"
    assert a[layer5 + "intermediate.dense.weight"] == TensorAnatomy(
        layer5 + "intermediate.dense.weight", "ffn_in", 5, 1, "linear"
    )  # (1536, 384)
    assert a[layer5 + "output.dense.weight"].residual_axis == 0  # (384, 1536)
    assert a[layer5 + "intermediate.dense.bias"].residual_axis is None  # 1536 neurons
    assert a[layer5 + "output.dense.bias"].residual_axis == 0
    assert a["pooler.dense.weight"] == TensorAnatomy(
        "pooler.dense.weight", "classifier", None, 1, "linear"
    )
    assert a.ffn[5] == FFNTriple(
        5, layer5 + "intermediate.dense.weight", layer5 + "output.dense.weight", None,
        layer5 + "intermediate.dense.bias", layer5 + "output.dense.bias",
    )  # fmt: skip
    assert [f.layer for f in a.ffn] == [0, 1, 2, 3, 4, 5]


def test_bert_heads() -> None:
    a = described("bert_mlm")
    assert a["cls.predictions.decoder.weight"].role == "lm_head"
    assert a["cls.predictions.decoder.weight"].residual_axis == 1
    assert a["cls.predictions.bias"] == TensorAnatomy(
        "cls.predictions.bias", "bias", None, None, "vector"
    )
    assert a["cls.predictions.transform.LayerNorm.weight"].role == "norm"
    d = described("distilbert_cls")
    assert d["distilbert.transformer.layer.2.ffn.lin1.weight"].residual_axis == 1  # (72, 40)
    assert d["distilbert.transformer.layer.2.attention.out_lin.weight"].role == "attn_out"
    assert d["distilbert.transformer.layer.2.output_layer_norm.bias"].role == "norm_bias"


@pytest.mark.parametrize("stem", ["llama", "mistral", "qwen2"])
def test_llama_family(stem: str) -> None:
    a = described(stem)
    p = "model.layers.2."
    assert a[p + "self_attn.k_proj.weight"] == TensorAnatomy(
        p + "self_attn.k_proj.weight", "attn_k", 2, 1, "linear"
    )  # (24, 48): 2 kv heads of 12
    assert a[p + "self_attn.o_proj.weight"].residual_axis == 0
    assert a[p + "mlp.down_proj.weight"].residual_axis == 0  # (48, 80)
    assert a[p + "post_attention_layernorm.weight"].role == "norm"
    assert a["model.norm.weight"] == TensorAnatomy("model.norm.weight", "norm", None, 0, "vector")
    assert a["model.embed_tokens.weight"].residual_axis == 1
    assert a.ffn[2] == FFNTriple(
        2, p + "mlp.up_proj.weight", p + "mlp.down_proj.weight", p + "mlp.gate_proj.weight"
    )


def test_qwen2_qkv_biases() -> None:
    a = described("qwen2")
    name = "model.layers.0.self_attn.k_proj.bias"
    assert a[name] == TensorAnatomy(
        name, "bias", 0, None, "vector", parent="model.layers.0.self_attn.k_proj.weight"
    )


def test_mixture_of_experts_roles_without_ffn_triples() -> None:
    shapes: Shapes = {"model.embed_tokens.weight": (101, 48)}
    for layer in range(2):
        p = f"model.layers.{layer}."
        shapes[p + "self_attn.q_proj.weight"] = (48, 48)
        shapes[p + "block_sparse_moe.gate.weight"] = (3, 48)  # router over 3 experts
        for e in range(3):
            for w, shape in (("w1", (80, 48)), ("w2", (48, 80)), ("w3", (80, 48))):
                shapes[p + f"block_sparse_moe.experts.{e}.{w}.weight"] = shape
    a = describe(shapes, {"model_type": "mixtral"})
    assert (a.family, a.n_layers, a.hidden_size, a.ffn) == ("llama", 2, 48, [])
    assert a.role_counts() == {
        "embedding": 1, "attn_q": 2, "ffn_in": 6, "ffn_gate": 6, "ffn_out": 6, "other": 2,
    }  # fmt: skip
    w2 = "model.layers.1.block_sparse_moe.experts.2.w2.weight"
    assert a[w2] == TensorAnatomy(w2, "ffn_out", 1, 0, "linear")
    gguf = describe(
        {
            "blk.0.ffn_gate_inp.weight": (3, 48),
            "blk.0.ffn_up_exps.weight": (3, 80, 48),  # experts stacked: no 2-D layout
            "blk.0.ffn_down_exps.weight": (3, 48, 80),
            "blk.0.ffn_up_shexp.weight": (80, 48),
            "blk.0.ffn_down_shexp.weight": (48, 80),
        }
    )
    assert [t.role for t in gguf.tensors.values()] == ["other"] + ["ffn_in", "ffn_out"] * 2
    assert gguf["blk.0.ffn_up_exps.weight"].layout is None
    assert gguf.ffn == []


def test_smollm2_gguf() -> None:
    a = described("smollm2_gguf")
    assert a["token_embd.weight"] == TensorAnatomy(
        "token_embd.weight", "embedding", None, 1, "embedding"
    )
    assert a["blk.29.attn_k.weight"] == TensorAnatomy(
        "blk.29.attn_k.weight", "attn_k", 29, 1, "linear"
    )
    assert a["blk.29.attn_output.weight"].residual_axis == 0
    assert a["blk.29.ffn_down.weight"].residual_axis == 0  # (576, 1536)
    assert a["blk.29.ffn_up.weight"].residual_axis == 1  # (1536, 576)
    assert a["output_norm.weight"].layer is None
    assert a.ffn[29] == FFNTriple(
        29, "blk.29.ffn_up.weight", "blk.29.ffn_down.weight", "blk.29.ffn_gate.weight"
    )


def test_gguf_metadata_gives_width_without_embedding() -> None:
    shapes, _, metadata = load("smollm2_gguf")
    del shapes["token_embd.weight"]
    assert metadata is not None
    assert describe(shapes, None, metadata).hidden_size == 576
    assert describe(shapes).hidden_size == 576  # from the norm gains
    no_norms = {n: s for n, s in shapes.items() if "norm" not in n}
    assert describe(no_norms).hidden_size is None
    assert describe(no_norms)["blk.0.ffn_down.weight"].residual_axis is None
    as_reader_gives = {
        **metadata,
        "general.architecture": b"llama",
        "llama.embedding_length": np.uint32(576),
    }
    assert describe(shapes, None, as_reader_gives).hidden_size == 576


def test_gguf_unrecognised_and_rope_tensors() -> None:
    a = describe(
        {"rope_freqs.weight": (32,), "blk.0.attn_q.weight": (64, 64), "output.weight": (10, 64)}
    )
    assert a.family == "llama"
    assert a["rope_freqs.weight"].role == "other"
    assert a["output.weight"].role == "lm_head"


@pytest.mark.parametrize("stem", ["vit_hf4", "vit_hf5", "vit_timm"])
def test_vit(stem: str) -> None:
    a = described(stem)
    cls, pos, patch = {
        "vit_hf4": ("vit.embeddings.cls_token", "vit.embeddings.position_embeddings",
                    "vit.embeddings.patch_embeddings.projection"),
        "vit_hf5": ("vit.embeddings.cls_token", "vit.embeddings.position_embeddings",
                    "vit.embeddings.patch_embeddings.projection"),
        "vit_timm": ("cls_token", "pos_embed", "patch_embed.proj"),
    }[stem]  # fmt: skip
    assert a[cls] == TensorAnatomy(cls, "embedding", None, 2, "embedding")  # (1, 1, 40)
    assert a[pos] == TensorAnatomy(pos, "position_embedding", None, 2, "embedding")  # (1, 17, 40)
    assert a[patch + ".weight"] == TensorAnatomy(patch + ".weight", "conv", None, 0, "oihw")
    assert a[patch + ".bias"].residual_axis == 0
    assert a[patch + ".bias"].parent == patch + ".weight"
    first = a.ffn[0]
    assert (a[first.ffn_in].residual_axis, a[first.ffn_out].residual_axis) == (1, 0)
    assert first.in_bias is not None and first.out_bias is not None


def test_vit_timm_names() -> None:
    a = described("vit_timm")
    assert a["blocks.2.attn.qkv.weight"] == TensorAnatomy(
        "blocks.2.attn.qkv.weight", "attn_qkv", 2, 1, "linear"
    )
    assert a["blocks.2.attn.proj.weight"].role == "attn_out"
    assert a["blocks.2.norm2.weight"].role == "norm"
    assert a["norm.weight"].layer is None
    assert a["head.weight"].role == "classifier"


def test_resnet18() -> None:
    a = described("resnet18")
    assert a["conv1.weight"] == TensorAnatomy("conv1.weight", "conv", None, None, "oihw")
    assert a["bn1.running_var"].role == "other"
    assert a["bn1.num_batches_tracked"].layout is None
    assert a["layer1.0.conv1.weight"].layer == 0
    assert a["layer2.0.downsample.0.weight"] == TensorAnatomy(
        "layer2.0.downsample.0.weight", "conv", 2, None, "oihw"
    )
    assert a["layer2.0.downsample.1.bias"].role == "norm_bias"
    assert a["layer4.1.bn2.weight"].layer == 7
    assert a["fc.weight"] == TensorAnatomy("fc.weight", "classifier", None, None, "linear")
    assert a["fc.bias"].parent == "fc.weight"
    assert all(t.residual_axis is None for t in a.tensors.values())


def test_vgg11_layers_count_convolutions() -> None:
    a = described("vgg11")
    convs = [n for n, t in a.tensors.items() if t.role == "conv"]
    assert [a[n].layer for n in convs] == list(range(8))  # features.0, 3, 6, 8, 11, 13, 16, 18
    assert a["features.3.bias"].layer == 1
    assert a["classifier.6.weight"].role == "classifier"
    assert a["classifier.6.weight"].layer is None


def test_efficientnet_lite0() -> None:
    a = described("efficientnet_lite0")
    assert a["_conv_stem.weight"] == TensorAnatomy("_conv_stem.weight", "conv", None, None, "oihw")
    assert a["_bn0.weight"].role == "norm"
    assert a["_blocks.0._depthwise_conv.weight"].layer == 0  # (32, 1, 3, 3)
    assert a["_blocks.15._project_conv.weight"].layer == 15
    assert a["_blocks.15._bn2.bias"].role == "norm_bias"
    assert a["_conv_head.weight"].layer is None
    assert a["_fc.weight"].role == "classifier"


def test_mobilenet_v2() -> None:
    a = described("mobilenet_v2")
    assert a["features.1.conv.1.weight"].role == "conv"
    assert a["features.1.conv.2.weight"].role == "norm"  # BatchNorm known by its running stats
    assert a["features.18.0.weight"].layer == 18
    assert a["classifier.1.weight"].role == "classifier"


def test_keras_files() -> None:
    legacy = described("keras_legacy_h5")
    kernel = "model_weights/block2_conv1/sequential/block2_conv1/kernel"
    assert legacy[kernel] == TensorAnatomy(kernel, "conv", 1, None, "hwio")
    assert legacy["model_weights/block1_bn/sequential/block1_bn/gamma"].role == "norm"
    assert legacy["model_weights/block1_bn/sequential/block1_bn/moving_mean"].role == "other"
    assert legacy["model_weights/fc1/sequential/fc1/kernel"].layout == "conv1d"  # Dense [in, out]
    k3 = described("keras3_weights")
    assert [k3[f"layers/batch_normalization/vars/{i}"].role for i in range(4)] == [
        "norm", "norm_bias", "other", "other",
    ]  # fmt: skip
    assert k3["layers/depthwise_conv2d/vars/0"].layout == "hwio"
    assert k3["layers/dense_1/vars/1"].parent == "layers/dense_1/vars/0"


def test_keras2_and_nested_keras3_names() -> None:
    a = describe(
        {
            "model_weights/conv2d_5/conv2d_5/kernel:0": (3, 3, 16, 32),
            "model_weights/conv2d_5/conv2d_5/bias:0": (32,),
            "model_weights/batch_normalization/batch_normalization/gamma:0": (32,),
            "model_weights/batch_normalization/batch_normalization/moving_variance:0": (32,),
            "block5/layers/conv2d_2/vars/0": (3, 3, 32, 8),
            "model_weights/dense/dense/kernel:0": (8, 10),
        }
    )
    assert a.family == "convnet"
    assert a["model_weights/conv2d_5/conv2d_5/kernel:0"].layout == "hwio"
    assert (
        a["model_weights/conv2d_5/conv2d_5/bias:0"].parent
        == "model_weights/conv2d_5/conv2d_5/kernel:0"
    )
    assert a["model_weights/batch_normalization/batch_normalization/gamma:0"].role == "norm"
    assert (
        a["model_weights/batch_normalization/batch_normalization/moving_variance:0"].role == "other"
    )
    assert a["block5/layers/conv2d_2/vars/0"] == TensorAnatomy(
        "block5/layers/conv2d_2/vars/0", "conv", 0, None, "hwio"
    )
    assert a["model_weights/dense/dense/kernel:0"].role == "classifier"


def test_planted_unknown_tensors_are_other_never_dropped() -> None:
    shapes, config, _ = load("gpt2_hf")
    planted = dict(shapes)
    planted["transformer.h.1.adapter.weight"] = (7, 40)
    planted["probe.weight"] = (3, 5)
    a = describe(planted, config)
    assert (a.family, len(a.tensors)) == ("gpt2", len(shapes) + 2)
    assert list(a.tensors) == list(planted)
    assert a["transformer.h.1.adapter.weight"] == TensorAnatomy(
        "transformer.h.1.adapter.weight", "other", 1, None, None
    )
    assert a["probe.weight"] == TensorAnatomy("probe.weight", "other", None, None, None)
    assert a.role_counts()["other"] == 2


def test_wrong_hidden_size_gives_no_residual_axes() -> None:
    shapes, config, _ = load("bert_mlm")
    a = describe(shapes, {**(config or {}), "hidden_size": 41})
    assert a.hidden_size == 41
    assert all(t.residual_axis is None for t in a.tensors.values())


def test_config_names_the_family_when_names_are_ambiguous() -> None:
    # a ViT (transformers 4 names) whose per-layer tensors BERT's table half knows
    shapes, _, _ = load("vit_hf4")
    assert describe(shapes, {"model_type": "bert"}).family == "vit"
    assert describe(shapes, {"architectures": ["ViTForImageClassification"]}).family == "vit"


def test_generic_fallback() -> None:
    shapes = {
        "stem.weight": (16, 3, 3, 3),
        "stem.bias": (16,),
        "blocks.0.mix.weight": (16, 16),
        "blocks.0.ln.weight": (16,),
        "blocks.0.ln.bias": (16,),
        "blocks.1.mix.weight": (16, 16),
        "blocks.1.ln.weight": (16,),
        "final_norm.scale": (16,),
    }
    a = describe(shapes, {"d_model": 16})
    assert (a.family, a.n_layers, a.hidden_size, a.ffn) == ("generic", 2, 16, [])
    assert a["stem.weight"] == TensorAnatomy("stem.weight", "conv", None, None, "oihw")
    assert a["stem.bias"] == TensorAnatomy("stem.bias", "bias", None, None, "vector", "stem.weight")
    assert a["blocks.1.ln.weight"] == TensorAnatomy("blocks.1.ln.weight", "norm", 1, 0, "vector")
    assert a["blocks.0.ln.bias"].role == "norm_bias"
    assert a["blocks.0.mix.weight"] == TensorAnatomy("blocks.0.mix.weight", "other", 0, None, None)
    assert a["final_norm.scale"].residual_axis == 0
    assert describe(shapes).hidden_size is None


def test_empty_model() -> None:
    a = describe({}, {"num_hidden_layers": 4})
    assert (a.family, a.n_layers, a.hidden_size, a.tensors, a.ffn) == ("generic", 4, None, {}, [])
    assert a.role_counts() == {}


def test_records_reject_unknown_roles() -> None:
    with pytest.raises(ValueError, match="unknown role 'ffn'"):
        TensorAnatomy("x", "ffn", None, None, None)
    with pytest.raises(ValueError, match="unknown role"):
        Rule("x", "mlp")
    with pytest.raises(KeyError, match="no tensor 'nope'"):
        described("llama")["nope"]


class _Headers(Checkpoint):
    """A checkpoint of headers only, enough for `anatomy`."""

    format = "test"

    def __init__(self, path: Path, shapes: Shapes, metadata: dict[str, Any]) -> None:
        super().__init__(path)
        self._shapes = shapes
        self.metadata = metadata

    def names(self) -> list[str]:
        return list(self._shapes)

    def info(self, name: str) -> TensorInfo:
        return TensorInfo(name, self._shapes[name], "float32", 0, self.path)

    def _read(self, name: str) -> npt.NDArray[Any]:
        return np.zeros(self._shapes[name], np.float32)


def test_anatomy_of_a_checkpoint_reads_config_beside_it(tmp_path: Path) -> None:
    shapes, config, _ = load("minilm_l6")
    (tmp_path / "config.json").write_text(json.dumps({**(config or {}), "hidden_size": 41}))
    a = anatomy_of(_Headers(tmp_path / "model.safetensors", shapes, {}))
    assert (a.family, a.hidden_size) == ("bert", 41)  # the config, not the shapes, was used
    gguf_shapes, _, metadata = load("smollm2_gguf")
    del gguf_shapes["token_embd.weight"]
    b = anatomy_of(_Headers(tmp_path / "sub" / "m.gguf", gguf_shapes, metadata or {}))
    assert (b.family, b.n_layers, b.hidden_size) == ("llama", 30, 576)


@pytest.mark.sample
@pytest.mark.parametrize(
    ("fixture", "stem"),
    [("minilm", "minilm_l6"), ("smollm2", "smollm2_gguf"), ("efficientnet", "efficientnet_lite0")],
)
def test_real_readers_give_the_dumped_anatomy(
    fixture: str, stem: str, request: pytest.FixtureRequest
) -> None:
    # the name lists were dumped with the format libraries directly; striate's own readers
    # (names, PyTorch-order shapes, config.json, GGUF metadata) must lead to the same anatomy
    ckpt: Checkpoint = request.getfixturevalue(fixture)
    assert anatomy_of(ckpt) == described(stem)


def test_shard_without_embeddings_takes_width_from_norms() -> None:
    shapes, _, _ = load("qwen2")
    shard = {n: s for n, s in shapes.items() if "embed_tokens" not in n and "lm_head" not in n}
    for layer in range(3):  # Qwen3-style per-head norms: as many as the hidden-wide ones
        shard[f"model.layers.{layer}.self_attn.q_norm.weight"] = (12,)
        shard[f"model.layers.{layer}.self_attn.k_norm.weight"] = (12,)
    shard.pop("model.norm.weight")
    a = describe(shard)
    assert (a.family, a.hidden_size) == ("llama", 48)
    assert a["model.layers.0.self_attn.q_norm.weight"].residual_axis is None
    assert a["model.layers.0.input_layernorm.weight"].residual_axis == 0
