"""The claims of a reproduction (its claims.json) as text and as an HTML table: the numbers
formatted once, for the run's index.html, the terminal and the generated pages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from striate.report.page import e, figures, page, pre_json, section
from striate.store import atomic_file, read_json


def read_claims(run: Path) -> list[dict[str, Any]]:
    """A run's claims.json; [] for a run written before the contract (or without claims)."""
    path = run / "claims.json"
    if not path.is_file():
        return []
    rows: list[dict[str, Any]] = read_json(path)
    return rows


def spread(row: Mapping[str, Any], digits: int = 3) -> str:
    """A claim's value as text: `0.31 ± 0.04 (3 seeds)`, `3 of 3 seeds` for yes/no measures,
    `undefined` when no seed has it.

    >>> spread({"op": ">=", "mean": 0.3123, "sd": 0.04, "n_seeds": 3, "per_seed": [1, 1, 1]})
    '0.312 ± 0.04 (3 seeds)'
    >>> spread({"op": "true", "mean": 0.5, "sd": 0.7, "n_seeds": 2, "per_seed": [1.0, 0.0]})
    'yes in 1 of 2 seeds'
    """
    n = int(row["n_seeds"])
    if row["op"] == "true":
        yes = sum(1 for v in row["per_seed"] if v is not None and v >= 0.5)
        return f"yes in {yes} of {n} seed{'s' * (n != 1)}"
    if row["mean"] is None:
        return "undefined in every seed"
    missing = sum(v is None for v in row["per_seed"])
    text = number(row["mean"], digits)
    if n > 1:
        text += f" ± {number(row['sd'], digits)} ({n} seeds"
        text += f", undefined in {missing})" if missing else ")"
    return text


def number(x: float | None, digits: int = 3) -> str:
    """`x` with `digits` significant digits, thousands separated; `—` for None.

    >>> number(12345.6), number(0.000123456), number(None)
    ('12,346', '0.000123', '—')
    """
    if x is None:
        return "—"
    if x != 0 and abs(x) >= 10 ** (digits - 1):
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def claims_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """claims.json as an HTML table: claim, criterion, every seed, mean ± sd, verdict."""
    if not rows:
        return "<p>This run wrote no claims.json.</p>"
    body = "".join(
        f"<tr><td><b>{e(r['id'])}</b><br>{e(r['statement'])}</td><td><code>{e(r['criterion'])}"
        f"</code><br><small>{e(r['measure'])}</small></td>"
        f"<td>{e(', '.join(number(v) for v in r['per_seed']))}</td><td>{e(spread(r))}</td>"
        f'<td class="verdict">{e(r["verdict"])}</td></tr>'
        for r in rows
    )
    head = "".join(f"<th>{h}</th>" for h in ("claim", "criterion", "per seed", "mean ± sd",
                                              "verdict"))  # fmt: skip
    head = f"<tr>{head}</tr>"
    return f"<table>{head}{body}</table>"


def render_seeds_report(manifest: dict[str, Any], claims: list[dict[str, Any]]) -> str:
    """The page of a run over several seeds: its claims decided over them, the figures that
    draw every seed, and a link to each seed's own run and report."""
    seeds = manifest.get("seeds") or []
    title = (
        f"striate {manifest['kind']} {manifest['name']} ({manifest['preset']}, {len(seeds)} seeds)"
    )
    links = "".join(
        f'<li><a href="{e(seed_dir(s))}/index.html">seed {e(s)}</a></li>' for s in seeds
    )
    body = (
        f"<h1>{e(title)}</h1><p>{e(manifest.get('about', ''))}</p>"
        + f"<p>{e(manifest.get('seconds'))} s.</p>"
        + section("claims", "Claims", lambda: claims_table(claims))
        + section("figures", "Figures", lambda: figures(manifest["figures"]))
        + section("seeds", "Seeds", lambda: f"<ul>{links}</ul>")
        + section("settings", "settings", lambda: pre_json(manifest.get("settings")))
    )
    toc = [("claims", "Claims"), ("figures", "Figures"), ("seeds", "Seeds"),
           ("settings", "settings")]  # fmt: skip
    return page(title, body, toc=toc)


def seed_dir(seed: Any) -> str:
    """The folder of one seed's run inside a run over seeds: `seeds/seed_002`."""
    return f"seeds/seed_{int(seed):03d}"


def write_seeds_report(out_dir: Path, manifest: dict[str, Any]) -> None:
    text = render_seeds_report(manifest, read_claims(out_dir))
    with atomic_file(out_dir / "index.html", "w") as fh:
        fh.write(text)


__all__ = [
    "claims_table",
    "number",
    "read_claims",
    "render_seeds_report",
    "seed_dir",
    "spread",
    "write_seeds_report",
]
