"""`index.html`: one file that opens from disk, no server, no network.

Every name that comes from a checkpoint is escaped. Images are linked from `images/` beside it.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from striate.run import Run
from striate.store import atomic_file

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px}td,th{padding:2px 8px;text-align:left;
border-bottom:1px solid #eee;vertical-align:top}th{background:#f6f6f6}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.gallery{display:flex;flex-wrap:wrap;gap:12px}.gallery figure{margin:0;width:280px}
.gallery img{width:280px;border:1px solid #ddd}.gallery figcaption{font-size:11px;
word-break:break-all}.failed{color:#b00}code{font-size:12px}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None or value is pd.NA else str(value), quote=True)


def _table(frame: pd.DataFrame, columns: list[str], limit: int) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for _, row in frame.head(limit).iterrows():
        cells = []
        for c in columns:
            v = row.get(c)
            if isinstance(v, float):
                cells.append(f'<td class="num">{v:.4g}</td>')
            else:
                cells.append(f"<td>{_e(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = f"<p>{len(frame) - limit} more in the Parquet table.</p>" if len(frame) > limit else ""
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def render_report(run: Run) -> str:
    m = run.manifest
    facts = {
        "source": m.get("source"), "format": m.get("format"), "family": m.get("family"),
        "layers": m.get("n_layers"), "hidden size": m.get("hidden_size"),
        "tensors": len(run.tensors), "parameters": f"{int(run.tensors['numel'].sum()):,}"
        if "numel" in run.tensors else "", "seconds": m.get("seconds"),
        "failed tensors": len(run.failed),
    }  # fmt: skip
    parts = [f"<h1>striate scan: {_e(m.get('source'))}</h1><table>"]
    parts += [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts.items()]
    parts.append("</table>")
    if run.failed:
        items = "".join(
            f"<li><code>{_e(n)}</code>: {_e(err)}</li>" for n, err in run.failed.items()
        )
        parts.append(f'<h2>Failed tensors</h2><ul class="failed">{items}</ul>')
    parts.append("<h2>Strongest findings</h2>")
    findings = run.findings.assign(index=run.findings["index"].map(_index_text))
    finding_columns = ["kind", "tensor", "index", "score", "residual_dim", "detail"]
    parts.append(_table(findings, finding_columns, 100))
    parts.append("<h2>Residual dimensions that stand out</h2>")
    dim_columns = ["residual_dim", "score", "n_tensors", "n_lines", "n_norm_outliers",
                   "n_hotspots", "layers"]  # fmt: skip
    parts.append(_table(run.residual_dims, dim_columns, 50))
    figures = m.get("figures", {})
    if figures.get("ffn"):
        parts.append("<h2>FFN neuron geometry</h2>")
        if not run.ffn_layers.empty:
            ffn_columns = [c for c in ("layer", "alignment_mean", "share_positive",
                                        "share_negative", "n_clusters", "bias_mean",
                                        "slope_alignment_on_bias", "slope_se",
                                        "in_similarity_mean", "out_similarity_mean")
                           if c in run.ffn_layers.columns]  # fmt: skip
            parts.append(_table(run.ffn_layers, ffn_columns, 200))
        parts.append(_figures(figures["ffn"]))
    if "banding_score" in run.tensors:
        convs = run.tensors[run.tensors["banding_score"].notna()]
        parts.append("<h2>Weight banding (conv layers)</h2>")
        band_columns = ["name", "banding_rows", "banding_cols", "banding_score", "banding_z",
                        "banding_direction"]  # fmt: skip
        parts.append(_table(convs, band_columns, 500))
        if "banding_image" in convs:
            parts.append(_figures([p for p in convs["banding_image"] if isinstance(p, str)]))
    parts.append("<h2>Tensors</h2>")
    parts.append(_gallery(run.tensors))
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>striate: {_e(m.get('source'))}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def _index_text(index: Any) -> str:
    if index is None:
        return ""
    return "[" + ", ".join(":" if i is None or pd.isna(i) else str(int(i)) for i in index) + "]"


def _gallery(tensors: pd.DataFrame) -> str:
    figures = []
    for _, row in tensors.iterrows():
        image = row.get("image")
        if not isinstance(image, str):
            continue
        caption = f"{row['name']} · {row['role']} · {'×'.join(map(str, row['shape']))}"
        figures.append(
            f'<figure><a href="{_e(image)}"><img loading="lazy" src="{_e(image)}" '
            f'alt="{_e(row["name"])}"></a><figcaption>{_e(caption)}</figcaption></figure>'
        )
    return f'<div class="gallery">{"".join(figures)}</div>'


def _figures(paths: list[str]) -> str:
    items = "".join(
        f'<a href="{_e(p)}"><img src="{_e(p)}" alt="{_e(p)}" style="max-width:100%"></a>'
        for p in paths
    )
    return f"<div>{items}</div>"


def write_report(run: Run) -> None:
    """Write `index.html` into the run directory."""
    assert run.path is not None
    with atomic_file(run.path / "index.html", "w") as fh:
        fh.write(render_report(run))
