"""What `striate diff` prints: both models, the tensors that changed most, the findings that
did not survive, the worst quantization blocks, and where the report is. Names from the files
are printed as text, never as rich markup."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from striate.diff.compare import STATUSES
from striate.diff.run import DiffRun
from striate.display import scan_time
from striate.terminal import cell

TOP = 8  # rows of each table


def _index(index: Any) -> str:
    if index is None or (isinstance(index, float) and math.isnan(index)):
        return ""
    return "[" + ", ".join(":" if i is None or pd.isna(i) else str(int(i)) for i in index) + "]"


def _table(title: str, frame: pd.DataFrame, columns: dict[str, str]) -> Table:
    """The `columns` (column -> heading) of `frame` as a rich table; every cell plain text."""
    grid = Table(title=title, title_justify="left")
    for heading in columns.values():
        grid.add_column(heading, overflow="fold")
    for record in frame.to_dict("records"):
        values = [_index(record.get(c)) if c == "index" else cell(record.get(c)) for c in columns]
        grid.add_row(*(Text(v) for v in values))
    return grid


def _model(side: dict[str, Any]) -> str:
    return f"{escape(str(side.get('source')))} ({side.get('family')}, {side.get('format')})"


def print_diff_summary(console: Console, run: DiffRun) -> None:
    """The terminal summary of a diff (the report has everything)."""
    m = run.manifest
    counts = run.findings["status"].value_counts()
    found = ", ".join(f"{int(counts.get(s, 0))} {s}" for s in STATUSES)
    console.print(
        f"[bold]A[/bold] {_model(m.get('a', {}))} → [bold]B[/bold] {_model(m.get('b', {}))}; "
        f"names matched by {m.get('name_mapping')}",
        highlight=False,
    )
    console.print(
        f"{len(run.tensors)} tensors compared in {scan_time(m)}, {len(run.failed)} failed, "
        f"{len(run.unmatched)} unmatched; findings: {found}",
        highlight=False,
    )
    changed = run.tensors[pd.to_numeric(run.tensors["rel_change"], errors="coerce") > 0]
    top = changed.sort_values("rel_change", ascending=False, kind="stable").head(TOP)
    columns = {
        "name": "tensor",
        "role": "role",
        "layer": "layer",
        "dtype_b": "B dtype",
        "rel_change": "rel_change",
        "cosine": "cosine",
        "update_effective_rank": "update eff. rank",
        "top_k_overlap": "top-k overlap",
    }
    if len(top):
        console.print(_table(f"Largest changes ({len(changed)} of {len(run.tensors)} tensors "
                             "changed)", top, columns))  # fmt: skip
    else:
        console.print("No tensor changed.")
    lost = run.findings[run.findings["status"] != "kept"].head(TOP)
    if len(lost):
        columns = {"status": "status", "kind": "kind", "tensor": "tensor", "index": "index",
                   "value_a": "A", "value_b": "B", "retention": "retention"}  # fmt: skip
        console.print(_table("Findings not kept (lost, weakened, new; strongest first)", lost,
                             columns))  # fmt: skip
    blocks = run.blocks[pd.to_numeric(run.blocks["others_error"], errors="coerce") > 0].head(
        TOP // 2
    )
    if len(blocks):
        columns = {"tensor": "tensor", "kind": "kind", "index": "index",
                   "block_format": "block", "value_a": "A", "value_b": "B",
                   "others_zeroed": "mates zeroed", "error_ratio": "error ratio"}  # fmt: skip
        console.print(_table("Worst blocks (block-mates' error / median block error)", blocks,
                             columns))  # fmt: skip
    for name, error in run.failed.items():
        console.print(f"[red]failed[/red] {escape(name)}: {escape(error)}", highlight=False)
    if run.path is not None:
        console.print(f"report: {(run.path / 'index.html').resolve()}", markup=False,
                      highlight=False)  # fmt: skip
    reused = int((m.get("cache") or {}).get("reused", 0))
    if reused and run.path is not None:
        console.print(f"{reused} of {len(run.tensors)} pairs from the cache in "
                      f"{run.path / '.striate-cache'} (--no-resume recomputes them)",
                      highlight=False)  # fmt: skip
