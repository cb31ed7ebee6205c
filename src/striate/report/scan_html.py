"""`index.html` of a `striate scan` run. Its first screen is the answer: the model's facts, the
strongest finding groups with their tensors' images, the residual dimensions that stand out and
the metrics by layer; below it every finding (a paged, filterable table), the residual
dimensions in full, norm links, curves, the tensor gallery, FFN geometry, spectra and banding.

Each section is built by its own function through `page.section`, so a section that fails shows
its error and the others still render. Tensors are addressed by their position in
tensors.parquet (`#t-17`), never by their names, so any name makes a valid anchor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache
from typing import Any

import pandas as pd

from striate.analyses.findings import FINDING_COLUMNS
from striate.analyses.norm_links import norm_links
from striate.display import SummaryTable, findings_summary, scan_time
from striate.report import scan_figures
from striate.report.norm_links_html import norm_links_section
from striate.report.page import e, fact_cards, json_block, local, page, section, table
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
FIRST_GROUPS = 8  # finding groups on the first screen, each with its strongest tensor's image
FIRST_DIMS = 8  # residual dimensions on the first screen
GROUPS = 30  # finding groups listed above the table of every finding


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
    """The model's facts as one compact block; failed tensors, with their errors, folded."""
    m, t = run.manifest, run.tensors
    params = (
        int(pd.to_numeric(t["numel"], errors="coerce").fillna(0).sum()) if "numel" in t else None
    )
    items = [
        ("format", m.get("format")), ("family", m.get("family")),
        ("parameters", f"{params:,}" if params is not None else None),
        ("layers", m.get("n_layers")), ("hidden size", m.get("hidden_size")),
        ("attention heads", m.get("n_heads")), ("tensors", len(t)),
        ("findings", len(run.findings)), ("scan time", scan_time(m)),
        ("failed tensors", len(run.failed)), ("striate", m.get("striate_version")),
        ("started", m.get("started")),
    ]  # fmt: skip
    parts = [fact_cards(items)]
    if run.failed:
        entries = "".join(
            f"<li>{tensor_link(name, ids)}: {e(error)}</li>" for name, error in run.failed.items()
        )
        parts.append(
            f'<details id="failed" class="failed"><summary>{len(run.failed)} failed tensors'
            f'</summary><ul class="failed">{entries}</ul></details>'
        )
    return "".join(parts)


def strongest_tensor(strongest: str, names: list[str]) -> str | None:
    """The tensor a group's `strongest` cell ("tensor: detail") names; `names` longest first,
    so a name that begins another (`a.b` and `a.b: x`) is matched whole."""
    return next((n for n in names if strongest.startswith(f"{n}: ")), None)


def _summary(run: Run, name: str, top: int) -> SummaryTable | None:
    return next((t for t in findings_summary(run, top=top) if t.name == name), None)


def _cell(text: str) -> str:
    try:
        float(text)
    except ValueError:
        return f"<td>{e(text)}</td>"
    return f'<td class="num">{e(text)}</td>'


def top_groups(run: Run, ids: dict[str, str], top: int = FIRST_GROUPS) -> str:
    """The strongest finding groups (`display.findings_summary`), each with the image of the
    tensor of its strongest finding, linked to that tensor in the gallery."""
    groups = _summary(run, "groups", top)
    if groups is None:
        return '<p class="note">No findings.</p>'
    names = sorted(ids, key=len, reverse=True)
    images = (
        dict(zip(run.tensors["name"].astype(str), run.tensors["image"], strict=True))
        if ("image" in run.tensors and "name" in run.tensors)
        else {}
    )
    head = groups.head
    at, label, kinds = head.index("strongest"), head.index("group"), head.index("findings")
    rest = [i for i in range(len(head)) if i not in (at, label, kinds)]
    rows = []
    for cells in groups.rows:
        tensor = strongest_tensor(cells[at], names)
        image = local(images.get(tensor)) if tensor else None
        thumb = (
            f'<a href="#{ids[tensor]}"><img class="thumb" src="{e(image)}" alt="{e(tensor)}" '
            f'title="{e(tensor)}"></a>'
            if tensor and image
            else '<span class="note">no image</span>'
        )
        where = (
            f"{tensor_link(tensor, ids)}: {e(cells[at][len(tensor) + 2 :])}"
            if tensor
            else e(cells[at])
        )
        rows.append(
            f'<tr><td>{thumb}</td><td class="group">{e(cells[label])}'
            f'<div class="note">{e(cells[kinds])}</div></td>'
            + "".join(_cell(cells[i]) for i in rest)
            + f'<td class="where">{where}</td></tr>'
        )
    th = "".join(f"<th>{e(head[i])}</th>" for i in rest)
    return (
        f'<table id="top-groups-table"><tr><th>image</th><th>{e(head[label])}: '
        f"{e(head[kinds])}</th>{th}<th>{e(head[at])}</th></tr>{''.join(rows)}</table>"
        f'<p class="note">The {len(groups.rows)} strongest of {groups.total} groups of '
        f"{len(run.findings)} findings (significance = -log10 of the expected number in a "
        'tensor without structure); <a href="#findings">every finding</a>.</p>'
    )


