"""`index.html` of a `striate diff` run: what changed between model A and model B.

Written from the run directory's files alone (its tables, manifest.json and the images the diff
drew into images/diff/), so `striate report DIR` writes it again: this module takes plain
tables, never the diff engine (which sits above the report). First the two models and the
tensors that changed most; then the changes by layer and role (curves of `rel_change`,
`update_effective_rank` and `top_k_overlap` against layer, one line per kind of tensor,
coloured by role), the update-rank picture, every finding with its status, the quantization
blocks, the residual dimensions, images of A, B and B - A, and the tensors left unmatched.
Every name from a file is escaped; images are linked only inside the run directory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from striate.render.png import save_figure
from striate.render.spectrum_figures import ROLE_COLORS
from striate.render.style import canvas, style
from striate.report.curves import metric_series
from striate.report.page import e, fact_cards, failed, figures, local, page, section, table
from striate.report.scan_html import index_text
from striate.store import atomic_file, read_table

#: the tables of a diff run (file names without .parquet), as `striate.diff.TABLES` writes them
TABLES = ("diff", "diff_findings", "diff_blocks", "diff_unmatched", "diff_residual")
STATUSES = ("lost", "weakened", "new", "kept")
#: the metrics drawn against layer, with their axis labels
CURVES = {
    "rel_change": "rel_change |B - A|F / |A|F",
    "update_effective_rank": "effective rank of B - A",
    "top_k_overlap": "top-k subspace overlap of A and B",
}
CHANGE_COLUMNS = ("name", "role", "layer", "shape", "dtype_a", "dtype_b", "rel_change",
                  "max_abs_change", "cosine", "update_stable_rank", "update_effective_rank",
                  "top_k_overlap", "n_lost", "n_weakened", "n_new")  # fmt: skip
FINDING_COLUMNS = ("status", "kind", "tensor", "index", "value_a", "value_b", "retention",
                   "significance_a", "block_error_ratio", "detail")  # fmt: skip
BLOCK_COLUMNS = ("tensor", "kind", "index", "block_format", "block_size", "block_start",
                 "value_a", "value_b", "n_others", "others_zeroed", "others_rel_error",
                 "error_ratio")  # fmt: skip
RESIDUAL_COLUMNS = ("residual_dim", "rel_change", "pooled_z_update", "pooled_z_update_read",
                    "pooled_z_update_write", "significance_update", "pooled_z_a", "pooled_z_b",
                    "n_tensors")  # fmt: skip
TOP_CHANGES = 25  # tensors in the first table
LOG_RANGE = 30.0  # positive values spanning more than this factor get a log axis


def read_tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    """The tables of the diff run in `run_dir`, by file name; a missing one is empty."""
    return {
        name: read_table(run_dir, name) if (run_dir / f"{name}.parquet").is_file()
        else pd.DataFrame()
        for name in TABLES
    }  # fmt: skip


def _with_index(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its `index` column as text (`[7, :]`)."""
    if "index" not in frame or frame.empty:
        return frame
    shown: pd.DataFrame = frame.assign(
        index=[index_text(i).replace(" ", "\u00a0") for i in frame["index"]]
    )
    return shown


def _side(label: str, side: Mapping[str, Any]) -> list[tuple[str, Any]]:
    files = side.get("files") or []
    size = sum(int(f.get("bytes", 0)) for f in files if isinstance(f, Mapping))
    return [(f"{label}", side.get("source")), (f"{label} format", side.get("format")),
            (f"{label} family", side.get("family")), (f"{label} tensors", side.get("n_tensors")),
            (f"{label} bytes", f"{size:,}" if files else None)]  # fmt: skip


def glance(manifest: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]) -> str:
    """Both models, how they were matched, and what the diff found, as cards."""
    t, f = tables["diff"], tables["diff_findings"]
    counts = f["status"].value_counts() if "status" in f else pd.Series(dtype=int)
    cache = manifest.get("cache") or {}
    failed_rows = t[t["status"] == "failed"] if "status" in t else t.iloc[:0]
    items = [
        *_side("A", manifest.get("a") or {}), *_side("B", manifest.get("b") or {}),
        ("names matched by", manifest.get("name_mapping")),
        ("tensors compared", manifest.get("n_matched", len(t))),
        ("unmatched", manifest.get("n_unmatched")),
        ("left out by compare.include", manifest.get("n_excluded") or None),
        ("failed", len(failed_rows)), ("hidden size", manifest.get("hidden_size")),
        *((f"findings {s}", int(counts.get(s, 0))) for s in STATUSES),
        ("from the cache", cache.get("reused")), ("striate", manifest.get("striate_version")),
        ("started", manifest.get("started")),
    ]  # fmt: skip
    parts = [fact_cards(items)]
    if len(failed_rows):
        entries = "".join(
            f"<li><code>{e(r['name'])}</code>: {e(r.get('error'))}</li>"
            for r in failed_rows.to_dict("records")
        )
        parts.append(f'<details class="failed"><summary>{len(failed_rows)} failed tensors'
                     f'</summary><ul class="failed">{entries}</ul></details>')  # fmt: skip
    return "".join(parts)


