"""`index.html` of a `striate track` run: the checkpoints and the figures, self-contained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from striate.report.page import e, facts, figures, local, page, section
from striate.store import atomic_file


def _checkpoints(manifest: dict[str, Any]) -> str:
    rows = []
    for c in manifest["checkpoints"]:
        scan = local(f"cache/{c['cache']}/index.html") if c.get("cache") else None
        link = f'<a href="{e(scan)}">its scan</a>' if scan else ""
        rows.append(
            f'<tr><td class="num">{e(c["step"])}</td><td><code>{e(c["path"])}</code></td>'
            f"<td>{link}</td></tr>"
        )
    return f"<table><tr><th>step</th><th>path</th><th></th></tr>{''.join(rows)}</table>"


def render_track_report(manifest: dict[str, Any], n_tensors: int) -> str:
    """The page of a track run; `n_tensors`: distinct tensor names in trajectories.parquet."""
    n = len(manifest["checkpoints"])
    title = f"striate track: {n} checkpoints, {n_tensors} tensors"
    about = facts([("checkpoints", n), ("tensors", n_tensors),
                   ("metrics file", manifest.get("metrics_file")),
                   ("striate", manifest.get("striate_version"))])  # fmt: skip
    body = (
        f"<h1>{e(title)}</h1>{about}"
        + section("checkpoints", "Checkpoints", lambda: _checkpoints(manifest))
        + section("figures", "Figures", lambda: figures(manifest["figures"]))
        + '<p class="note">Tables: trajectories.parquet, dynamics.parquet, alignment.parquet.</p>'
    )
    return page(title, body, toc=[("checkpoints", "Checkpoints"), ("figures", "Figures")])


def write_track_report(out_dir: Path, manifest: dict[str, Any], trajectories: pd.DataFrame) -> None:
    n_tensors = int(trajectories["name"].nunique()) if "name" in trajectories else 0
    text = render_track_report(manifest, n_tensors)
    with atomic_file(out_dir / "index.html", "w") as fh:
        fh.write(text)
