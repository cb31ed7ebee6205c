"""Which tensor of B is which tensor of A, and how B's values are brought to A's coordinates.

Names are matched as they are first. Where one model is a GGUF file and the other is not (a
Hugging Face original against its llama.cpp conversion), the other model's remaining names are
translated to GGUF names with the `gguf` package's `TensorNameMap` for the file's
`general.architecture` (the table llama.cpp's converter uses: `encoder.layer.0.attention.self.
query.weight` is `blk.0.attn_q.weight` for `bert`). striate's anatomy assigns roles and layers
but keeps no canonical name, so this is the one name map.

Shapes are compared in storage coordinates: as each reader presents them (PyTorch order; a GGUF
file's reversed dims are already put back by its reader). Two conversions that move values are
undone, so that the values compared are the same weights:

- a 2-D tensor that one anatomy reads as [in, out] (Hugging Face GPT-2's Conv1D) and the
  other as [out, in] (nn.Linear, as llama.cpp and nanoGPT store it), with reversed shapes
  (square ones included): B is transposed and compared as A stores it (`transposed`);
- llama.cpp's rotary permutation of the rows of LLaMA's query and key projections
  (`LlamaModel.permute` in convert_hf_to_gguf.py, for GGUF architecture `llama`): undone, or
  applied to B when A is the GGUF side (`rope_heads`).

Everything else that differs is unmatched, with the reason: only in A, only in B, or the shapes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from striate.anatomy import Anatomy, TensorAnatomy, anatomy_of
from striate.anatomy.evidence import architecture, n_layers
from striate.anatomy.heads import HeadCounts, head_counts
from striate.checkpoint import Checkpoint, TensorInfo
from striate.errors import StriateError, require

#: GGUF architectures whose llama.cpp converter permutes the rows of q and k for its rotary layout
ROPE_PERMUTED = frozenset({"llama"})

#: the columns of diff_unmatched.parquet
UNMATCHED_COLUMNS = ["name", "name_b", "shape_a", "shape_b", "dtype_a", "dtype_b", "reason"]


@dataclass(frozen=True)
class Pair:
    """One tensor of A and its counterpart in B, and how B's values map to A's coordinates."""

    name: str  # in A
    name_b: str  # in B
    info_a: TensorInfo
    info_b: TensorInfo
    part: TensorAnatomy  # what the tensor is (A's anatomy, or B's where A's says "other")
    transposed: bool = False  # B stores A's transpose
    rope_heads: int | None = None  # q/k rows permuted by llama.cpp's rotary layout, in heads
    rope_undo: bool = True  # B is the GGUF side: undo the permutation (else apply it to B)


def rope_permute(w: np.ndarray, heads: int, *, inverse: bool = False) -> np.ndarray:
    """llama.cpp's permutation of the rows of a q or k projection (or bias) `w` (rows, ...):
    within each of `heads` heads, the rows of the two rotary halves are interleaved. `inverse`
    undoes it. Rows must be a multiple of 2 * heads.

    >>> rope_permute(np.arange(8), 2)
    array([0, 2, 1, 3, 4, 6, 5, 7])
    >>> rope_permute(rope_permute(np.arange(8), 2), 2, inverse=True)
    array([0, 1, 2, 3, 4, 5, 6, 7])
    """
    rows, rest = w.shape[0], w.shape[1:]
    half = rows // heads // 2
    split = (heads, half, 2) if inverse else (heads, 2, half)
    permuted: np.ndarray = w.reshape(*split, *rest).swapaxes(1, 2).reshape(w.shape)
    return permuted


def to_a(w_b: np.ndarray, pair: Pair) -> np.ndarray:
    """B's values of `pair` in A's storage coordinates (a view where no permutation is needed)."""
    w = w_b.T if pair.transposed else w_b
    if pair.rope_heads is not None:
        w = rope_permute(w, pair.rope_heads, inverse=pair.rope_undo)
    return w


@dataclass
class Matching:
    """The pairs in A's order, the unmatched tensors (rows of `UNMATCHED_COLUMNS`), and how
    names were matched ("names", or "names and gguf" when the GGUF name map paired some)."""

    pairs: list[Pair]
    unmatched: list[dict[str, Any]]
    mapping: str


def gguf_name_map(ckpt: Checkpoint, n_blocks: int) -> Callable[[str], str | None] | None:
    """Hugging Face name -> GGUF name for the architecture of the GGUF checkpoint `ckpt`
    (`gguf.TensorNameMap`), or None when `ckpt` is not GGUF or its architecture is unknown."""
    arch = architecture(ckpt.metadata)
    if ckpt.format != "gguf" or arch is None:
        return None
    gguf: Any = require("gguf", "gguf", path=ckpt.path, purpose="matching names to GGUF names")
    archs = {name: key for key, name in gguf.MODEL_ARCH_NAMES.items()}
    if arch not in archs:
        return None
    table = gguf.get_tensor_name_map(archs[arch], n_blocks)

    def translate(name: str) -> str | None:
        mapped: str | None = table.get_name(name, try_suffixes=(".weight", ".bias"))
        return mapped

    return translate


def _shape(shape: tuple[int, ...] | None) -> str:
    return "?" if shape is None else f"({', '.join(map(str, shape))})"


def _unmatched(a: TensorInfo | None, b: TensorInfo | None, reason: str) -> dict[str, Any]:
    return {
        "name": None if a is None else a.name,
        "name_b": None if b is None else b.name,
        "shape_a": None if a is None else list(a.shape),
        "shape_b": None if b is None else list(b.shape),
        "dtype_a": None if a is None else a.dtype,
        "dtype_b": None if b is None else b.dtype,
        "reason": reason,
    }


def _translations(
    a: Checkpoint, b: Checkpoint, anat_a: Anatomy, anat_b: Anatomy
) -> tuple[dict[str, str], str | None]:
    """A name -> B name for the names the GGUF map pairs (beyond identical names), and the GGUF
    side's architecture (None when no map applies)."""
    n_blocks = max(
        [n for n in (anat_a.n_layers, anat_b.n_layers) if n]
        + [n_layers(c.config or {}, c.metadata) or 0 for c in (a, b)]
        + [1]
    )
    names_a, names_b = set(a.names()), set(b.names())
    if a.format == "gguf" and b.format != "gguf":
        to_gguf = gguf_name_map(a, n_blocks)
        if to_gguf is None:
            return {}, None
        back = {to_gguf(n): n for n in names_b - names_a}
        pairs = {g: n for g, n in back.items() if g is not None and g in names_a - names_b}
        return pairs, architecture(a.metadata)
    if b.format == "gguf" and a.format != "gguf":
        to_gguf = gguf_name_map(b, n_blocks)
        if to_gguf is None:
            return {}, None
        pairs = {}
        for n in names_a - names_b:
            g = to_gguf(n)
            if g is not None and g in names_b - names_a:
                pairs[n] = g
        return pairs, architecture(b.metadata)
    return {}, None


