"""Residual dimensions across the model: do the lines line up with the norm-gain outliers?"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: finding kinds that pin a residual dimension and count toward its score
RESIDUAL_KINDS = ("line", "hotspot", "norm_outlier")

COLUMNS = [
    "residual_dim", "score", "n_tensors", "n_lines", "n_norm_outliers", "n_hotspots",
    "n_layers", "layers", "max_score", "tensors",
]  # fmt: skip


def residual_dims(findings: pd.DataFrame) -> pd.DataFrame:
    """One row per residual dimension that any line, hotspot or norm outlier touches.

    `findings` has at least the columns `kind, tensor, layer, score, residual_dim`.
    Columns: `n_lines` / `n_norm_outliers` / `n_hotspots` count the distinct tensors with a
    finding of that kind at the dimension; `n_tensors` the distinct tensors with any;
    `layers` the sorted layer indices involved; `max_score` the strongest finding there; and
    `score` = sum over those tensors of log10(1 + the tensor's strongest score there), so a
    dimension that stands out in many tensors ranks above one extreme weight. Strongest first.
    """
    if findings.empty:
        return _empty()
    pinned = findings[findings["kind"].isin(RESIDUAL_KINDS) & findings["residual_dim"].notna()]
    if pinned.empty:
        return _empty()
    pinned = pinned.assign(residual_dim=pinned["residual_dim"].astype(np.int64))
    rows = []
    for dim, group in pinned.groupby("residual_dim", sort=False):
        per_tensor = group.groupby("tensor")["score"].max()
        layers = sorted({int(x) for x in group["layer"].dropna()})
        rows.append(
            {
                "residual_dim": int(str(dim)),
                "score": float(np.log10(1.0 + per_tensor.to_numpy()).sum()),
                "n_tensors": int(per_tensor.size),
                "n_lines": _tensors_with(group, "line"),
                "n_norm_outliers": _tensors_with(group, "norm_outlier"),
                "n_hotspots": _tensors_with(group, "hotspot"),
                "n_layers": len(layers),
                "layers": layers,
                "max_score": float(group["score"].max()),
                "tensors": sorted(per_tensor.index.astype(str)),
            }
        )
    table = pd.DataFrame(rows, columns=COLUMNS)
    ranked: pd.DataFrame = table.sort_values(
        ["score", "residual_dim"], ascending=[False, True], ignore_index=True
    )
    return ranked


def _empty() -> pd.DataFrame:
    empty: pd.DataFrame = pd.DataFrame(columns=COLUMNS)
    return empty


def _tensors_with(group: pd.DataFrame, kind: str) -> int:
    return int(group.loc[group["kind"] == kind, "tensor"].nunique())
