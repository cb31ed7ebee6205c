"""The findings of a model as a table (`findings_table`), and grouped (`finding_groups`) so the
first screen shows the tens that matter, not thousands of rows.

A trained model repeats itself: SmolLM2's residual dimension 507 is a quiet column in the FFN
inputs of all 30 layers, a loud row in their outputs, a norm outlier and a few dozen hotspots, and
each of those is a finding. Grouped, it is one line. Every finding that pins a residual dimension
joins that dimension's group; every other finding joins its tensor's group. A group is as
significant as its most significant finding.

    >>> import pandas as pd

if TYPE_CHECKING:
    from striate.analyses.finding import Finding
    from striate.anatomy import TensorAnatomy
    >>> f = pd.DataFrame({"kind": ["line", "hotspot", "line"], "tensor": ["a", "b", "c"],
    ...                   "residual_dim": [7, 7, None], "significance": [9.0, 30.0, 4.0],
    ...                   "layer": [0, 1, 2], "detail": ["x", "y", "z"]})
    >>> finding_groups(f)[["group", "n_findings", "n_tensors", "significance"]].values.tolist()
    [['residual dim 7', 2, 2, 30.0], ['c', 1, 1, 4.0]]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from striate.analyses.finding import Finding
    from striate.anatomy import TensorAnatomy

__all__ = ["FINDING_COLUMNS", "GROUP_COLUMNS", "finding_groups", "findings_table"]

#: the first columns of findings.parquet; each analysis's own fields follow
FINDING_COLUMNS = ["kind", "tensor", "index", "significance", "score", "value",
                   "residual_dim", "detail", "layer", "role"]  # fmt: skip
GROUP_COLUMNS = ["group", "residual_dim", "tensor", "n_findings", "kinds", "n_tensors", "layers",
                 "significance", "strongest"]  # fmt: skip


def finding_groups(findings: pd.DataFrame) -> pd.DataFrame:
    """One row per residual dimension and per tensor (for findings that pin no dimension).

    `findings` needs `kind, tensor, residual_dim, significance, layer, detail`. Columns:
    `group` (a label), `residual_dim` (or null), `tensor` (null for a dimension's group),
    `n_findings`, `kinds` ("165 line, 40 hotspot"), `n_tensors`, `layers` ("0-29" style),
    `significance` (the group's strongest) and `strongest` (that finding's tensor and detail).
    Ordered by significance, strongest first (null last).
    """
    if findings.empty:
        empty: pd.DataFrame = pd.DataFrame(columns=GROUP_COLUMNS)
        return empty
    if "significance" not in findings:  # a run written before findings had one
        findings = findings.assign(significance=float("nan"))
    pinned = findings["residual_dim"].notna()
    rows: list[dict[str, Any]] = []
    for dim, group in findings[pinned].groupby("residual_dim", sort=False):
        d = int(float(str(dim)))
        rows.append(_row(f"residual dim {d}", group) | {"residual_dim": d})
    for tensor, group in findings[~pinned].groupby("tensor", sort=False):
        rows.append(_row(str(tensor), group) | {"tensor": str(tensor)})
    table = pd.DataFrame(rows, columns=GROUP_COLUMNS)
    table["residual_dim"] = table["residual_dim"].astype("Int64")
    ranked: pd.DataFrame = table.sort_values(
        ["significance", "n_findings"], ascending=False, na_position="last", ignore_index=True
    )
    return ranked


def _row(label: str, group: pd.DataFrame) -> dict[str, Any]:
    counts = group["kind"].value_counts()
    sig = group["significance"]
    top = (
        group.iloc[int(np.nanargmax(sig.to_numpy(dtype=float)))]
        if sig.notna().any()
        else group.iloc[0]
    )
    return {
        "group": label,
        "residual_dim": None,
        "tensor": None,
        "n_findings": len(group),
        "kinds": ", ".join(f"{n} {kind}" for kind, n in counts.items()),
        "n_tensors": int(group["tensor"].nunique()),
        "layers": _ranges(sorted({int(x) for x in group["layer"].dropna()})),
        "significance": float(sig.max()) if sig.notna().any() else float("nan"),
        "strongest": f"{top['tensor']}: {top['detail']}",
    }


def _ranges(values: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> "0-2, 5, 7-8"."""
    parts: list[str] = []
    start = prev = None
    for v in [*values, None]:
        if v is not None and prev is not None and v == prev + 1:
            prev = v
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = v
    return ", ".join(parts)


def findings_table(findings: list[tuple[str, TensorAnatomy, Finding]]) -> pd.DataFrame:
    """Findings as a table: fixed columns first, each analysis's `extra` fields after."""
    records = []
    for tensor, part, f in findings:
        record: dict[str, Any] = {
            "kind": f.kind,
            "tensor": tensor,
            "index": [None if i is None else int(i) for i in f.index],
            "significance": float(f.significance),
            "score": float(f.score),
            "value": float(f.value),
            "residual_dim": f.residual_dim(part.residual_axis),
            "detail": f.detail,
            "layer": part.layer,
            "role": part.role,
        }
        for key, value in f.extra.items():
            record.setdefault(key, value)
        records.append(record)
    table = pd.DataFrame.from_records(records)
    if table.empty:
        table = pd.DataFrame(columns=FINDING_COLUMNS)
    for column in ("residual_dim", "layer"):
        table[column] = table[column].astype("Int64")
    ranked: pd.DataFrame = table.sort_values(
        ["significance", "score", "tensor"],
        ascending=[False, False, True],
        na_position="last",
        ignore_index=True,
    )
    return ranked