def largest_changes(tensors: pd.DataFrame, limit: int = TOP_CHANGES) -> str:
    if tensors.empty or "rel_change" not in tensors:
        return '<p class="note">No tensor was compared.</p>'
    ranked = tensors.sort_values("rel_change", ascending=False, kind="stable", na_position="last")
    unchanged = int((pd.to_numeric(tensors["rel_change"], errors="coerce") == 0).sum())
    return (
        f"<p>The {min(limit, len(ranked))} of {len(tensors)} compared tensors with the largest "
        f"relative change |B - A|F / |A|F; {unchanged} are exactly unchanged. Every column is "
        "in diff.parquet (docs/diff.md defines them).</p>" + table(ranked, CHANGE_COLUMNS, limit)
    )


def _log_axis(ax: Any, values: np.ndarray, axis: str = "y") -> None:
    """A log scale on `axis` when the values are positive and span more than LOG_RANGE."""
    positive = values[values > 0]
    if (values >= 0).all() and positive.size and positive.max() / positive.min() > LOG_RANGE:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def draw_curves(tensors: pd.DataFrame, path: Path) -> bool:
    """The three `CURVES` against layer, one line per kind of tensor (its name with the layer
    number starred), coloured by role, into `path`; False when no metric spans two layers."""
    series = {m: metric_series(tensors, m) for m in CURVES}
    series = {m: s for m, s in series.items()
              if not s.empty and s.groupby("series")["layer"].nunique().max() >= 2}  # fmt: skip
    if not series:
        return False
    roles = list(dict.fromkeys(r for s in series.values() for r in s["role"]))
    color = {r: ROLE_COLORS[i % len(ROLE_COLORS)] for i, r in enumerate(roles)}
    with style():
        fig = canvas(8.0, 2.4 * len(series) + 0.4, dpi=110)
        height = 0.86 / len(series)
        for k, (metric, rows) in enumerate(series.items()):
            ax = fig.add_axes((0.09, 0.97 - height * (k + 1) + 0.05 * height, 0.66, height * 0.78))
            for _, s in rows.groupby("series", sort=False):
                ax.plot(s["layer"], s["value"], color=color[s["role"].iloc[0]], lw=1.0,
                        marker=".", ms=3)  # fmt: skip
            _log_axis(ax, rows["value"].to_numpy())
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(CURVES[metric], loc="left", fontsize=8, parse_math=False)
            ax.grid(alpha=0.3)
            if k == len(series) - 1:
                ax.set_xlabel("layer", parse_math=False)
        for role in roles[:16]:
            fig.axes[0].plot([], [], color=color[role], lw=1.5, label=role)
        fig.axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=6.5,
                           frameon=False)  # fmt: skip
        save_figure(fig, path)
    return True


def full_rank(shape: Any) -> float:
    """min(rows, columns) of a tensor as a matrix (conv kernels [out, in*kh*kw]); NaN for a
    vector."""
    dims = [int(n) for n in (shape if shape is not None else [])]
    if len(dims) < 2:
        return float("nan")
    return float(min(dims[0], int(np.prod(dims[1:]))))


