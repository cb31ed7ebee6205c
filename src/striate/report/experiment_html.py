"""`index.html` of a `striate experiment` run: the claims, the figures and the summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from striate.report.html import _STYLE, _e, _figures
from striate.store import atomic_file


def write_experiment_report(
    out_dir: Path, manifest: dict[str, Any], summary: dict[str, Any]
) -> None:
    claims = summary.get("claims", {})
    rows = "".join(
        f"<tr><td>{_e(k)}</td><td>{'yes' if v is True else 'no' if v is False else _e(v)}</td></tr>"
        for k, v in claims.items()
    )
    conditions = "".join(
        f"<li>{_e(c['name'])}: <code>{_e(c['checkpoints'])}</code></li>"
        for c in manifest["conditions"]
    )
    body = (
        f"<h1>striate experiment {_e(manifest['name'])} ({_e(manifest['preset'])})</h1>"
        f"<p>{_e(manifest['wall_time_s'])} s. Conditions:</p><ul>{conditions}</ul>"
        f"<h2>Claims</h2><table><tr><th>claim</th><th>holds here</th></tr>{rows}</table>"
        f"<h2>Figures</h2>{_figures(manifest['figures'])}"
        f"<h2>summary.json</h2><pre>{_e(json.dumps(summary, indent=1))}</pre>"
        "<p>Tables: metrics.parquet, trajectories.parquet, dynamics.parquet, alignment.parquet; "
        "each condition's <code>striate track</code> run is under <code>track/</code>.</p>"
    )
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>striate experiment {_e(manifest['name'])}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )
    with atomic_file(out_dir / "index.html", "w") as fh:
        fh.write(page)
