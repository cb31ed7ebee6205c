"""The page shell every report shares: escaping, inlined CSS/JS, sections that fail alone.

Each report is one HTML file that opens from disk: the CSS and JS are package data
(`report/static/`) inlined into the page, images are linked relative to the run directory, and
data for the script sits in `<script type="application/json">` blocks escaped so that no name can
close the block. Every text that comes from a file goes through `e` (or `json_block`).

    >>> e('<img src=x onerror="alert(1)">')
    '&lt;img src=x onerror=&quot;alert(1)&quot;&gt;'
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from importlib import resources
from typing import Any

import pandas as pd

from striate._version import __version__


def e(value: Any) -> str:
    """`value` as HTML text (attribute-safe): None and missing values become ''."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(str(value), quote=True)


def json_block(element_id: str, data: Any) -> str:
    """`data` as a `<script type="application/json">` block that no string inside can end:
    `<`, `>` and `&` are written as JSON escapes (`\\u003c` ...), which JSON.parse reads back."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return f'<script type="application/json" id="{e(element_id)}">{text}</script>'


@cache
def static(name: str) -> str:
    """A package data file of `striate/report/static/`, as text."""
    return (resources.files("striate.report") / "static" / name).read_text(encoding="utf-8")


def page(title: str, body: str, *, toc: Sequence[tuple[str, str]] = ()) -> str:
    """The whole document: `title` and `body` (already HTML); `toc`: (anchor id, label) links."""
    links = "".join(f'<a href="#{e(anchor)}">{e(label)}</a>' for anchor, label in toc)
    nav = f'<nav class="toc">{links}</nav>' if links else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="striate {e(__version__)}">'
        f"<title>{e(title)}</title><style>{static('report.css')}</style></head>\n"
        f"<body>{nav}{body}\n<script>{static('report.js')}</script></body></html>\n"
    )


def section(anchor: str, title: str, build: Callable[[], str]) -> str:
    """`<section>` with a heading and what `build` returns; if `build` raises, a placeholder
    with its error stands in and the rest of the page still renders."""
    try:
        content = build()
    except Exception as exc:  # one broken section must not lose the report
        content = failed(f"section {title} could not be built", exc)
    return f'<section id="{e(anchor)}"><h2>{e(title)}</h2>\n{content}</section>\n'


def failed(what: str, exc: BaseException) -> str:
    return f'<div class="failed">{e(what)}: {e(type(exc).__name__)}: {e(exc)}</div>'


def number(value: Any) -> str:
    """A table cell: floats to 4 significant digits, right-aligned; lists joined; others text."""
    if isinstance(value, float) and math.isfinite(value):
        return f'<td class="num">{value:.4g}</td>'
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return f'<td class="num">{value}</td>'
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        items = value.tolist() if hasattr(value, "tolist") else value
        return f"<td>{e(', '.join(map(str, items)))}</td>"
    return f"<td>{e(value)}</td>"


def table(frame: pd.DataFrame, columns: Iterable[str], limit: int = 200) -> str:
    """The `columns` of `frame` that exist, as an HTML table of at most `limit` rows."""
    present = [c for c in columns if c in frame.columns]
    head = "".join(f"<th>{e(c)}</th>" for c in present)
    rows = [
        "<tr>" + "".join(number(_plain(v)) for v in record) + "</tr>"
        for record in frame[present].head(limit).itertuples(index=False, name=None)
    ]
    more = ""
    if len(frame) > limit:
        more = f'<p class="note">{len(frame) - limit} more rows in the Parquet table.</p>'
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>{more}"


def _plain(value: Any) -> Any:
    """NumPy scalars to Python ones (a cell formats them by their Python type)."""
    return value.item() if hasattr(value, "item") and not hasattr(value, "__len__") else value


def local(path: Any) -> str | None:
    """`path` if it is a relative path inside the run directory (no scheme, not absolute, no
    `..`), else None: a report links only to its own files, whatever a table says."""
    if not isinstance(path, str) or not path or _SCHEME.match(path) or path.startswith(("/", "\\")):
        return None
    return None if ".." in path.replace("\\", "/").split("/") else path


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def figures(paths: Iterable[str]) -> str:
    """Images of the run directory (relative paths), each linked to itself."""
    items = "".join(
        f'<a href="{e(p)}"><img loading="lazy" src="{e(p)}" alt="{e(p)}"></a>'
        if local(p)
        else f'<p class="failed">not a file of this run: {e(p)}</p>'
        for p in paths
    )
    return f'<div class="figures">{items}</div>' if items else '<p class="note">No figures.</p>'


def pre_json(data: Any) -> str:
    """`data` as indented JSON in a `<pre>` block (escaped)."""
    return f"<pre>{e(json.dumps(data, indent=1, default=str))}</pre>"


def facts(pairs: Iterable[tuple[str, Any]]) -> str:
    """A two-column table of labels and values."""
    rows = "".join(f"<tr><th>{e(k)}</th>{number(_plain(v))}</tr>" for k, v in pairs)
    return f'<table class="facts">{rows}</table>'


def fact_cards(pairs: Iterable[tuple[str, Any]]) -> str:
    """Labels and values as a row of small cards that wraps (a compact `facts`); pairs whose
    value is None or '' are left out. Values are text (escaped), labels above them.

    >>> fact_cards([("layers", 6), ("heads", None), ("format", "<b>")])
    '<dl class="cards"><div><dt>layers</dt><dd>6</dd></div><div>...<dd>&lt;b&gt;</dd></div></dl>'
    """
    items = "".join(
        f"<div><dt>{e(k)}</dt><dd>{e(v)}</dd></div>" for k, v in pairs if e(_plain(v)) != ""
    )
    return f'<dl class="cards">{items}</dl>'
