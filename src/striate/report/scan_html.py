"""`index.html` of a `striate scan` run: the model at a glance, findings, residual dimensions,
per-layer curves, the tensor gallery, FFN geometry, spectra and banding.

Each section is built by its own function through `page.section`, so a section that fails shows
its error and the others still render. Tensors are addressed by their position in
tensors.parquet (`#t-17`), never by their names, so any name makes a valid anchor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from striate.analyses.findings import FINDING_COLUMNS
from striate.analyses.norm_links import norm_links
from striate.display import findings_summary
from striate.report import scan_figures
from striate.report.norm_links_html import norm_links_section
from striate.report.page import e, facts, json_block, page, section, table
from striate.run import Run
from striate.store import atomic_file

#: the findings table's columns as the report shows them (where first); the JSON rows carry
#: these and `anchor`
REPORT_COLUMNS = [
    "kind",
    "tensor",
    "layer",
    "role",
    *(c for c in FINDING_COLUMNS if c not in ("kind", "tensor", "layer", "role")),
]


def anchors(tensors: pd.DataFrame) -> dict[str, str]:
    """Tensor name -> the id of its gallery entry (`t-<row position>`)."""
    if "name" not in tensors:
        return {}
    return {str(name): f"t-{i}" for i, name in enumerate(tensors["name"])}


def tensor_link(name: Any, ids: dict[str, str]) -> str:
    anchor = ids.get(str(name))
    text = f"<code>{e(name)}</code>"
    return f'<a href="#{anchor}">{text}</a>' if anchor else text


def index_text(index: Any) -> str:
    """A finding's index as text: `[7, :]` for a row line (`:` where it spans the axis)."""
    if index is None or (isinstance(index, float) and math.isnan(index)):
        return ""
    parts = [":" if i is None or pd.isna(i) else str(int(i)) for i in index]
    return "[" + ", ".join(parts) + "]"


def _json_value(value: Any) -> Any:
    """A JSON-safe cell: NaN / NA to None, NumPy scalars to Python."""
    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def findings_rows(findings: pd.DataFrame, ids: dict[str, str]) -> list[dict[str, Any]]:
    """The findings as JSON-ready rows: REPORT_COLUMNS (index as text) and `anchor`."""
    rows = []
    for record in findings.to_dict("records"):
        row = {c: _json_value(record.get(c)) for c in REPORT_COLUMNS if c != "index"}
        row["index"] = index_text(record.get("index"))
        for key in ("kind", "tensor", "role", "detail"):
            row[key] = "" if row[key] is None else str(row[key])
        row["anchor"] = ids.get(row["tensor"])
        rows.append(row)
    return rows


def glance(run: Run, ids: dict[str, str]) -> str:
    m, t = run.manifest, run.tensors
    params = (
        int(pd.to_numeric(t["numel"], errors="coerce").fillna(0).sum()) if "numel" in t else None
    )
    items = [
        ("source", m.get("source")), ("format", m.get("format")), ("family", m.get("family")),
        ("parameters", f"{params:,}" if params is not None else ""),
        ("layers", m.get("n_layers")), ("hidden size", m.get("hidden_size")),
        ("attention heads", m.get("n_heads")), ("tensors", len(t)),
        ("findings", len(run.findings)), ("seconds", m.get("seconds")),
        ("failed tensors", len(run.failed)), ("striate", m.get("striate_version")),
        ("started", m.get("started")),
    ]  # fmt: skip
    parts = [facts(items)]
    if run.failed:
        entries = "".join(
            f"<li>{tensor_link(name, ids)}: {e(error)}</li>" for name, error in run.failed.items()
        )
        parts.append(f'<h3>Failed tensors</h3><ul class="failed">{entries}</ul>')
    return "".join(parts)


def findings_section(run: Run, ids: dict[str, str]) -> str:
    rows = findings_rows(run.findings, ids)
    head = "".join(f'<th data-key="{c}">{e(c.replace("_", " "))}</th>' for c in REPORT_COLUMNS)
    filters = (
        '<div id="findings-filters">'
        '<label>kind<select id="filter-kind"><option value="">all</option></select></label>'
        '<label>role<select id="filter-role"><option value="">all</option></select></label>'
        '<label>layer<input id="filter-layer" size="4" inputmode="numeric"></label>'
        '<label>tensor contains<input id="filter-tensor" size="24"></label>'
        '<label>score at least<input id="filter-score" size="6" inputmode="decimal"></label>'
        '<span id="findings-count" class="note"></span></div>'
    )
    static = run.findings.assign(index=run.findings["index"].map(index_text))
    fallback = table(static, REPORT_COLUMNS, limit=100) if len(static) else ""
    summaries = [t for t in findings_summary(run, top=30) if t.name == "groups"]
    grouped = ""
    for t in summaries:
        grouped = (
            f"<p>{len(rows)} findings in {t.total} groups: every finding that pins a residual "
            "dimension joins that dimension's group, every other its tensor's; a group is as "
            "significant as its strongest finding (significance = -log10 of the expected number "
            "of such findings in a tensor without structure).</p>"
            + table(pd.DataFrame(t.rows, columns=t.head), t.head)
            + (f'<p class="note">{t.total - 30} more groups.</p>' if t.total > 30 else "")
        )
    return (
        grouped + f"<p>All {len(rows)} findings, most significant first; click a header to sort, a "
        "tensor to see it.</p>"
        + json_block("findings-data", {"columns": REPORT_COLUMNS, "rows": rows})
        + filters
        + '<div id="findings-scroll"><table id="findings-table">'
        + f"<thead><tr>{head}</tr></thead><tbody></tbody></table></div>"
        + f"<noscript>{fallback}</noscript>"
    )


