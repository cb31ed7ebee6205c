"""norm_links: which matrices each norm feeds, and the hypergeometric overlap test, against
hand-built tables (roles from the real anatomy) and closed forms computed with math.comb."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import pandas as pd
import pytest

from striate.analyses.norm_links import COLUMNS, norm_links
from striate.anatomy import describe
from striate.errors import StriateError
from striate.report.norm_links_html import norm_links_section

Shape = tuple[int, ...]


def tensors_of(
    shapes: dict[str, Shape], config: dict[str, object] | None = None
) -> tuple[pd.DataFrame, str, int | None]:
    """A tensors.parquet-like table, roles and layers from the anatomy of these names."""
    a = describe(shapes, config)
    rows = [
        {"name": t.name, "role": t.role, "layer": t.layer, "residual_axis": t.residual_axis,
         "shape": list(shapes[t.name])}
        for t in a.tensors.values()
    ]  # fmt: skip
    table = pd.DataFrame(rows).astype({"layer": "Int64", "residual_axis": "Int64"})
    return table, a.family, a.hidden_size


def findings_of(*rows: tuple[str, str, int | None]) -> pd.DataFrame:
    """(kind, tensor, residual_dim) rows as a findings.parquet-like table."""
    columns = ["kind", "tensor", "residual_dim", "layer", "role", "score"]
    table = pd.DataFrame([(k, t, d, None, "", 1.0) for k, t, d in rows], columns=columns)
    return table.astype({"residual_dim": "Int64", "layer": "Int64"})


def p_at_least(k: int, d: int, big_k: int, n: int) -> float:
    """P(X >= k), X ~ Hypergeometric(population d, K successes, n draws), exact in fractions."""
    total = sum(
        Fraction(comb(big_k, i) * comb(d - big_k, n - i)) for i in range(k, min(n, big_k) + 1)
    )
    return float(total / comb(d, n))


def by_norm(links: pd.DataFrame) -> dict[str, dict[str, object]]:
    return {row["norm"]: row for row in links.to_dict("records")}


def blocks(prefix: str, n: int, block: list[tuple[str, tuple[int, ...]]]) -> dict[str, Shape]:
    """`block`'s (module.leaf, shape) pairs in each of n blocks `prefix.i`."""
    return {f"{prefix}.{i}.{name}": shape for i in range(n) for name, shape in block}


GPT2_BLOCK = [
    ("ln_1.weight", (768,)), ("ln_1.bias", (768,)), ("attn.c_attn.weight", (768, 2304)),
    ("attn.c_attn.bias", (2304,)), ("attn.c_proj.weight", (768, 768)), ("ln_2.weight", (768,)),
    ("ln_2.bias", (768,)), ("mlp.c_fc.weight", (768, 3072)), ("mlp.c_proj.weight", (3072, 768)),
]  # fmt: skip


def gpt2(lm_head: bool) -> tuple[pd.DataFrame, str, int | None]:
    shapes = {"transformer.wte.weight": (1000, 768), "transformer.wpe.weight": (64, 768)}
    shapes |= blocks("transformer.h", 2, GPT2_BLOCK)
    shapes |= {"transformer.ln_f.weight": (768,), "transformer.ln_f.bias": (768,)}
    if lm_head:
        shapes["lm_head.weight"] = (1000, 768)
    return tensors_of(shapes)


H0 = "transformer.h.0"


