"""Notebook display: `show(x)` draws any tensor inline as the image a scan writes for it.

`show` takes a numpy array (any dtype), a torch tensor, a nested list, or a checkpoint tensor by
name, and returns a `Shown`: the PNG, and a one-line summary of the values (shape, dtype, range,
mean, std over the finite values only, and how many are NaN / Inf). Jupyter displays it through
`_repr_html_` (image and summary) or `_repr_png_`; a terminal prints the summary. A checkpoint
tensor is drawn the way `striate scan` draws it: its anatomy (role, layout, residual axis) and
attention head boundaries, and the findings of a scan when given, so the pixels are the report's.

    >>> import numpy as np, striate
    >>> shown = striate.show(np.array([[1.0, np.nan], [3.0, -np.inf]]), "w")
    >>> shown
    w: shape (2, 2) · float64 · range [1, 3] · mean 2 · std 1 · 1 NaN · 1 Inf
    >>> shown.png[:4]
    b'\\x89PNG'

`Run._repr_html_` (a scan's summary with its strongest findings and residual dimensions) is
built here too, by `run_html`.
"""

from __future__ import annotations

import base64
import html
import math
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from striate.analyses.finding import Finding
from striate.analyses.findings import FINDING_COLUMNS, finding_groups
from striate.analyses.stats import summary_stats
from striate.anatomy import anatomy_of
from striate.anatomy.heads import head_counts
from striate.checkpoint import Checkpoint, open_checkpoint
from striate.errors import StriateError
from striate.render import MAX_PIXELS, render_part, render_tensor

if TYPE_CHECKING:
    from striate.run import Run

__all__ = ["Shown", "SummaryTable", "findings_summary", "run_html", "scan_time", "show"]

TOP_ROWS = 10  # findings and residual dimensions in a run's HTML


@dataclass(frozen=True, repr=False)
class Shown:
    """A tensor as drawn by `show`: its PNG and the statistics of its values.

    `min, max, mean, std` (population, ddof = 0) are over the finite values only, NaN when there
    are none; `n_nan` and `n_inf` count what was left out. `dtype` is the type as given (for a
    checkpoint tensor, as stored: 'BF16', 'Q4_1', ...); the image is of its float32 values.
    """

    name: str | None
    shape: tuple[int, ...]
    dtype: str
    numel: int
    min: float
    max: float
    mean: float
    std: float
    n_nan: int
    n_inf: int
    png: bytes

    @property
    def summary(self) -> str:
        """One line: name, shape, dtype, range, mean, std, NaN and Inf counts."""
        shape = "(" + ", ".join(str(n) for n in self.shape) + ("," if len(self.shape) == 1 else "")
        parts = [f"shape {shape})", self.dtype]
        n_finite = self.numel - self.n_nan - self.n_inf
        if self.numel == 0:
            parts.append("empty")
        elif n_finite == 0:
            parts.append("no finite values")
        elif self.numel == 1:
            parts.append(f"value {_number(self.min)}")
        else:
            parts += [
                f"range [{_number(self.min)}, {_number(self.max)}]",
                f"mean {_number(self.mean)}",
                f"std {_number(self.std)}",
            ]
        if self.numel > 0:
            parts += [f"{self.n_nan} NaN", f"{self.n_inf} Inf"]
        line = " · ".join(parts)
        return line if self.name is None else f"{self.name}: {line}"

    def __repr__(self) -> str:
        return self.summary

    __str__ = __repr__

    def _repr_png_(self) -> bytes:
        return self.png

    def _repr_html_(self) -> str:
        data = base64.b64encode(self.png).decode("ascii")
        alt = html.escape(self.name or "tensor")
        return (
            f'<div class="striate-show"><img src="data:image/png;base64,{data}" alt="{alt}" '
            f'style="max-width:100%"><div><code>{html.escape(self.summary)}</code></div></div>'
        )


