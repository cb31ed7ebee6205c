"""`index.html` of a `striate lab` run: what ran, the figures, the summary and the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from striate.report.claims_html import claims_table, read_claims
from striate.report.page import e, facts, local, page, pre_json, section
from striate.store import atomic_file


def _figures(paths: list[str]) -> str:
    return "".join(
        f'<figure><img src="{e(p)}" alt="{e(p)}"><figcaption>{e(p)}</figcaption></figure>'
        if local(p)
        else f'<p class="failed">not a file of this run: {e(p)}</p>'
        for p in paths
    )


def render_lab_report(
    manifest: dict[str, Any],
    summary: dict[str, Any],
    about: str = "",
    claims: list[dict[str, Any]] | None = None,
) -> str:
    """The page of a lab run; `about`: the lab's one-line description; `claims`: claims.json."""
    title = f"striate lab {manifest['name']} ({manifest['preset']})"
    wall = manifest.get("seconds", manifest.get("wall_time_s"))  # older runs: wall_time_s
    config = manifest.get("settings", manifest.get("config"))  # older runs: config
    info = facts([("instances", manifest.get("instances")), ("seed", manifest.get("seed")),
                  ("seconds", f"{wall:.1f}" if isinstance(wall, (int, float)) else wall),
                  ("striate", manifest.get("striate_version"))])  # fmt: skip
    body = (
        f"<h1>{e(title)}</h1><p>{e(about)}</p>{info}"
        + (section("claims", "Claims", lambda: claims_table(claims)) if claims else "")
        + section("figures", "Figures", lambda: _figures(manifest["figures"]))
        + section("summary", "summary.json", lambda: pre_json(summary))
        + section("config", "config", lambda: pre_json(config))
    )
    toc = [("figures", "Figures"), ("summary", "summary.json"), ("config", "config")]
    if claims:
        toc.insert(0, ("claims", "Claims"))
    return page(title, body, toc=toc)


def write_lab_report(
    out_dir: Path, manifest: dict[str, Any], summary: dict[str, Any], about: str = ""
) -> None:
    text = render_lab_report(manifest, summary, about, read_claims(out_dir))
    with atomic_file(out_dir / "index.html", "w") as fh:
        fh.write(text)