def draw_update_ranks(tensors: pd.DataFrame, path: Path) -> bool:
    """The update B - A of every changed matrix: its effective rank as a share of the full rank,
    and its stable rank, against its relative size; one colour per role. False when no matrix
    changed."""
    need = {"rel_change", "update_effective_rank", "update_stable_rank", "shape", "role"}
    if tensors.empty or not need <= set(tensors.columns):
        return False
    rows = tensors.assign(
        rel=pd.to_numeric(tensors["rel_change"], errors="coerce"),
        eff=pd.to_numeric(tensors["update_effective_rank"], errors="coerce"),
        stable=pd.to_numeric(tensors["update_stable_rank"], errors="coerce"),
        full=[full_rank(s) for s in tensors["shape"]],
    )
    rows = rows[(rows["rel"] > 0) & np.isfinite(rows["rel"]) & rows["eff"].notna()]
    if rows.empty:
        return False
    roles = list(dict.fromkeys(rows["role"]))
    color = {r: ROLE_COLORS[i % len(ROLE_COLORS)] for i, r in enumerate(roles)}
    with style():
        fig = canvas(8.0, 3.2, dpi=110)
        left = fig.add_axes((0.07, 0.15, 0.31, 0.72))
        right = fig.add_axes((0.45, 0.15, 0.31, 0.72))
        for role, s in rows.groupby("role", sort=False):
            left.scatter(s["rel"], s["eff"] / s["full"], s=12, color=color[str(role)],
                         label=str(role))  # fmt: skip
            right.scatter(s["rel"], s["stable"], s=12, color=color[str(role)])
        for ax in (left, right):
            _log_axis(ax, rows["rel"].to_numpy(), "x")
            ax.set_xlabel("rel_change", parse_math=False)
            ax.grid(alpha=0.3)
        _log_axis(right, rows["stable"].to_numpy())
        left.set_ylim(0, 1.05)
        left.set_title("effective rank of B - A / full rank", loc="left", fontsize=8,
                       parse_math=False)  # fmt: skip
        right.set_title("stable rank of B - A", loc="left", fontsize=8, parse_math=False)
        fig.legend(loc="upper left", bbox_to_anchor=(0.78, 0.87), fontsize=6.5, frameon=False)
        save_figure(fig, path)
    return True


def drawn_figure(
    out_dir: Path, name: str, draw: Callable[[pd.DataFrame, Path], bool], tensors: pd.DataFrame,
    caption: str, empty: str,
) -> str:  # fmt: skip
    """A figure drawn now into `images/report/<name>.png` with its caption, or the note
    `empty` when there is nothing to draw."""
    rel = f"images/report/{name}.png"
    if not draw(tensors, out_dir / rel):
        return f'<p class="note">Nothing to draw: {e(empty)}.</p>'
    return f'<p class="note">{e(caption)}</p>' + figures([rel])


def findings_section(findings: pd.DataFrame, limit: int = 300) -> str:
    if findings.empty:
        return '<p class="note">Neither model has a finding.</p>'
    grid = pd.crosstab(findings["kind"], findings["status"]).reindex(
        columns=[s for s in STATUSES if s in set(findings["status"])]
    )
    counts = grid.reset_index()
    return (
        "<p>Every structural finding of A (hotspots and super weights, lines, norm outliers, "
        "residual dims, ...) measured again in B, and the findings new in B. lost: B keeps less "
        "than 20% of its strength (compare.lost); kept: at least 80% (compare.kept) and B's "
        "analysis still reports it; weakened: in between; new: reported in B only. Lost first, "
        "then weakened, new and kept, the most significant first.</p>"
        + table(counts, list(counts.columns))
        + table(_with_index(findings), FINDING_COLUMNS, limit)
    )


def blocks_section(blocks: pd.DataFrame, limit: int = 50) -> str:
    if blocks.empty:
        return '<p class="note">No block rows: A has no hotspot or norm outlier.</p>'
    return (
        "<p>For every hotspot and norm outlier of A, and the worst other blocks of each tensor: "
        "the error of the weights that share its block of the storage format (a GGUF block "
        "type, else fixed blocks of compare.block along the last axis) against the tensor's "
        "median block error (error_ratio); largest first. others_rel_error 1.0: as if every "
        "block-mate were set to 0.</p>"
        + f"<p>The worst: {e(blocks['detail'].iloc[0])}.</p>"
        + table(_with_index(blocks), BLOCK_COLUMNS, limit)
        + '<p class="note">Each row\'s sentence is its <code>detail</code> in '
        "diff_blocks.parquet.</p>"
    )


def residual_section(residual: pd.DataFrame, limit: int = 30) -> str:
    if residual.empty:
        return '<p class="note">No residual dimension: the anatomy names no hidden size.</p>'
    return (
        "<p>The residual dimensions whose change is most significant, pooled over every tensor "
        "that reads or writes the stream: rel_change is the update's energy on the dim over "
        "A's; pooled z of the update's lines over all tensors, the readers and the writers; the "
        "scan's pooled evidence in A and in B beside it.</p>"
        + table(residual, RESIDUAL_COLUMNS, limit)
    )