def test_gpt2_fed_sets_and_counts_against_closed_form() -> None:
    tensors, family, hidden = gpt2(lm_head=False)
    assert (family, hidden) == ("gpt2", 768)
    findings = findings_of(
        *[("norm_outlier", f"{H0}.ln_1.weight", d) for d in (1, 5, 9, 100)],
        *[("line", f"{H0}.attn.c_attn.weight", d) for d in (5, 9, 300, 301, 302, 400)],
        ("line", f"{H0}.attn.c_attn.weight", 5),  # a second line at 5 counts once
        ("line", f"{H0}.attn.c_attn.weight", None),  # a neuron line pins no residual dim
        ("hotspot", f"{H0}.attn.c_attn.weight", 100),  # not a line
        ("line", f"{H0}.attn.c_proj.weight", 1),  # a writer: not fed by ln_1
        ("line", "transformer.h.1.attn.c_attn.weight", 1),  # fed by h.1's ln_1, not h.0's
        *[("norm_outlier", f"{H0}.ln_1.bias", d) for d in (2, 3)],  # avoids every line
    )
    links = by_norm(norm_links(findings, tensors, family, hidden))
    assert {k: v["fed"] for k, v in links.items()} == {
        **{f"transformer.h.{i}.ln_1.{leaf}": [f"transformer.h.{i}.attn.c_attn.weight"]
           for i in range(2) for leaf in ("weight", "bias")},
        **{f"transformer.h.{i}.ln_2.{leaf}": [f"transformer.h.{i}.mlp.c_fc.weight"]
           for i in range(2) for leaf in ("weight", "bias")},
        "transformer.ln_f.weight": ["transformer.wte.weight"],  # tied: no lm_head
        "transformer.ln_f.bias": ["transformer.wte.weight"],
    }  # fmt: skip
    gain = links[f"{H0}.ln_1.weight"]
    assert (gain["kind"], gain["layer"]) == ("gain", 0)
    assert (gain["n_outlier_dims"], gain["n_line_dims"], gain["overlap"]) == (4, 6, 2)
    assert gain["overlap_dims"] == [5, 9]
    assert gain["p_value"] == pytest.approx(p_at_least(2, 768, 6, 4), rel=1e-12)
    assert gain["expected_overlap"] == pytest.approx(4 * 6 / 768, rel=1e-15)
    assert gain["enrichment"] == pytest.approx(2 / (4 * 6 / 768), rel=1e-12)
    assert gain["note"] == ""
    bias = links[f"{H0}.ln_1.bias"]  # (c): outliers away from the lines
    assert (bias["kind"], bias["n_outlier_dims"], bias["n_line_dims"]) == ("bias", 2, 6)
    assert (bias["overlap"], bias["overlap_dims"], bias["enrichment"]) == (0, [], 0.0)
    assert bias["p_value"] == pytest.approx(1.0, abs=1e-12)
    empty = links[f"{H0}.ln_2.weight"]
    assert (empty["n_outlier_dims"], empty["p_value"]) == (0, 1.0)
    assert empty["note"] == "no outlier dims; no line dims: p = 1"
    assert pd.isna(empty["enrichment"])


def test_gpt2_final_norm_feeds_lm_head_when_there_is_one() -> None:
    tensors, family, hidden = gpt2(lm_head=True)
    links = by_norm(norm_links(findings_of(), tensors, family, hidden))
    assert links["transformer.ln_f.weight"]["fed"] == ["lm_head.weight"]


LLAMA_BLOCK = [
    ("input_layernorm.weight", (768,)), ("self_attn.q_proj.weight", (768, 768)),
    ("self_attn.k_proj.weight", (256, 768)), ("self_attn.v_proj.weight", (256, 768)),
    ("self_attn.o_proj.weight", (768, 768)), ("post_attention_layernorm.weight", (768,)),
    ("mlp.gate_proj.weight", (2048, 768)), ("mlp.up_proj.weight", (2048, 768)),
    ("mlp.down_proj.weight", (768, 2048)),
]  # fmt: skip
GEMMA_NORMS = [("pre_feedforward_layernorm.weight", (768,)),
               ("post_feedforward_layernorm.weight", (768,))]  # fmt: skip


def llama(gemma: bool = False) -> dict[str, Shape]:
    shapes = {"model.embed_tokens.weight": (1000, 768)}
    shapes |= blocks("model.layers", 2, LLAMA_BLOCK + (GEMMA_NORMS if gemma else []))
    return shapes | {"model.norm.weight": (768,), "lm_head.weight": (1000, 768)}