POOLED = ("significance", "pooled_z", "pooled_z_read", "pooled_z_write")


def _num(x: Any) -> str:
    return "" if x is None or pd.isna(x) else f"{float(x):.3g}"


def _links(run: Run) -> pd.DataFrame:
    """The run's norm_links table, or computed from its findings and tensors (older runs)."""
    if not run.norm_links.empty or "name" not in run.tensors:
        return run.norm_links
    family = str(run.manifest.get("family", "generic"))
    return norm_links(run.findings, run.tensors, family, run.manifest.get("hidden_size"))


def residual_section(run: Run, ids: dict[str, str], limit: int = 50) -> str:
    dims, f = run.residual_dims, run.findings
    if dims.empty:
        return '<p class="note">No finding pins a residual dimension.</p>'
    pinned = f[f["residual_dim"].notna()] if "residual_dim" in f else f.iloc[:0]
    head = ("<tr><th>dim</th><th>direction</th><th>significance</th><th>pooled z</th>"
            "<th>z reads</th><th>z writes</th><th>tensors pooled</th><th>lines</th>"
            "<th>norm outliers</th><th>hotspots</th><th>layers</th><th>where</th>"
            "<th>norm gains</th></tr>")  # fmt: skip
    rows = []
    for d in dims.head(limit).to_dict("records"):
        here = pinned[pinned["residual_dim"] == d["residual_dim"]]
        gains = here[here["kind"] == "norm_outlier"]
        where = here[here["kind"] != "norm_outlier"].groupby("tensor", sort=False)["kind"]
        where_links = [f"{tensor_link(t, ids)} ({e(', '.join(sorted(set(k))))})" for t, k in where]
        gain_links = [
            f"{tensor_link(g['tensor'], ids)} = {g['value']:.4g}" for g in gains.to_dict("records")
        ]
        layers = ", ".join(str(x) for x in list(d.get("layers", [])))
        rows.append(
            f'<tr><td class="num">{e(d["residual_dim"])}</td><td>{e(d.get("direction") or "")}</td>'
            + "".join(f'<td class="num">{_num(d.get(c))}</td>' for c in POOLED)
            + f'<td class="num">{e(d.get("n_tensors_pooled", ""))}</td>'
            f'<td class="num">{e(d["n_lines"])}</td>'
            f'<td class="num">{e(d["n_norm_outliers"])}</td>'
            f'<td class="num">{e(d["n_hotspots"])}</td><td>{e(layers)}</td>'
            f"<td>{_list(where_links)}</td><td>{_list(gain_links)}</td></tr>"
        )
    more = f'<p class="note">{len(dims) - limit} more in residual_dims.parquet.</p>'
    return (
        "<p>Dimensions of the residual stream whose evidence pooled over every tensor that reads "
        "or writes the stream is significant (Stouffer's z of each tensor's line z at the dim, "
        "over all tensors, the readers and the writers; significance = -log10 of the expected "
        "number of such dims in a model without structure), or that lines, hotspots or norm "
        "outliers touch; strongest first.</p>"
        f"<table>{head}{''.join(rows)}</table>{more if len(dims) > limit else ''}"
    )


def _list(items: list[str]) -> str:
    return f'<ul class="links">{"".join(f"<li>{i}</li>" for i in items)}</ul>' if items else ""


def render_scan_report(run: Run) -> str:
    """The whole page of a scan run. Curve figures are drawn into `run.path/images/report/`."""
    ids = anchors(run.tensors)
    parts: list[tuple[str, str, Callable[[], str]]] = [
        ("glance", "The model at a glance", lambda: glance(run, ids)),
        ("findings", "Strongest findings", lambda: findings_section(run, ids)),
        ("residual", "Residual dimensions that stand out", lambda: residual_section(run, ids)),
        (
            "norm-links",
            "Norm outliers and the lines of the matrices they feed",
            lambda: norm_links_section(_links(run)),
        ),
        ("curves", "Tensor metrics by layer", lambda: scan_figures.curves_section(run, ids)),
        ("gallery", "Tensors by layer and role", lambda: scan_figures.gallery(run, ids)),
        ("ffn", "FFN neuron geometry", lambda: scan_figures.ffn_section(run)),
        ("spectra", "Spectra", lambda: scan_figures.spectra_section(run, ids)),
        ("banding", "Weight banding (conv layers)", lambda: scan_figures.banding_section(run, ids)),
    ]
    source = run.manifest.get("source", "")
    body = f"<h1>striate scan: <code>{e(source)}</code></h1>\n" + "".join(
        section(anchor, title, build) for anchor, title, build in parts
    )
    return page(f"striate: {source}", body, toc=[(a, t) for a, t, _ in parts])


def write_report(run: Run) -> None:
    """Write `index.html` into the run directory (atomically)."""
    if run.path is None:
        raise ValueError("write_report needs a run with a directory (scan with out=...)")
    text = render_scan_report(run)
    with atomic_file(run.path / "index.html", "w") as fh:
        fh.write(text)