def top_residual(run: Run, top: int = FIRST_DIMS) -> str:
    """The residual dimensions that stand out most (`display.findings_summary`), each linked to
    its row in the full table."""
    dims = _summary(run, "dims", top)
    if dims is None:
        return '<p class="note">No finding pins a residual dimension.</p>'
    rows = "".join(
        f'<tr><td class="num"><a href="#dim-{e(cells[0])}">{e(cells[0])}</a></td>'
        + "".join(_cell(c) for c in cells[1:])
        + "</tr>"
        for cells in dims.rows
    )
    head = "".join(f"<th>{e(h)}</th>" for h in dims.head)
    return (
        f'<div class="scroll"><table id="top-residual-table"><tr>{head}</tr>{rows}</table></div>'
        f'<p class="note">{len(dims.rows)} of {dims.total}, pooled z over every tensor that '
        'reads or writes the stream; <a href="#residual">all, with their tensors</a>.</p>'
    )


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
        '<div id="findings-pager" class="pager"><button type="button" id="findings-prev">'
        '&#9664; previous</button><span id="findings-page" class="note"></span>'
        '<button type="button" id="findings-next">next &#9654;</button></div>'
    )
    static = run.findings.assign(index=run.findings["index"].map(index_text))
    fallback = table(static, REPORT_COLUMNS, limit=100) if len(static) else ""
    grouped = ""
    groups = _summary(run, "groups", GROUPS)
    if groups is not None:
        grouped = (
            f"<p>{len(rows)} findings in {groups.total} groups: every finding that pins a "
            "residual dimension joins that dimension's group, every other its tensor's; a group "
            "is as significant as its strongest finding (significance = -log10 of the expected "
            "number of such findings in a tensor without structure).</p>"
            f"<details><summary>The {len(groups.rows)} strongest groups</summary>"
            + table(pd.DataFrame(groups.rows, columns=groups.head), groups.head)
            + "</details>"
        )
    return (
        grouped + f"<p>All {len(rows)} findings, most significant first, 100 a page; click a "
        "header to sort, a tensor to see it.</p>"
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
            f'<tr id="dim-{e(d["residual_dim"])}"><td class="num">{e(d["residual_dim"])}</td>'
            f"<td>{e(d.get('direction') or '')}</td>"
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


#: the sections of the first screen, side by side from 900 px: (anchor, title) per column
FIRST_SCREEN = (
    (("top-groups", "Strongest finding groups"),),
    (("top-residual", "Residual dimensions that stand out"),
     ("top-curves", "Tensor metrics by layer")),
)  # fmt: skip


def render_scan_report(run: Run) -> str:
    """The whole page of a scan run. Curve figures are drawn into `run.path/images/report/`."""
    ids = anchors(run.tensors)
    drawn = cache(lambda: scan_figures.curve_figures(run))  # the first screen's and the section's
    first: dict[str, Callable[[], str]] = {
        "top-groups": lambda: top_groups(run, ids),
        "top-residual": lambda: top_residual(run),
        "top-curves": lambda: scan_figures.curve_thumbnails(run, drawn),
    }
    parts: list[tuple[str, str, str, Callable[[], str]]] = [
        ("findings", "Every finding", "Findings", lambda: findings_section(run, ids)),
        ("residual", "Residual dimensions that stand out", "Residual dims",
         lambda: residual_section(run, ids)),
        ("norm-links", "Norm outliers and the lines of the matrices they feed", "Norm links",
         lambda: norm_links_section(_links(run))),
        ("curves", "Tensor metrics by layer", "Metrics by layer",
         lambda: scan_figures.curves_section(run, ids, drawn)),
        ("gallery", "Tensors by layer and role", "Tensors",
         lambda: scan_figures.gallery(run, ids)),
        ("ffn", "FFN neuron geometry", "FFN", lambda: scan_figures.ffn_section(run)),
        ("spectra", "Spectra", "Spectra", lambda: scan_figures.spectra_section(run, ids)),
        ("banding", "Weight banding (conv layers)", "Banding",
         lambda: scan_figures.banding_section(run, ids)),
    ]  # fmt: skip
    columns = "".join(
        '<div class="column">'
        + "".join(section(anchor, title, first[anchor]) for anchor, title in column)
        + "</div>"
        for column in FIRST_SCREEN
    )
    source = run.manifest.get("source", "")
    body = (
        f"<h1>striate scan: <code>{e(source)}</code></h1>\n"
        + section("glance", "The model at a glance", lambda: glance(run, ids))
        + f'<div class="first-screen">{columns}</div>\n'
        + "".join(section(anchor, title, build) for anchor, title, _, build in parts)
    )
    toc = [("glance", "At a glance"), *((a, label) for a, _, label, _ in parts)]
    return page(f"striate: {source}", body, toc=toc)


def write_report(run: Run) -> None:
    """Write `index.html` into the run directory (atomically)."""
    if run.path is None:
        raise ValueError("write_report needs a run with a directory (scan with out=...)")
    text = render_scan_report(run)
    with atomic_file(run.path / "index.html", "w") as fh:
        fh.write(text)