def _rope_heads(part: TensorAnatomy, heads: HeadCounts) -> int | None:
    if part.role == "attn_q":
        return heads.n_heads
    if part.role == "attn_k":
        return heads.n_kv_heads or heads.n_heads
    return None


def match_tensors(
    a: Checkpoint, b: Checkpoint, anat_a: Anatomy, anat_b: Anatomy, heads: HeadCounts
) -> Matching:
    """Pair the tensors of `a` and `b` (see the module docstring); `heads` are the model's
    attention heads (for llama.cpp's rotary permutation)."""
    names_b = set(b.names())
    translated, arch = _translations(a, b, anat_a, anat_b)
    pairs: list[Pair] = []
    unmatched: list[dict[str, Any]] = []
    used: set[str] = set()
    for name in a.names():
        info_a = a.info(name)
        name_b = name if name in names_b else translated.get(name)
        if name_b is None:
            unmatched.append(_unmatched(info_a, None, "only in A"))
            continue
        used.add(name_b)
        info_b = b.info(name_b)
        part_a, part_b = anat_a[name], anat_b[name_b]
        flipped = (
            len(info_a.shape) == 2
            and info_b.shape == info_a.shape[::-1]
            and {part_a.layout, part_b.layout} == {"conv1d", "linear"}
        )
        if info_a.shape != info_b.shape and not flipped:
            reason = f"shape differs: A {_shape(info_a.shape)}, B {_shape(info_b.shape)}"
            unmatched.append(_unmatched(info_a, info_b, reason))
            continue
        part = part_a
        if part_a.role == "other" and part_b.role != "other" and not flipped:
            part = replace(part_b, name=name)
        rope = None
        if name_b != name and arch in ROPE_PERMUTED and not flipped:
            rope = _rope_heads(part, heads)
            rows = info_a.shape[0] if info_a.shape else 0
            rope = rope if rope and rows % (2 * rope) == 0 else None
        pairs.append(
            Pair(name, name_b, info_a, info_b, part, flipped, rope, rope_undo=b.format == "gguf")
        )
    for name_b in b.names():
        if name_b not in used:
            unmatched.append(_unmatched(None, b.info(name_b), "only in B"))
    mapping = "names and gguf" if translated else "names"
    return Matching(pairs, unmatched, mapping)


def model_heads(a: Checkpoint, b: Checkpoint) -> HeadCounts:
    """The attention heads A's files give, else B's."""
    ha, hb = head_counts(a), head_counts(b)
    return HeadCounts(ha.n_heads or hb.n_heads, ha.n_kv_heads or hb.n_kv_heads)


def pair_values(a: Checkpoint, b: Checkpoint, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A's tensor `name` and its counterpart in B, both float32 in A's storage coordinates, as
    `striate.diff` compares them: what a report or viewer shows as A, B and B - A side by side.
    StriateError when B has no counterpart (with the reason)."""
    found = match_tensors(a, b, anatomy_of(a), anatomy_of(b), model_heads(a, b))
    for pair in found.pairs:
        if pair.name == name:
            return a.read(name), np.ascontiguousarray(to_a(b.read(pair.name_b), pair))
    reasons = [r["reason"] for r in found.unmatched if r["name"] == name]
    raise StriateError(
        f"no counterpart in {b.path}: {reasons[0] if reasons else 'not a tensor of A'}",
        path=a.path,
        tensor=name,
    )
