"""A diff: its tables in memory (`DiffRun`) and in its run directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from striate import store
from striate.diff.blocks import BLOCK_COLUMNS
from striate.diff.compare import FINDING_COLUMNS, STATUSES
from striate.diff.matching import UNMATCHED_COLUMNS
from striate.diff.pair import COLUMNS

#: DiffRun attribute -> file name (without .parquet) in the run directory
TABLES = {"tensors": "diff", "findings": "diff_findings", "blocks": "diff_blocks",
          "unmatched": "diff_unmatched", "residual": "diff_residual"}  # fmt: skip
_INTS = ("layer", "block_size", "block_axis", "n_findings_a", "n_findings_b", "n_kept",
         "n_weakened", "n_lost", "n_new", "residual_dim")  # fmt: skip


@dataclass(repr=False)
class DiffRun:
    """What `striate.diff` returns; `DiffRun.load(dir)` reads a diff's run directory back.

    `tensors` (diff.parquet): one row per matched tensor; `findings` (diff_findings.parquet):
    A's findings and B's new ones with their status; `blocks` (diff_blocks.parquet): the
    quantization view; `unmatched` (diff_unmatched.parquet): tensors without a counterpart and
    why; `residual` (diff_residual.parquet): one row per residual dim; `manifest`: both models,
    settings, timing and per-tensor status. Columns: the `striate.diff` docstring.
    """

    path: Path | None
    manifest: dict[str, Any]
    tensors: pd.DataFrame
    findings: pd.DataFrame
    blocks: pd.DataFrame
    unmatched: pd.DataFrame
    residual: pd.DataFrame

    @classmethod
    def load(cls, path: str | Path) -> DiffRun:
        run_dir = Path(path)
        tables = {attr: store.read_table(run_dir, name) for attr, name in TABLES.items()}
        return cls(run_dir, store.read_manifest(run_dir), **tables)

    def write(self) -> None:
        """Write the tables, then the manifest, into `path` (atomically, file by file)."""
        assert self.path is not None
        for attr, name in TABLES.items():
            store.write_table(self.path / f"{name}.parquet", getattr(self, attr))
        store.write_json(self.path / "manifest.json", self.manifest)

    def report_tables(self) -> dict[str, pd.DataFrame]:
        """The tables by file name (without .parquet), as the report reads them."""
        return {name: getattr(self, attr) for attr, name in TABLES.items()}

    @property
    def failed(self) -> dict[str, str]:
        """Matched tensors that could not be read or compared, with their errors."""
        statuses = self.manifest.get("tensors", {})
        return {n: s.get("error", "") for n, s in statuses.items() if s.get("status") == "failed"}

    def __repr__(self) -> str:
        m = self.manifest
        counts = {str(k): int(v) for k, v in self.findings["status"].value_counts().items()}
        found = ", ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES)
        where = "in memory" if self.path is None else str(self.path)
        return (
            f"<striate.DiffRun of {m.get('source', '?')} vs {m.get('b', {}).get('source', '?')}: "
            f"{len(self.tensors)} tensors compared, {len(self.failed)} failed, "
            f"{len(self.unmatched)} unmatched; findings {found}; {where}>"
        )


def _ints(table: pd.DataFrame) -> pd.DataFrame:
    for column in _INTS:
        if column in table:
            table[column] = table[column].astype("Int64")
    return table


def assemble(
    path: Path | None,
    manifest: dict[str, Any],
    rows: list[dict[str, Any]],
    findings: list[dict[str, Any]],
    blocks: list[dict[str, Any]],
    unmatched: list[dict[str, Any]],
    residual: pd.DataFrame,
) -> DiffRun:
    """The tables of a diff from its records: tensors in A's order, findings by status (lost,
    weakened, new, kept) then significance, blocks by error ratio."""
    tensors = _ints(pd.DataFrame.from_records(rows, columns=COLUMNS))
    table = _ints(pd.DataFrame.from_records(findings, columns=FINDING_COLUMNS))
    if len(table):
        rank = table["status"].map({s: i for i, s in enumerate(STATUSES)})
        strength = table["significance_a"].fillna(table["significance_b"]).fillna(-np.inf)
        order = np.lexsort((table["tensor"].fillna("").to_numpy(), -strength.to_numpy(), rank))
        table = table.iloc[order].reset_index(drop=True)
    block_table = _ints(pd.DataFrame.from_records(blocks, columns=BLOCK_COLUMNS))
    if len(block_table):
        block_table = block_table.sort_values(
            "error_ratio", ascending=False, na_position="last", ignore_index=True, kind="stable"
        )
    missing = pd.DataFrame.from_records(unmatched, columns=UNMATCHED_COLUMNS)
    return DiffRun(path, manifest, tensors, table, block_table, missing, _ints(residual))