def show(
    x: Any,
    name: str | None = None,
    *,
    model: str | Path | Checkpoint | None = None,
    findings: Sequence[Finding] | pd.DataFrame = (),
    max_pixels: int = MAX_PIXELS,
) -> Shown:
    """Draw `x` as striate's tensor image, with a summary of its values.

    `x` is a numpy array (any rank and dtype), a torch tensor (detached, moved to the CPU,
    bfloat16 / float8 widened to float32), a nested list, or the name of a tensor in `model`
    (a path, folder, `sample:NAME`, hub id or open `Checkpoint`); `show(ckpt, "tensor.name")`
    reads the same. `name` titles an array. A checkpoint tensor is drawn with its anatomy and
    head boundaries, exactly as `striate scan` draws it; `findings` (a run's findings table, or
    this tensor's `Finding`s) are marked on it. `max_pixels` is the longest side after
    outlier-preserving downsampling.

        >>> striate.show("h.0.mlp.c_fc.weight", model="gpt2.safetensors")   # doctest: +SKIP
    """
    if isinstance(x, Checkpoint):
        if name is None:
            raise StriateError("show(checkpoint, name) needs the tensor name", path=x.path)
        return _show_tensor(x, name, findings, max_pixels)
    if isinstance(x, str) and model is not None:
        if name is not None:
            raise StriateError(
                f"show({x!r}, {name!r}, model=...) names the tensor twice",
                hint=f"use show({x!r}, model=...)",
            )
        if isinstance(model, Checkpoint):
            return _show_tensor(model, x, findings, max_pixels)
        with open_checkpoint(model) as ckpt:
            return _show_tensor(ckpt, x, findings, max_pixels)
    if isinstance(x, (str, Path)):
        raise StriateError(
            f"show({str(x)!r}): a tensor is shown by name only with the model it is in",
            hint="use striate.show('tensor.name', model='path/or/sample:NAME')",
        )
    a, dtype = _as_array(x, name)
    title = name or "tensor"
    marks = _findings_of(findings, title)

    def draw(path: Path) -> None:
        render_tensor(a, path, title=title, findings=marks, max_pixels=max_pixels)

    return _shown(name, a, dtype, draw)


def _show_tensor(
    ckpt: Checkpoint, name: str, findings: Sequence[Finding] | pd.DataFrame, max_pixels: int
) -> Shown:
    """A checkpoint tensor, drawn as the scan draws it (`striate.render.render_part`)."""
    w = ckpt.read(name)
    part = anatomy_of(ckpt)[name]
    heads = head_counts(ckpt)
    marks = _findings_of(findings, name)
    return _shown(
        name,
        w,
        ckpt.info(name).dtype,
        lambda path: render_part(w, path, part, marks, heads, max_pixels=max_pixels),
    )


def _as_array(x: Any, name: str | None) -> tuple[np.ndarray, str]:
    """`x` as a numpy array (no copy when it is one) and the name of its dtype as given."""
    torch = sys.modules.get("torch")  # a torch tensor exists only if torch is imported
    if torch is not None and isinstance(x, torch.Tensor):
        t = x.detach().cpu().resolve_conj().resolve_neg()
        dtype = str(t.dtype).removeprefix("torch.")
        try:
            return t.numpy(), dtype
        except TypeError:  # bfloat16, float8: numpy has no such type
            return t.float().numpy(), dtype
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise StriateError(
            f"cannot draw an array of dtype {a.dtype}",
            tensor=name,
            hint="show real numbers: e.g. abs(x) or x.real for a complex array",
        )
    return a, str(a.dtype)


def _shown(name: str | None, a: np.ndarray, dtype: str, draw: Callable[[Path], None]) -> Shown:
    """Draw into a temporary directory (the renderer writes files atomically), read it back."""
    with tempfile.TemporaryDirectory(prefix="striate-show-") as tmp:
        path = Path(tmp) / "tensor.png"
        draw(path)
        png = path.read_bytes()
    st = summary_stats(a)
    return Shown(name, tuple(int(n) for n in a.shape), dtype, int(a.size), st["min"], st["max"],
                 st["mean"], st["std"], int(st["n_nan"]), int(st["n_inf"]), png)  # fmt: skip


def _number(v: float) -> str:
    """Whole numbers in full (an int tensor's range), others to 4 significant digits."""
    return str(int(v)) if v.is_integer() and abs(v) < 1e9 else f"{v:.4g}"


def _findings_of(findings: Sequence[Finding] | pd.DataFrame, tensor: str) -> list[Finding]:
    """This tensor's findings: as given, or rebuilt from the rows of a findings table."""
    if not isinstance(findings, pd.DataFrame):
        return list(findings)
    if findings.empty:
        return []
    extra_columns = [c for c in findings.columns if c not in FINDING_COLUMNS]
    out = []
    for row in findings[findings["tensor"] == tensor].to_dict("records"):
        extra = {c: row[c] for c in extra_columns if isinstance(row[c], (int, float, str))}
        out.append(
            Finding(
                kind=str(row["kind"]),
                index=tuple(None if v is None or pd.isna(v) else int(v) for v in row["index"]),
                score=float(row["score"]),
                value=float(row["value"]),
                detail=str(row["detail"]),
                extra={
                    c: v for c, v in extra.items() if not (isinstance(v, float) and math.isnan(v))
                },
            )
        )
    return out


