"""What the `striate` command prints: run summaries that fit the terminal, cells, claims.

The numbers come from `striate.display.findings_summary`, the one summary the notebook and the
report show too; this module only lays them out for a terminal of a given width.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from striate.report.claims_html import read_claims, spread

if TYPE_CHECKING:
    from striate.display import SummaryTable
    from striate.run import Run


def report_path(run: Run) -> str:
    return str((run.path / "index.html").resolve()) if run.path is not None else "-"


def print_scan_line(console: Console, run: Run) -> None:
    from striate.display import scan_time  # pandas and matplotlib: only when a scan is shown

    m = run.manifest
    console.print(
        f"[bold]{m['source']}[/bold]: {m['family']} model, {len(run.tensors)} tensors in "
        f"{scan_time(m)}; {len(run.findings)} findings, {len(run.failed)} failed tensors; "
        f"report: {report_path(run)}",
        highlight=False,
    )


def print_scan_summary(console: Console, run: Run) -> None:
    from striate.display import findings_summary, scan_time

    m = run.manifest
    console.print(
        f"[bold]{m['family']}[/bold] model, {len(run.tensors)} tensors in {scan_time(m)}; "
        f"{len(run.findings)} findings, {len(run.failed)} failed tensors",
        highlight=False,
    )
    for summary in findings_summary(run):
        console.print(summary_table(summary, console.width))
    for name, error in run.failed.items():
        console.print(f"[red]failed[/red] {name}: {error}", highlight=False)
    if run.path is not None:
        console.print(f"report: {report_path(run)}", highlight=False)


#: columns a narrow terminal drops first, in order
_DROPPABLE = ("layers", "tensors", "findings", "z reads", "z writes", "lines", "norm outliers",
              "hotspots")  # fmt: skip
#: columns that may end in an ellipsis, with their narrowest width
_SHRINKABLE = {"findings": 12, "strongest": 16}
_SHORT_HEAD = {"significance": "signif."}


def summary_table(summary: SummaryTable, width: int) -> Table:
    """`summary` as a table at most `width` columns wide (when its names fit at all): names are
    never broken, the details end in an ellipsis, and the least needed columns go first."""
    head = [_SHORT_HEAD.get(h, h) for h in summary.head]
    widest = [max([len(h), *(len(r[i]) for r in summary.rows)]) for i, h in enumerate(head)]
    narrowest = [min(w, _SHRINKABLE.get(h, w)) for w, h in zip(widest, summary.head, strict=True)]
    keep = list(range(len(head)))

    def needs(widths: list[int]) -> int:  # each column is padded by 1 a side, plus borders
        return sum(widths[i] + 3 for i in keep) + 1

    for name in _DROPPABLE:
        if needs(narrowest) <= width:
            break
        if name in summary.head:
            keep.remove(summary.head.index(name))
    widths, slack = list(narrowest), width - needs(narrowest)
    for i in reversed(keep):  # what is left goes to the shortened columns, the last first
        grow = max(0, min(slack, widest[i] - widths[i]))
        widths[i], slack = widths[i] + grow, slack - grow
    table = Table(title=summary.title, title_justify="left")
    for i in keep:
        table.add_column(head[i], width=widths[i], no_wrap=True, overflow="ellipsis")
    for row in summary.rows:
        table.add_row(*(row[i] for i in keep))
    return table


def cell(value: object) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.3g}"
    return "" if value is None else str(value)


def print_claims(console: Console, path: Path) -> None:
    """The claims of a run's claims.json, one line each (verdict, claim, its measure over the
    seeds, the criterion), and where its report is."""
    marks = {"met": "[green]met[/]", "mixed": "[yellow]mixed[/]", "not met": "[red]not met[/]"}
    for row in read_claims(path):
        console.print(
            f"{marks.get(row['verdict'], row['verdict'])}  {row['id']}: {spread(row)} "
            f"[dim](criterion: {row['criterion']})[/]",
            highlight=False,
        )
    console.print(f"report: {path / 'index.html'}", highlight=False)
