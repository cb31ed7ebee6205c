"""`index.html` of a one-analysis run (`striate spectra`, `ffn`, `banding`): figures and table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from striate.report.page import e, facts, figures, page, pre_json, section, table
from striate.store import atomic_file

#: by kind: (title, the table the page shows, its columns)
PASSES = {
    "spectra": ("Spectra of the matrices", "tensors",
                ["name", "role", "layer", "shape", "spectral_norm", "stable_rank",
                 "effective_rank", "alpha", "alpha_ks", "n_spikes", "spectrum_skipped"]),
    "ffn": ("FFN neuron geometry by layer", "ffn_layers",
            ["layer", "n_neurons", "in_norm_mean", "out_norm_mean", "bias_mean",
             "alignment_mean", "bimodality", "n_clusters", "in_similarity_mean",
             "out_similarity_mean"]),
    "banding": ("Banding of the conv layers", "banding",
                ["tensor", "layer", "out", "in", "kh", "kw", "banding_score", "banding_z",
                 "banding_direction", "skipped"]),
}  # fmt: skip


def render_pass_report(manifest: dict[str, Any], rows: pd.DataFrame) -> str:
    """The page of a `spectra`, `ffn` or `banding` run; `rows` is its main table."""
    kind = str(manifest.get("kind"))
    heading, name, columns = PASSES[kind]
    title = f"striate {kind}: {manifest.get('source')}"
    failed = {n: s.get("error") for n, s in (manifest.get("tensors") or {}).items()
              if s.get("status") == "failed"}  # fmt: skip
    about = facts([("model", manifest.get("source")), ("rows", len(rows)),
                   ("failed tensors", len(failed)), ("seconds", manifest.get("seconds")),
                   ("striate", manifest.get("striate_version"))])  # fmt: skip
    paths = manifest.get("figures") or []
    if isinstance(paths, dict):
        paths = [p for group in paths.values() for p in group]
    shown = [c for c in columns if c in rows.columns] or list(rows.columns)
    body = (
        f"<h1>{e(title)}</h1>{about}"
        + section("figures", "Figures", lambda: figures(paths))
        + section("table", heading, lambda: table(rows, shown))
        + (section("failed", "Failed tensors", lambda: pre_json(failed)) if failed else "")
        + section("settings", "Settings", lambda: pre_json(manifest.get("settings")))
        + f'<p class="note">Table: {e(name)}.parquet (every column).</p>'
    )
    toc = [("figures", "Figures"), ("table", heading), ("settings", "Settings")]
    return page(title, body, toc=toc)


def write_pass_report(out_dir: Path, manifest: dict[str, Any]) -> None:
    """Write `out_dir/index.html` for a `spectra`, `ffn` or `banding` run from its manifest and
    main table."""
    _, name, _ = PASSES[str(manifest.get("kind"))]
    path = out_dir / f"{name}.parquet"
    rows = pd.read_parquet(path) if path.is_file() else pd.DataFrame()
    with atomic_file(out_dir / "index.html", "w") as fh:
        fh.write(render_pass_report(manifest, rows))