def test_llama_perfect_overlap_of_three_among_768() -> None:
    tensors, family, hidden = tensors_of(llama(), {"model_type": "llama", "hidden_size": 768})
    attn = "model.layers.0.self_attn"
    findings = findings_of(
        *[("norm_outlier", "model.layers.0.input_layernorm.weight", d) for d in (10, 20, 30)],
        *[("line", f"{attn}.q_proj.weight", d) for d in (10, 20)],
        *[("line", f"{attn}.k_proj.weight", d) for d in (30, 40)],
        ("line", f"{attn}.v_proj.weight", 50),
        ("line", f"{attn}.o_proj.weight", 60),  # writer: not counted
    )
    links = norm_links(findings, tensors, family, hidden)
    assert list(links.columns) == COLUMNS
    rows = by_norm(links)
    assert {k: v["fed"] for k, v in rows.items()} == {
        **{f"model.layers.{i}.input_layernorm.weight":
           [f"model.layers.{i}.self_attn.{x}_proj.weight" for x in "qkv"] for i in range(2)},
        **{f"model.layers.{i}.post_attention_layernorm.weight":
           [f"model.layers.{i}.mlp.{x}_proj.weight" for x in ("gate", "up")] for i in range(2)},
        "model.norm.weight": ["lm_head.weight"],
    }  # fmt: skip
    top = links.iloc[0]  # the smallest p comes first
    assert top["norm"] == "model.layers.0.input_layernorm.weight"
    assert (top["n_outlier_dims"], top["n_line_dims"], top["overlap"]) == (3, 5, 3)
    assert top["overlap_dims"] == [10, 20, 30]
    closed_form = comb(5, 3) * comb(763, 0) / comb(768, 3)
    assert closed_form == 10 / 75_202_816  # C(768, 3) = 768 * 767 * 766 / 6
    assert top["p_value"] == pytest.approx(closed_form, rel=1e-12)
    assert top["enrichment"] == pytest.approx(3 / (3 * 5 / 768), rel=1e-12)
    assert list(links["p_value"]) == sorted(links["p_value"])
    ties = links[links["p_value"] == 1.0]["norm"]
    assert list(ties) == sorted(ties)


GGUF_BLOCK = [
    ("attn_norm.weight", (576,)), ("attn_q.weight", (576, 576)), ("attn_k.weight", (192, 576)),
    ("attn_v.weight", (192, 576)), ("attn_output.weight", (576, 576)),
    ("ffn_norm.weight", (576,)), ("ffn_gate.weight", (1536, 576)),
    ("ffn_up.weight", (1536, 576)), ("ffn_down.weight", (576, 1536)),
]  # fmt: skip


def test_gguf_names_and_a_tied_output() -> None:
    shapes = {"token_embd.weight": (1000, 576)} | blocks("blk", 2, GGUF_BLOCK)
    shapes["output_norm.weight"] = (576,)
    tensors, family, hidden = tensors_of(shapes)
    assert (family, hidden) == ("llama", 576)
    links = norm_links(findings_of(), tensors, family, hidden)
    fed = {k: v["fed"] for k, v in by_norm(links).items()}
    assert fed == {
        **{f"blk.{i}.attn_norm.weight": [f"blk.{i}.attn_{x}.weight" for x in "qkv"]
           for i in range(2)},
        **{f"blk.{i}.ffn_norm.weight": [f"blk.{i}.ffn_{x}.weight" for x in ("gate", "up")]
           for i in range(2)},
        "output_norm.weight": ["token_embd.weight"],
    }  # fmt: skip


def test_gemma_post_attention_norm_is_a_post_norm() -> None:
    shapes = llama(gemma=True)
    tensors, family, hidden = tensors_of(shapes, {"model_type": "gemma2", "hidden_size": 768})
    links = norm_links(findings_of(), tensors, family, hidden)
    fed = {k: v["fed"] for k, v in by_norm(links).items()}
    assert "model.layers.0.post_attention_layernorm.weight" not in fed
    assert "model.layers.0.post_feedforward_layernorm.weight" not in fed
    assert fed["model.layers.0.pre_feedforward_layernorm.weight"] == [
        "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight"]  # fmt: skip


BERT_BLOCK = [
    *((f"attention.self.{x}.weight", (384, 384)) for x in ("query", "key", "value")),
    ("attention.output.dense.weight", (384, 384)), ("attention.output.LayerNorm.weight", (384,)),
    ("attention.output.LayerNorm.bias", (384,)), ("intermediate.dense.weight", (1536, 384)),
    ("output.dense.weight", (384, 1536)), ("output.LayerNorm.weight", (384,)),
    ("output.LayerNorm.bias", (384,)),
]  # fmt: skip