def scan_time(manifest: dict[str, Any]) -> str:
    """A run's wall time, and how many tensors' results it took from the cache: a rescan that
    reused every result says so instead of passing off 0.6 s as the analysis. Plain text.

    >>> scan_time({"seconds": 0.61, "cache": {"reused": 104, "computed": 0}})
    '0.61 s (104 of 104 tensors from the cache)'
    """
    seconds = manifest.get("seconds")
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return "" if seconds is None else str(seconds)
    text = f"{seconds:.2g} s" if seconds < 1 else f"{seconds:,.1f} s"
    counts = manifest.get("cache") or {}
    reused, computed = int(counts.get("reused") or 0), int(counts.get("computed") or 0)
    if reused:
        text += f" ({reused} of {reused + computed} tensors from the cache)"
    return text


@dataclass(frozen=True)
class SummaryTable:
    """One table of a run's summary as text cells, for the terminal, a notebook or the report."""

    name: str  # "groups" or "dims"
    title: str
    head: list[str]
    rows: list[list[str]]
    total: int  # rows of the whole table; `rows` are its first


def findings_summary(run: Run, top: int = TOP_ROWS) -> list[SummaryTable]:
    """What a scan found, strongest first: the finding groups (`finding_groups`) and the
    residual dimensions, `top` rows each; tables with no rows are left out. The terminal
    summary, the notebook view and the report all show these."""
    tables = []
    groups = finding_groups(run.findings)
    if len(groups):
        rows = [
            [str(g["group"]), str(g["kinds"]), str(g["n_tensors"]), str(g["layers"]),
             _cell(g["significance"]), str(g["strongest"])]
            for g in groups.head(top).to_dict("records")
        ]  # fmt: skip
        title = (
            f"strongest of {len(groups)} finding groups ({len(run.findings)} findings; by "
            "residual dim, else by tensor; significance = -log10 expected in noise)"
        )
        head = ["group", "findings", "tensors", "layers", "significance", "strongest"]
        tables.append(SummaryTable("groups", title, head, rows, len(groups)))
    dims = run.residual_dims
    if len(dims):
        rows = [
            [str(d["residual_dim"]), str(d.get("direction") or ""),
             *(_cell(d.get(c)) for c in ("significance", "pooled_z", "pooled_z_read",
                                         "pooled_z_write")),
             str(d.get("n_tensors_pooled", "")), str(d["n_lines"]), str(d["n_norm_outliers"]),
             str(d["n_hotspots"])]
            for d in dims.head(top).to_dict("records")
        ]  # fmt: skip
        title = "residual dimensions, evidence pooled over every tensor (Stouffer z)"
        head = ["dim", "direction", "significance", "pooled z", "z reads", "z writes",
                "tensors", "lines", "norm outliers", "hotspots"]  # fmt: skip
        tables.append(SummaryTable("dims", title, head, rows, len(dims)))
    return tables


def run_html(run: Run) -> str:
    """A compact HTML summary of a scan run: source, counts, strongest findings and dimensions."""
    m = run.manifest
    n_params = sum(int(np.prod(s)) for s in run.tensors.get("shape", []))
    failed = run.failed
    facts = [
        ("source", str(m.get("source", "?"))),
        ("format", str(m.get("format", "?"))),
        ("family", str(m.get("family", "?"))),
        ("tensors", f"{len(run.tensors):,}"),
        ("parameters", f"{n_params:,}"),
        ("findings", f"{len(run.findings):,}"),
        ("scan time", scan_time(m)),
        (
            "failures",
            str(len(failed)) + "".join(f"; {n}: {e}" for n, e in list(failed.items())[:3]),
        ),
    ]
    title = "striate run" + ("" if run.path is None else f" · {run.path}")
    parts = [
        '<div class="striate-run">',
        f"<b>{html.escape(title)}</b>",
        _table(None, [[k, v] for k, v in facts]),
    ]
    tables = findings_summary(run)
    for t in tables:
        parts.append(f"<b>{html.escape(t.title)}</b> ({len(t.rows)} of {t.total})")
        parts.append(_table(t.head, t.rows))
    if not tables or tables[0].name != "groups":
        parts.append("<i>no findings</i>")
    parts.append("</div>")
    return "\n".join(parts)


def _table(head: list[str] | None, rows: list[list[str]]) -> str:
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    th = (
        ""
        if head is None
        else "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
    )
    return f'<table style="font-size:smaller">{th}{cells}</table>'


def _cell(v: Any) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.3g}" if isinstance(v, float) else str(v)
