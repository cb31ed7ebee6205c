"""`striate view DIR` on a diff run: A, B and B - A of every compared tensor, side by side.

B is shown in A's coordinates under A's names, as the diff compared it (`diff.matching`: GGUF
names translated, a Conv1D transpose or llama.cpp's q/k row permutation undone), so the three
pictures line up cell for cell. The findings are the diff's (diff_findings.parquet): each is
listed as "STATUS KIND" (`lost hotspot`), marked on A's picture where A's analysis reports it
and on B's where B's does; the viewer opens on the first (the most significant lost one). The
residual-dims tab lists the dims whose update is most significant (diff_residual.parquet).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from striate.anatomy import anatomy_of
from striate.diff.matching import Pair, match_tensors, model_heads, to_a
from striate.errors import StriateError
from striate.render.view import TensorView
from striate.store import read_manifest, read_table
from striate.viewer.specimen import Entry, Specimen, finding_record, jsonable

RESIDUAL_DIMS = 50  # dims listed in the residual tab, the most significant change first


def model_source(side: dict[str, Any]) -> str:
    """Where one model of the diff is: the path it was read from if it is still there, else
    what was given (`sample:NAME`, a hub id)."""
    path = side.get("path")
    if isinstance(path, str) and path and Path(path).exists():
        return path
    source = side.get("source")
    if not isinstance(source, str) or not source:
        raise StriateError("the diff's manifest names no model (a, b: source, path)")
    return source


def viewer_findings(findings: pd.DataFrame) -> pd.DataFrame:
    """The diff's findings in the viewer's columns: kind "STATUS KIND", the significance, score
    and value of A (of B for a new finding), the status in the detail; findings without a tensor
    (residual dims) are left to the residual tab."""
    if findings.empty:
        empty: pd.DataFrame = pd.DataFrame(columns=["kind", "tensor", "index", "found_in_a",
                                                    "found_in_b"])  # fmt: skip
        return empty
    f: pd.DataFrame = findings[findings["tensor"].notna()].reset_index(drop=True)
    a_side = f["found_in_a"].astype(bool) | (f["status"] != "new")

    def pick(column: str) -> pd.Series:
        picked: pd.Series = f[f"{column}_a"].where(a_side, f[f"{column}_b"])
        return picked

    detail = [
        f"{s}: {d} (A {_num(va)}, B {_num(vb)})"
        for s, d, va, vb in zip(f["status"], f["detail"], f["value_a"], f["value_b"], strict=True)
    ]
    shown: pd.DataFrame = f.assign(
        kind=f["status"] + " " + f["kind"], significance=pick("significance"),
        score=pick("score"), value=pick("value"), detail=detail,
    )  # fmt: skip
    return shown


def _num(value: Any) -> str:
    v = jsonable(value)
    return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


class DiffSide(Specimen):
    """One model of a diff run, with the diff's findings marked where `side` ("a" or "b")
    reports them."""

    def __init__(
        self,
        source: str,
        label: str,
        findings: pd.DataFrame,
        residual: pd.DataFrame,
        side: str,
        *,
        cache_bytes: int = 1 << 30,
    ) -> None:
        super().__init__(source, cache_bytes=cache_bytes)
        self.label = label
        self.diff_findings, self.residual, self.side = findings, residual, side

    @property
    def findings(self) -> pd.DataFrame:
        return self.diff_findings

    def tensor_findings(self, name: str, view: TensorView) -> list[dict[str, Any]]:
        f = self.diff_findings
        if f.empty:
            return []
        here = f[(f["tensor"] == name) & f[f"found_in_{self.side}"].astype(bool)]
        return [finding_record(row, view) for _, row in here.iterrows()]

    def strongest_finding(self) -> dict[str, Any] | None:
        """The first finding of the diff's order (lost, weakened, new, kept; the most
        significant first) in a tensor that both models have."""
        for _, row in self.diff_findings.iterrows():
            name = str(row["tensor"])
            if name in self.entries:
                return finding_record(row, self.view(name))
        return None

    def residual_dims(self) -> list[dict[str, Any]]:
        """The dims whose update is most significant, with the diff's findings pinned there."""
        r, f = self.residual.head(RESIDUAL_DIMS), self.diff_findings
        rows = []
        for d in r.to_dict("records"):
            here = f[f["residual_dim"] == d["residual_dim"]] if "residual_dim" in f else f[:0]
            kinds = here["kind"].str.split(" ").str[-1] if len(here) else pd.Series(dtype=str)
            rows.append({
                "residual_dim": jsonable(d["residual_dim"]), "direction": None,
                "significance": jsonable(d.get("significance_update")),
                "pooled_z": jsonable(d.get("pooled_z_update")),
                "n_tensors": jsonable(d.get("n_tensors")),
                "n_lines": int((kinds == "line").sum()),
                "n_norm_outliers": int((kinds == "norm_outlier").sum()),
                "n_hotspots": int((kinds == "hotspot").sum()),
                "tensors": sorted({str(t) for t in here["tensor"]}),
            })  # fmt: skip
        return rows


class PairedSide(DiffSide):
    """Model B of a diff run under A's names, its values in A's coordinates."""

    def __init__(self, source: str, label: str, a: DiffSide, *, cache_bytes: int = 1 << 30) -> None:
        super().__init__(source, label, a.diff_findings, a.residual, "b", cache_bytes=cache_bytes)
        found = match_tensors(a.ckpt, self.ckpt, a.anatomy, anatomy_of(self.ckpt),
                              model_heads(a.ckpt, self.ckpt))  # fmt: skip
        self.pairs: dict[str, Pair] = {p.name: p for p in found.pairs}
        self.entries = {
            p.name: Entry(p.name, p.info_a.shape, p.info_b.dtype, a.entries[p.name].part)
            for p in found.pairs
        }

    def values(self, name: str) -> np.ndarray:
        pair = self.pairs[name]
        with self._read_lock:
            w = self.ckpt.read(pair.name_b)
        return np.ascontiguousarray(to_a(w, pair))


def open_diff_run(path: Path, *, cache_bytes: int = 1 << 30) -> tuple[DiffSide, PairedSide]:
    """A and B of the diff run in `path`, ready for `create_app(a, b, b_minus_a=True)`."""
    manifest = read_manifest(path)
    try:
        findings = viewer_findings(read_table(path, "diff_findings"))
        residual = read_table(path, "diff_residual")
    except (OSError, ValueError) as exc:
        message = f"cannot read the diff tables: {type(exc).__name__}: {exc}".replace("\n", " ")
        raise StriateError(message, path=path) from None
    sides = {k: manifest.get(k) or {} for k in ("a", "b")}
    a = DiffSide(model_source(sides["a"]), str(sides["a"].get("source")), findings, residual, "a",
                 cache_bytes=cache_bytes)  # fmt: skip
    b = PairedSide(model_source(sides["b"]), str(sides["b"].get("source")), a,
                   cache_bytes=cache_bytes)  # fmt: skip
    return a, b