def bert(pooler: bool) -> dict[str, Shape]:
    shapes = {
        "bert.embeddings.word_embeddings.weight": (1000, 384),
        "bert.embeddings.position_embeddings.weight": (512, 384),
        "bert.embeddings.LayerNorm.weight": (384,),
        "bert.embeddings.LayerNorm.bias": (384,),
    }
    shapes |= blocks("bert.encoder.layer", 2, BERT_BLOCK)
    return shapes | ({"bert.pooler.dense.weight": (384, 384)} if pooler else {})


def qkv(i: int) -> list[str]:
    return [f"bert.encoder.layer.{i}.attention.self.{x}.weight" for x in ("query", "key", "value")]


def test_bert_post_ln_wiring_and_a_partial_overlap() -> None:
    tensors, family, hidden = tensors_of(bert(pooler=True))
    assert (family, hidden) == ("bert", 384)
    norm = "bert.encoder.layer.0.output.LayerNorm.weight"
    findings = findings_of(
        *[("norm_outlier", norm, d) for d in (3, 7, 11, 50, 60, 383)],
        *[("line", qkv(1)[0], d) for d in (3, 7, 100)],
        *[("line", qkv(1)[2], d) for d in (7, 200, 201, 202, 203)],
        ("line", qkv(0)[0], 11),  # layer 0 reads the embeddings' norm, not this one
    )
    links = by_norm(norm_links(findings, tensors, family, hidden))
    layer = "bert.encoder.layer"
    expected = {"bert.embeddings.LayerNorm": qkv(0),
                f"{layer}.0.attention.output.LayerNorm": [f"{layer}.0.intermediate.dense.weight"],
                f"{layer}.0.output.LayerNorm": qkv(1),
                f"{layer}.1.attention.output.LayerNorm": [f"{layer}.1.intermediate.dense.weight"],
                f"{layer}.1.output.LayerNorm": ["bert.pooler.dense.weight"]}  # fmt: skip
    assert {k: v["fed"] for k, v in links.items()} == {
        f"{m}.{leaf}": fed for m, fed in expected.items() for leaf in ("weight", "bias")
    }
    row = links[norm]
    assert (row["n_outlier_dims"], row["n_line_dims"], row["overlap"]) == (6, 7, 2)
    assert row["overlap_dims"] == [3, 7]
    assert row["p_value"] == pytest.approx(p_at_least(2, 384, 7, 6), rel=1e-12)
    assert row["expected_overlap"] == pytest.approx(6 * 7 / 384, rel=1e-15)


def test_bert_without_pooler_last_norm_feeds_nothing() -> None:
    tensors, family, hidden = tensors_of(bert(pooler=False))
    links = norm_links(findings_of(), tensors, family, hidden)
    assert len(links) == 8
    assert not links["norm"].str.startswith("bert.encoder.layer.1.output.LayerNorm").any()


VIT_TIMM_BLOCK = [
    ("norm1.weight", (192,)), ("norm1.bias", (192,)), ("attn.qkv.weight", (576, 192)),
    ("attn.proj.weight", (192, 192)), ("norm2.weight", (192,)), ("norm2.bias", (192,)),
    ("mlp.fc1.weight", (768, 192)), ("mlp.fc2.weight", (192, 768)),
]  # fmt: skip


def test_vit_timm_wiring() -> None:
    shapes = {"cls_token": (1, 1, 192), "pos_embed": (1, 197, 192)}
    shapes |= {"patch_embed.proj.weight": (192, 3, 16, 16)} | blocks("blocks", 2, VIT_TIMM_BLOCK)
    shapes |= {"norm.weight": (192,), "norm.bias": (192,), "head.weight": (1000, 192)}
    tensors, family, hidden = tensors_of(shapes)
    assert (family, hidden) == ("vit", 192)
    links = norm_links(findings_of(), tensors, family, hidden)
    fed = {k: v["fed"] for k, v in by_norm(links).items()}
    assert fed == {
        **{f"blocks.{i}.norm1.{leaf}": [f"blocks.{i}.attn.qkv.weight"]
           for i in range(2) for leaf in ("weight", "bias")},
        **{f"blocks.{i}.norm2.{leaf}": [f"blocks.{i}.mlp.fc1.weight"]
           for i in range(2) for leaf in ("weight", "bias")},
        "norm.weight": ["head.weight"], "norm.bias": ["head.weight"],
    }  # fmt: skip


