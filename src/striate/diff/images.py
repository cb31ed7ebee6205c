"""The images of a diff run: A, B and B - A of the tensors that changed most, drawn at diff time
into `out/images/diff/` so that the report (`striate.report.diff_html`) can be written again
from the run directory alone.

Which tensors: the `compare.images` (6) tensors with the largest `rel_change`, taken in turn
with the tensors of the worst quantization blocks (diff_blocks' largest `error_ratio`), each
once. Every image is drawn as a scan draws its tensor (storage coordinates of A, the residual
axis named, head boundaries), B in A's coordinates (`diff.matching.to_a`), B - A on its own
colour scale. Files are named by the tensor's row in diff.parquet (`images/diff/007-a.png`), never
by its name; the manifest's `images` lists them: {"tensor", "tensor_b", "why", "a", "b", "diff"}
or, when drawing failed, {"tensor", "tensor_b", "why", "error"}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from striate.anatomy.heads import HeadCounts, head_partition
from striate.checkpoint import Checkpoint
from striate.diff.matching import Pair, to_a
from striate.render import render_tensor

FOLDER = "images/diff"


def chosen_tensors(tensors: pd.DataFrame, blocks: pd.DataFrame, n: int) -> list[tuple[str, str]]:
    """At most `n` (name, why) of the compared tensors: the largest `rel_change` first, in turn
    with the tensors of the worst blocks; tensors that did not change are left out."""
    if n <= 0 or tensors.empty:
        return []
    rel = pd.to_numeric(tensors["rel_change"], errors="coerce")
    done = tensors[(tensors["status"] == "done") & (rel > 0)]
    by_change = list(done.sort_values("rel_change", ascending=False, kind="stable")["name"])
    changed = set(by_change)
    by_block: list[str] = []
    if not blocks.empty:
        worst = blocks[pd.to_numeric(blocks["error_ratio"], errors="coerce") > 0]
        by_block = [str(t) for t in dict.fromkeys(worst["tensor"]) if t in changed]
    picked: dict[str, str] = {}
    for i in range(max(len(by_change), len(by_block))):
        for names, why in ((by_change, "largest change"), (by_block, "worst block")):
            if i < len(names) and len(picked) < n:
                picked.setdefault(names[i], why)
    return list(picked.items())


def draw_images(
    out_dir: Path,
    tensors: pd.DataFrame,
    blocks: pd.DataFrame,
    a: Checkpoint,
    b: Checkpoint,
    pairs: list[Pair],
    heads: HeadCounts,
    *,
    n: int,
    max_pixels: int = 1024,
) -> list[dict[str, Any]]:
    """Draw A, B and B - A of the `chosen_tensors` into `out_dir/images/diff/`; return the
    manifest's `images` entries. A tensor that cannot be read or drawn gets its error instead;
    the others are drawn."""
    by_name = {p.name: p for p in pairs}
    rows = {str(name): i for i, name in enumerate(tensors["name"])}
    entries = []
    for name, why in chosen_tensors(tensors, blocks, n):
        pair = by_name[name]
        entry: dict[str, Any] = {"tensor": name, "tensor_b": pair.name_b, "why": why}
        try:
            w_a = a.read(name)
            w_b = np.ascontiguousarray(to_a(b.read(pair.name_b), pair))
            update = (w_b.astype(np.float64) - w_a).astype(np.float32)
            part = pair.part
            blocks_of_heads = head_partition(w_a.shape, part, heads)
            for key, w, title in (("a", w_a, f"A: {name}"), ("b", w_b, f"B: {pair.name_b}"),
                                  ("diff", update, f"B - A: {name}")):  # fmt: skip
                rel = f"{FOLDER}/{rows[name]:03d}-{key}.png"
                render_tensor(
                    w, out_dir / rel, title=title, role=part.role, layout=part.layout,
                    residual_axis=part.residual_axis, head_blocks=blocks_of_heads,
                    max_pixels=max_pixels,
                )  # fmt: skip
                entry[key] = rel
        except Exception as exc:  # one tensor's images never stop the run
            entry = {**{k: entry[k] for k in ("tensor", "tensor_b", "why")},
                     "error": f"{type(exc).__name__}: {exc}"}  # fmt: skip
        entries.append(entry)
    return entries
