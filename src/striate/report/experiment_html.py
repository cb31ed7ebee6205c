"""`index.html` of a `striate experiment` run: the claims, the figures and the summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from striate.report.claims_html import claims_table, read_claims
from striate.report.page import e, figures, local, page, pre_json, section
from striate.store import atomic_file


def _conditions(manifest: dict[str, Any]) -> str:
    items = []
    for c in manifest["conditions"]:
        folder = local(f"track/{c['checkpoints'].split('/')[-1]}/index.html")
        link = f' (<a href="{e(folder)}">its track report</a>)' if folder else ""
        items.append(f"<li>{e(c['name'])}: <code>{e(c['checkpoints'])}</code>{link}</li>")
    return f"<ul>{''.join(items)}</ul>"


def render_experiment_report(
    manifest: dict[str, Any], summary: dict[str, Any], claims: list[dict[str, Any]]
) -> str:
    title = f"striate experiment {manifest['name']} ({manifest['preset']})"
    body = (
        f"<h1>{e(title)}</h1><p>{e(manifest.get('seconds', manifest.get('wall_time_s')))} s.</p>"
        + section("conditions", "Conditions", lambda: _conditions(manifest))
        + section("claims", "Claims", lambda: claims_table(claims))
        + section("figures", "Figures", lambda: figures(manifest["figures"]))
        + section("summary", "summary.json", lambda: pre_json(summary))
        + '<p class="note">Tables: metrics.parquet, trajectories.parquet, dynamics.parquet, '
        "alignment.parquet; each condition's <code>striate track</code> run is under "
        "<code>track/</code>.</p>"
    )
    toc = [("conditions", "Conditions"), ("claims", "Claims"), ("figures", "Figures"),
           ("summary", "summary.json")]  # fmt: skip
    return page(title, body, toc=toc)


def write_experiment_report(
    out_dir: Path, manifest: dict[str, Any], summary: dict[str, Any]
) -> None:
    text = render_experiment_report(manifest, summary, read_claims(out_dir))
    with atomic_file(out_dir / "index.html", "w") as fh:
        fh.write(text)
