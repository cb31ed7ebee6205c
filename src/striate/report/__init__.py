"""The self-contained HTML reports of run directories: one `index.html` that opens from disk.

`write_report(run)` writes a scan's report, `write_diff_report(dir, manifest, tables)` a diff's;
`rebuild_report(dir)` writes any run directory's
report again (every kind of `striate.store.KINDS`) from what the directory holds.
"""

from striate.report.diff_html import write_diff_report
from striate.report.rebuild import rebuild_report
from striate.report.scan_html import write_report

__all__ = ["rebuild_report", "write_diff_report", "write_report"]