def test_refusals() -> None:
    tensors, family, _ = gpt2(lm_head=False)
    empty = norm_links(findings_of(), tensors, family, None)
    assert empty.empty and list(empty.columns) == COLUMNS
    assert "hidden size is unknown" in empty.attrs["reason"]
    outside = findings_of(("norm_outlier", f"{H0}.ln_1.weight", 768))
    with pytest.raises(StriateError, match="residual dim 768 is not below the hidden size 768"):
        norm_links(outside, tensors, family, 768)


def test_section_escapes_names() -> None:
    evil = '<img src=x onerror="alert(1)">'
    links = pd.DataFrame([{
        "norm": f"h.0.{evil}.weight", "kind": "gain", "layer": 0, "fed": [f"{evil}&c_attn"],
        "n_outlier_dims": 3, "n_line_dims": 5, "overlap": 3, "overlap_dims": [1, 2, 3],
        "expected_overlap": 0.02, "enrichment": 150.0, "p_value": 1.3e-7, "note": "",
    }], columns=COLUMNS)  # fmt: skip
    html = norm_links_section(links)
    assert "<img" not in html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert "&amp;c_attn" in html
    assert (
        "hypergeometric" in html.lower()
        and "1 of the 1 norm vectors" in html
        and "p &lt; 0.05" in html
    )
    tensors, family, hidden = gpt2(lm_head=False)
    untested = norm_links_section(norm_links(findings_of(), tensors, family, hidden))
    assert "None of the 10 norm vectors could be tested" in untested
    note = norm_links_section(norm_links(findings_of(), tensors, family, None))
    assert note.startswith('<p class="note">') and note.count("<p") == 1


def test_minilm_rows_follow_bert_wiring() -> None:
    import striate
    from striate.samples import sample_path
    from striate.scan import ImagesConfig, ScanConfig

    try:
        path = sample_path("minilm", quiet=True)
    except Exception as exc:  # no network, no cache
        pytest.skip(f"sample minilm unavailable: {exc}")
    run = striate.scan(path, config=ScanConfig(images=ImagesConfig(enabled=False)))
    family, hidden = run.manifest["family"], run.manifest["hidden_size"]
    assert (family, hidden) == ("bert", 384)
    links = norm_links(run.findings, run.tensors, family, hidden)
    norms = run.tensors[run.tensors["role"].isin(("norm", "norm_bias"))]["name"]
    assert sorted(links["norm"]) == sorted(norms) and len(links) == 26
    fed = {k: sorted(v["fed"]) for k, v in by_norm(links).items()}
    layer = "encoder.layer"
    for leaf in ("weight", "bias"):
        assert fed[f"embeddings.LayerNorm.{leaf}"] == sorted(
            q.removeprefix("bert.") for q in qkv(0)
        )
        assert fed[f"{layer}.5.output.LayerNorm.{leaf}"] == ["pooler.dense.weight"]
        for i in range(6):
            assert fed[f"{layer}.{i}.attention.output.LayerNorm.{leaf}"] == [
                f"{layer}.{i}.intermediate.dense.weight"]  # fmt: skip
        for i in range(5):
            assert fed[f"{layer}.{i}.output.LayerNorm.{leaf}"] == sorted(
                q.removeprefix("bert.") for q in qkv(i + 1))  # fmt: skip
    # n and K counted again here, and p against the closed form
    pinned = run.findings[run.findings["residual_dim"].notna()]
    for row in links.to_dict("records"):
        outliers = pinned[(pinned["kind"] == "norm_outlier") & (pinned["tensor"] == row["norm"])]
        lines = pinned[(pinned["kind"] == "line") & pinned["tensor"].isin(row["fed"])]
        assert row["n_outlier_dims"] == outliers["residual_dim"].nunique()
        assert row["n_line_dims"] == lines["residual_dim"].nunique()
        k, big_k, n = row["overlap"], row["n_line_dims"], row["n_outlier_dims"]
        assert row["p_value"] == pytest.approx(p_at_least(k, 384, big_k, n), rel=1e-12)
