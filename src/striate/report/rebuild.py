"""`rebuild_report`: write a run directory's `index.html` again from what the directory holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from striate.errors import StriateError
from striate.report.claims_html import write_seeds_report
from striate.report.diff_html import read_tables, write_diff_report
from striate.report.experiment_html import write_experiment_report
from striate.report.lab_html import write_lab_report
from striate.report.pass_html import write_pass_report
from striate.report.scan_html import write_report
from striate.report.track_html import write_track_report
from striate.run import Run
from striate.store import KINDS, read_manifest


def run_kind(run_dir: Path) -> tuple[str, dict[str, Any]]:
    """The kind of run in `run_dir` (one of KINDS) and its manifest; a StriateError naming the
    directory when it is not a striate run directory."""
    hint = f"give a directory written by striate {', '.join(KINDS)}"
    if not (run_dir / "manifest.json").is_file():
        raise StriateError("not a striate run directory: no manifest.json", path=run_dir, hint=hint)
    try:
        manifest = read_manifest(run_dir)
    except (OSError, ValueError) as exc:
        message = f"manifest.json cannot be read: {type(exc).__name__}: {exc}".replace("\n", " ")
        raise StriateError(message, path=run_dir, hint=hint) from None
    kind = manifest.get("kind") if isinstance(manifest, dict) else None
    if kind is None and isinstance(manifest, dict) and (run_dir / "tensors.parquet").is_file():
        kind = "scan"  # written before manifests said their kind
    if kind not in KINDS:
        raise StriateError(f"manifest.json names no known run kind ({kind!r})", path=run_dir,
                           hint=hint)  # fmt: skip
    return str(kind), manifest


def rebuild_report(run_dir: str | Path) -> Path:
    """Write `run_dir/index.html` again (atomically) for a run of any kind (`store.KINDS`),
    from its manifest and tables; return the page's path.

    Raises StriateError (one line, naming the directory) when `run_dir` is not a run directory.
    """
    folder = Path(run_dir)
    kind, manifest = run_kind(folder)
    if kind == "scan":
        try:
            run = Run.load(folder)
        except (OSError, ValueError) as exc:
            message = f"cannot read the scan tables: {type(exc).__name__}: {exc}"
            raise StriateError(message.replace("\n", " "), path=folder) from None
        write_report(run)
    elif kind in ("spectra", "ffn", "banding"):
        write_pass_report(folder, manifest)
    elif kind == "track":
        names = folder / "trajectories.parquet"
        trajectories = (
            pd.read_parquet(names, columns=["name"]) if names.is_file() else pd.DataFrame()
        )
        write_track_report(folder, manifest, trajectories)
    elif kind == "diff":
        try:
            tables = read_tables(folder)
        except (OSError, ValueError) as exc:
            message = f"cannot read the diff tables: {type(exc).__name__}: {exc}"
            raise StriateError(message.replace("\n", " "), path=folder) from None
        write_diff_report(folder, manifest, tables)
    elif kind in ("experiment", "lab") and manifest.get("seeds"):
        write_seeds_report(folder, manifest)
    elif kind == "experiment":
        write_experiment_report(folder, manifest, _summary(folder))
    else:
        write_lab_report(folder, manifest, _summary(folder), str(manifest.get("about") or ""))
    return folder / "index.html"


def _summary(folder: Path) -> dict[str, Any]:
    path = folder / "summary.json"
    if not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
