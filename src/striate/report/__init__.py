"""The self-contained HTML reports of run directories: one `index.html` that opens from disk.

`write_report(run)` writes a scan's report, `write_diff_report(dir, manifest, tables)` a diff's;
`rebuild_report(dir)` writes any run directory's
report again (every kind of `striate.store.KINDS`) from what the directory holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from striate._lazy import exports

if TYPE_CHECKING:  # imported on first use (below): a command loads only the modules it runs
    from striate.report.diff_html import write_diff_report
    from striate.report.rebuild import rebuild_report
    from striate.report.scan_html import write_report

__getattr__ = exports(
    __name__,
    {
        "write_diff_report": "striate.report.diff_html:write_diff_report",
        "rebuild_report": "striate.report.rebuild:rebuild_report",
        "write_report": "striate.report.scan_html:write_report",
    },
)

__all__ = ["rebuild_report", "write_diff_report", "write_report"]