def images_section(manifest: Mapping[str, Any]) -> str:
    entries = manifest.get("images") or []
    if not entries:
        return '<p class="note">No images (compare.images=0, or no tensor changed).</p>'
    parts = [
        "<p>Each tensor as stored in A, B in A's coordinates, and the update B - A on its own "
        "colour scale (red positive, blue negative, white 0).</p>"
    ]
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        head = (f"<h3><code>{e(entry.get('tensor'))}</code> "
                f'<span class="note">({e(entry.get("why"))}; in B: '
                f"<code>{e(entry.get('tensor_b'))}</code>)</span></h3>")  # fmt: skip
        if entry.get("error"):
            parts.append(head + f'<p class="failed">not drawn: {e(entry["error"])}</p>')
            continue
        items = []
        for key, label in (("a", "A"), ("b", "B"), ("diff", "B - A")):
            rel = local(entry.get(key))
            items.append(
                f'<figure><a href="{e(rel)}"><img loading="lazy" src="{e(rel)}" alt="{label}">'
                f"</a><figcaption>{label}</figcaption></figure>"
                if rel
                else f'<p class="failed">not a file of this run: {e(entry.get(key))}</p>'
            )
        parts.append(head + f'<div class="gallery">{"".join(items)}</div>')
    return "".join(parts)


def unmatched_section(unmatched: pd.DataFrame) -> str:
    if unmatched.empty:
        return '<p class="note">Every tensor of A has its counterpart in B, and B has no other.</p>'
    columns = ("name", "name_b", "shape_a", "shape_b", "dtype_a", "dtype_b", "reason")
    return f"<p>{len(unmatched)} tensors without a counterpart.</p>" + table(unmatched, columns)


def render_diff_report(
    out_dir: Path, manifest: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]
) -> str:
    """The whole page of a diff run; its two figures are drawn into `out_dir/images/report/`."""
    t = tables["diff"]
    a = (manifest.get("a") or {}).get("source", manifest.get("source", "A"))
    b = (manifest.get("b") or {}).get("source", "B")
    parts: list[tuple[str, str, str, Callable[[], str]]] = [
        ("changes", "The tensors that changed most", "Largest changes",
         lambda: largest_changes(t)),
        ("curves", "Changes by layer and role", "By layer",
         lambda: drawn_figure(out_dir, "diff_curves", draw_curves, t,
                              "One line per kind of tensor across depth, coloured by role.",
                              "no metric spans two layers (the anatomy names no layers)")),
        ("ranks", "The rank of the update B - A", "Update rank",
         lambda: drawn_figure(out_dir, "diff_update_ranks", draw_update_ranks, t,
                              "A fine-tune's low-rank update sits low on the left; rounding "
                              "noise (quantization) is spread over nearly every direction.",
                              "no matrix changed")),
        ("findings", "Findings of A, and new ones of B, with their status", "Findings",
         lambda: findings_section(tables["diff_findings"])),
        ("blocks", "Quantization blocks around outliers", "Blocks",
         lambda: blocks_section(tables["diff_blocks"])),
        ("residual", "Residual dimensions that changed most", "Residual dims",
         lambda: residual_section(tables["diff_residual"])),
        ("images", "A, B and B - A", "Images", lambda: images_section(manifest)),
        ("unmatched", "Unmatched tensors", "Unmatched",
         lambda: unmatched_section(tables["diff_unmatched"])),
    ]  # fmt: skip
    body = (
        f"<h1>striate diff: <code>{e(a)}</code> → <code>{e(b)}</code></h1>\n"
        + section("glance", "A and B at a glance", lambda: glance(manifest, tables))
        + "".join(section(anchor, title, build) for anchor, title, _, build in parts)
    )
    toc = [("glance", "At a glance"), *((anchor, label) for anchor, _, label, _ in parts)]
    return page(f"striate diff: {a} → {b}", body, toc=toc)


def write_diff_report(
    out_dir: Path, manifest: Mapping[str, Any], tables: Mapping[str, pd.DataFrame] | None = None
) -> Path:
    """Write `out_dir/index.html` (atomically) from the manifest and the tables (read from
    `out_dir` when not given); return its path."""
    tables = read_tables(out_dir) if tables is None else tables
    try:
        text = render_diff_report(out_dir, manifest, tables)
    except Exception as exc:  # a page that says why beats no page
        text = page("striate diff", failed("the diff report could not be built", exc))
    with atomic_file(out_dir / "index.html", "w") as fh:
        fh.write(text)
    return out_dir / "index.html"
