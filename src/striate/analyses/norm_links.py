"""Do a norm's outlier dimensions sit on the line dimensions of the matrices it feeds?

Seed 000's conjecture: spectral lines come from LayerNorm gains. If a norm scales residual
dimension i far from its median, every matrix that reads the normalized stream sees input i
scaled too, and may show a line there. For each norm vector (gain and bias apart) this counts
n, its outlier dims (`norm_outlier` findings); K, the line dims of the matrices it feeds (`line`
findings, any of them); and k, the dims in both. With no link the n outliers fall among the
d = hidden_size dims at random and k is hypergeometric: p = P(X >= k) = hypergeom.sf(k - 1, d,
K, n), 1 when n or K is 0. Uncorrected: many norms are tested.

Which matrices a norm feeds (block L is the norm's layer; rules match the end of its module path,
first match wins; matrices are picked by their anatomy role):

- gpt2: `ln_1` -> `attn.c_attn` of L; `ln_2` -> `mlp.c_fc` of L; `ln_f` -> `lm_head` / `score`.
- llama: `input_layernorm`, `attn_norm` -> q, k, v (or qkv) of L; `post_attention_layernorm`,
  `pre_feedforward_layernorm`, `ffn_norm` -> gate, up of L, except that `post_attention_layernorm`
  is a post-norm feeding nothing where L also has a `pre_feedforward_layernorm` (Gemma 2/3) or no
  `input_layernorm` (OLMo 2); final `norm`, `output_norm` -> `lm_head`, `output`, `score`.
  Gemma's post-norms, Qwen3's head-wide `q_norm` / `k_norm` feed no listed matrix.
- bert (DistilBERT names too): `embeddings.LayerNorm` -> q, k, v of the first block;
  `attention.output.LayerNorm`, `sa_layer_norm` -> `intermediate.dense`, `ffn.lin1` of L;
  `output.LayerNorm`, `output_layer_norm` -> q, k, v of L + 1, in the last block the head's
  entry matrices if present (`pooler.dense`, `predictions.transform.dense`, `lm_head.dense`,
  `vocab_transform`, `pre_classifier`, `classifier.dense`, `qa_outputs`; a bare `classifier`
  may read the pooler, so it is left out); `predictions.transform.LayerNorm`,
  `lm_head.layer_norm`, `vocab_layer_norm` -> the decoder.
- vit: `layernorm_before`, `norm1` -> q, k, v (or qkv) of L; `layernorm_after`, `norm2` ->
  `intermediate.dense`, `mlp.fc1` of L; final `layernorm`, `norm`, `fc_norm` -> the classifiers.
- any other family: a norm of block L -> the reader matrices (roles in `READS`) of block L.

A head rule looking for `lm_head` that finds none falls back to the largest embedding (tied).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from striate.anatomy.records import READS
from striate.anatomy.specimen import split_name
from striate.errors import StriateError

COLUMNS = [
    "norm", "kind", "layer", "fed", "n_outlier_dims", "n_line_dims", "overlap", "overlap_dims",
    "expected_overlap", "enrichment", "p_value", "note",
]  # fmt: skip


@dataclass(frozen=True)
class Feed:
    """Norms whose module path ends in `norm` feed the matrices with a role in `reads` in
    `block`: the norm's own, the next, the first block, or the head (no block). `names` further
    restricts them by module path; `last` is what a "next" norm of the last block feeds; the
    rule is off in a block with a norm matching `unless`, or with none matching `requires`."""

    norm: str
    block: Literal["same", "next", "first", "head"]
    reads: frozenset[str]
    names: str | None = None
    last: Feed | None = None
    unless: str | None = None
    requires: str | None = None


_QKV = frozenset({"attn_q", "attn_k", "attn_v", "attn_qkv"})
_FFN = frozenset({"ffn_in", "ffn_gate"})
_HEAD = frozenset({"lm_head", "classifier"})
_LM = frozenset({"lm_head"})
# a post-norm, feeding nothing, in Gemma 2/3 (which add a pre-FFN norm) and OLMo 2 (no input norm)
_POST_ATTENTION = Feed(
    r"post_attention_layernorm", "same", _FFN,
    unless=r"pre_feedforward_layernorm", requires=r"input_layernorm",
)  # fmt: skip
_BERT_HEAD = Feed(
    "", "head", frozenset({"classifier"}),
    r"pooler\.dense|predictions\.transform\.dense|lm_head\.dense|vocab_transform"
    r"|pre_classifier|classifier\.dense|qa_outputs",
)  # fmt: skip
FEEDS: dict[str, tuple[Feed, ...]] = {
    "gpt2": (
        Feed(r"ln_1", "same", _QKV),
        Feed(r"ln_2", "same", _FFN),
        Feed(r"ln_f", "head", _HEAD),
    ),
    "llama": (
        Feed(r"input_layernorm|attn_norm", "same", _QKV),
        Feed(r"pre_feedforward_layernorm|ffn_norm", "same", _FFN),
        _POST_ATTENTION,
        Feed(r"norm|output_norm", "head", _HEAD),
    ),
    "bert": (
        Feed(r"embeddings\.LayerNorm", "first", _QKV),
        Feed(r"attention\.output\.LayerNorm|sa_layer_norm", "same", _FFN),
        Feed(r"output\.LayerNorm|output_layer_norm", "next", _QKV, last=_BERT_HEAD),
        Feed(
            r"predictions\.transform\.LayerNorm|lm_head\.layer_norm|vocab_layer_norm", "head", _LM
        ),
    ),
    "vit": (
        Feed(r"layernorm_before|norm1", "same", _QKV),
        Feed(r"layernorm_after|norm2", "same", _FFN),
        Feed(r"layernorm|norm|fc_norm", "head", frozenset({"classifier"})),
    ),
}
_GENERIC = (Feed(r".*", "same", READS),)


def norm_links(
    findings: pd.DataFrame, tensors: pd.DataFrame, family: str, hidden_size: int | None
) -> pd.DataFrame:
    """One row per norm vector that feeds a known matrix: its outlier dims against their lines.

    `tensors` (columns `name, role, layer, shape`) and `findings` (`kind, tensor,
    residual_dim`) are a scan's tables; `family` and `hidden_size` its manifest's. Columns:
    `norm, kind` ("gain" / "bias"), `layer, fed` (tensor names), `n_outlier_dims` (n),
    `n_line_dims` (K), `overlap` (k), `overlap_dims, expected_overlap` (nK/d), `enrichment`
    (k / expected, NaN when that is 0), `p_value, note`; sorted by p_value, then norm. Without
    `hidden_size` the table is empty and `attrs["reason"]` says why.
    """
    if hidden_size is None:
        return _empty("the hidden size is unknown, and with it the number of dimensions")
    pinned = findings[findings["kind"].isin(("line", "norm_outlier"))]
    pinned = pinned[pinned["residual_dim"].notna()]
    dims = {
        (str(kind), str(tensor)): {int(d) for d in group}
        for (kind, tensor), group in pinned.groupby(["kind", "tensor"])["residual_dim"]
    }
    feeds = FEEDS.get(family, _GENERIC)
    norms = tensors[tensors["role"].isin(("norm", "norm_bias"))]
    rows = []
    for name, role, layer in zip(norms["name"], norms["role"], norms["layer"], strict=True):
        block = None if pd.isna(layer) else int(layer)
        if not (fed := _fed(str(name), block, feeds, tensors)):
            continue
        outliers = dims.get(("norm_outlier", name), set())
        lines = set().union(*(dims.get(("line", t), set()) for t in fed))
        if (beyond := max(outliers | lines, default=-1)) >= hidden_size:
            raise StriateError(
                f"residual dim {beyond} is not below the hidden size {hidden_size}",
                tensor=str(name),
                hint="give the findings, tensors and manifest of one scan",
            )
        kind = "gain" if role == "norm" else "bias"
        test = _overlap_test(outliers, lines, hidden_size)
        rows.append({"norm": str(name), "kind": kind, "layer": block, "fed": fed} | test)
    if not rows:
        return _empty(f"no norm vector feeds a matrix that the {family} rules know")
    table = pd.DataFrame(rows, columns=COLUMNS).astype({"layer": "Int64"})
    ranked: pd.DataFrame = table.sort_values(["p_value", "norm"], ignore_index=True, kind="stable")
    return ranked


def _overlap_test(outliers: set[int], lines: set[int], d: int) -> dict[str, Any]:
    """The overlap columns of one row: n, K, k, expected nK/d, enrichment, p and a note."""
    from scipy.stats import hypergeom

    n, big_k, overlap = len(outliers), len(lines), sorted(outliers & lines)
    expected = n * big_k / d
    missing = [text for text, none in (("no outlier dims", n), ("no line dims", big_k)) if not none]
    # P(X >= k): sf is P(X > k - 1); with nothing on one side the overlap is 0 and certain
    p = 1.0 if missing else float(hypergeom.sf(len(overlap) - 1, d, big_k, n))
    return {
        "n_outlier_dims": n, "n_line_dims": big_k, "overlap": len(overlap), "overlap_dims": overlap,
        "expected_overlap": expected, "p_value": p,
        "enrichment": len(overlap) / expected if expected > 0 else float("nan"),
        "note": "; ".join(missing) + ": p = 1" if missing else "",
    }  # fmt: skip


def _ends(pattern: str, module: str) -> bool:
    return re.search(rf"(?:^|[./])(?:{pattern})$", module) is not None


def _fed(name: str, block: int | None, feeds: Iterable[Feed], tensors: pd.DataFrame) -> list[str]:
    """Names of the matrices the norm `name` of block `block` feeds, in table order."""
    module = split_name(name).module
    layers = tensors["layer"]
    for feed in feeds:
        if (feed.block in ("head", "first")) != (block is None) or not _ends(feed.norm, module):
            continue
        if block is not None and (feed.unless or feed.requires):
            norms = tensors[(layers == block) & tensors["role"].isin(("norm", "norm_bias"))]
            modules = [split_name(str(n)).module for n in norms["name"]]
            if feed.unless and any(_ends(feed.unless, m) for m in modules):
                return []
            if feed.requires and not any(_ends(feed.requires, m) for m in modules):
                return []
        return _readers(feed, block, tensors)
    return []


def _readers(feed: Feed, block: int | None, tensors: pd.DataFrame) -> list[str]:
    readers = tensors[tensors["role"].isin(feed.reads)]
    if (names := feed.names) is not None:
        kept = [_ends(names, split_name(str(n)).module) for n in readers["name"]]
        readers = readers.loc[pd.Series(kept, index=readers.index, dtype=bool)]
    if feed.block == "head":
        found = readers[readers["layer"].isna()]
        if found.empty and "lm_head" in feed.reads:
            return _tied(tensors)
        return [str(n) for n in found["name"]]
    in_blocks = readers[readers["layer"].notna()]
    if feed.block == "first":
        target = in_blocks["layer"].min() if len(in_blocks) else None
    else:
        target = block if feed.block == "same" else None if block is None else block + 1
    found = in_blocks[in_blocks["layer"] == target]
    last_block = block is not None and not (tensors["layer"] > block).any()
    if found.empty and feed.block == "next" and feed.last is not None and last_block:
        return _readers(feed.last, None, tensors)
    return [str(n) for n in found["name"]]


def _tied(tensors: pd.DataFrame) -> list[str]:
    """The largest block-less embedding: the output matrix of a model whose head is tied."""
    embeddings = tensors[(tensors["role"] == "embedding") & tensors["layer"].isna()]
    if embeddings.empty:
        return []
    sizes = [math.prod(int(axis) for axis in shape) for shape in embeddings["shape"]]
    return [str(embeddings["name"].iloc[sizes.index(max(sizes))])]


def _empty(reason: str) -> pd.DataFrame:
    table: pd.DataFrame = pd.DataFrame(columns=COLUMNS)
    table.attrs["reason"] = reason
    return table
