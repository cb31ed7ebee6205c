"""`index.html` of a `striate track` run: the checkpoints and the figures, self-contained."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd

from striate.report.html import _STYLE, _figures
from striate.store import atomic_file


def write_track_report(out_dir: Path, manifest: dict[str, Any], trajectories: pd.DataFrame) -> None:
    rows = "".join(
        f"<tr><td>{c['step']}</td><td>{html.escape(c['path'])}</td></tr>"
        for c in manifest["checkpoints"]
    )
    n_tensors = trajectories["name"].nunique() if "name" in trajectories else 0
    body = (
        f"<h1>striate track: {len(manifest['checkpoints'])} checkpoints, {n_tensors} tensors</h1>"
        f"<h2>Checkpoints</h2><table><tr><th>step</th><th>path</th></tr>{rows}</table>"
        f"<h2>Figures</h2>{_figures(manifest['figures'])}"
        "<p>Tables: trajectories.parquet, dynamics.parquet, alignment.parquet.</p>"
    )
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>striate track</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )
    with atomic_file(out_dir / "index.html", "w") as fh:
        fh.write(page)
