"""A run: the tables, manifest and images of one scan, in memory and in its directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from striate import store
from striate.analyses.findings import findings_table
from striate.analyses.residual import ResidualConfig, residual_dims

if TYPE_CHECKING:
    import numpy as np

    from striate.analyses.finding import Finding
    from striate.anatomy import TensorAnatomy
    from striate.display import Shown


@dataclass(repr=False)
class Run:
    """What `striate.scan` returns; `Run.load(dir)` reads a run directory back.

    `tensors`: one row per tensor; `findings`: one row per finding, strongest first;
    `residual_dims`: one row per residual dimension any finding touches; `manifest`: source,
    settings, timing and per-tensor status. Columns are documented in the README.
    """

    path: Path | None
    manifest: dict[str, Any]
    tensors: pd.DataFrame
    findings: pd.DataFrame
    residual_dims: pd.DataFrame
    ffn: pd.DataFrame = field(default_factory=pd.DataFrame)
    ffn_layers: pd.DataFrame = field(default_factory=pd.DataFrame)
    spectra: pd.DataFrame = field(default_factory=pd.DataFrame)
    norm_links: pd.DataFrame = field(default_factory=pd.DataFrame)

    @classmethod
    def load(cls, path: str | Path) -> Run:
        run_dir = Path(path)
        tables = {name: store.read_table(run_dir, name) for name in store.TABLES}
        for name in store.OPTIONAL_TABLES:
            if (run_dir / f"{name}.parquet").is_file():
                tables[name] = store.read_table(run_dir, name)
        return cls(run_dir, store.read_manifest(run_dir), **tables)

    @property
    def failed(self) -> dict[str, str]:
        """Tensors that failed, with their errors."""
        return {
            name: status.get("error", "")
            for name, status in self.manifest.get("tensors", {}).items()
            if status.get("status") == "failed"
        }

    def show(self, name: str, *, max_pixels: int | None = None) -> Shown:
        """Tensor `name` of the scanned model, drawn as the report draws it, findings marked.

        Reads the tensor again from `manifest["source"]`; `max_pixels` defaults to the scan's.
        """
        from striate.display import show
        from striate.errors import StriateError

        source = self.manifest.get("source")
        if source is None:
            raise StriateError("this run does not record its source model", path=self.path)
        if max_pixels is None:
            max_pixels = int(
                self.manifest.get("settings", {}).get("images", {}).get("max_pixels", 1024)
            )
        return show(name, model=source, findings=self.findings, max_pixels=max_pixels)

    def __repr__(self) -> str:
        from striate.display import scan_time

        m = self.manifest
        where = "in memory" if self.path is None else str(self.path)
        return (
            f"<striate.Run of {m.get('source', '?')} ({m.get('family', '?')}): "
            f"{len(self.tensors)} tensors, {len(self.findings)} findings, "
            f"{len(self.failed)} failed, {scan_time(m) or '?'}; {where}>"
        )

    def __str__(self) -> str:
        """The repr, then the strongest finding groups and residual dimensions, a line each:
        what `print(run)` shows in a terminal."""
        from striate.display import findings_summary

        lines = [repr(self)]
        for table in findings_summary(self, top=5):
            lines.append(f"{table.title.split(' (')[0]} (top {len(table.rows)} of {table.total}):")
            for row in table.rows:
                c = dict(zip(table.head, row, strict=True))
                if table.name == "groups":
                    lines.append(
                        f"  {c['group']}: {c['findings']}; significance {c['significance']}"
                    )
                else:
                    lines.append(f"  dim {c['dim']} {c['direction']}: significance "
                                 f"{c['significance']}, pooled z {c['pooled z']}")  # fmt: skip
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from striate.display import run_html

        return run_html(self)


def assemble(
    rows: list[dict[str, Any]],
    findings: list[tuple[str, TensorAnatomy, Finding]],
    manifest: dict[str, Any],
    out_dir: Path | None,
    pooled: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    residual: ResidualConfig | None = None,
) -> Run:
    tensors = pd.DataFrame.from_records(rows)
    for column in ("layer", "residual_axis"):
        if column in tensors:
            tensors[column] = tensors[column].astype("Int64")
    counts = pd.Series([t for t, _, _ in findings], dtype=object).value_counts()
    tensors["n_findings"] = tensors["name"].map(counts).fillna(0).astype(int)
    table = findings_table(findings)
    return Run(out_dir, manifest, tensors, table, residual_dims(table, pooled, residual))


def write_run(run: Run) -> None:
    """Write the tables and manifest of `run` into `run.path` (atomically, file by file)."""
    assert run.path is not None
    for name in store.TABLES:
        store.write_table(run.path / f"{name}.parquet", getattr(run, name))
    for name in store.OPTIONAL_TABLES:
        table = getattr(run, name)
        if not table.empty:
            store.write_table(run.path / f"{name}.parquet", table)
    store.write_json(run.path / "manifest.json", run.manifest)
