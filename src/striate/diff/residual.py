"""Residual dimensions: which dims of the residual stream the change from A to B moved most,
pooled across tensors as the scan pools them (`striate.analyses.residual`), and which of A's
loud or quiet dims survived in B.

Every matched tensor with a residual axis whose length is the model's hidden size gives each
dim a z in A, in B (the scan's per-tensor evidence) and in the update B - A (the z of the
update's line along the residual axis, or of a vector's |B - A|), tagged read / write / other as
the scan tags it; the z are pooled per dim with Stouffer's sum over all tensors, the readers and
the writers (`pooled_evidence`). A dim's significance is the strongest of the three sums,
-log10 of the expected number of null dims as extreme (the scan's rule), and its `rel_change`
is sqrt(sum over tensors of the update's energy on the dim / sum of A's).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from striate.analyses.residual import GROUPS, pooled_evidence
from striate.analyses.robust import expected_count
from striate.diff.compare import status
from striate.diff.config import DiffConfig

#: the columns of diff_residual.parquet
RESIDUAL_COLUMNS = [
    "residual_dim", "rel_change", "pooled_z_update", "pooled_z_update_read",
    "pooled_z_update_write", "significance_update", "pooled_z_a", "pooled_z_b",
    "significance_a", "significance_b", "n_tensors",
]  # fmt: skip

Pooled = dict[str, tuple[np.ndarray, np.ndarray]]


def strongest(pooled: Pooled) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per dim (d,): the significance of the strongest pooled sum, which sum that is (an index
    into `GROUPS`), and its z; significance NaN where no tensor judged the dim."""
    d = pooled["all"][0].size
    z = np.stack([pooled[g][0] for g in GROUPS])  # (3, d)
    with np.errstate(invalid="ignore"):
        sig = -np.asarray(expected_count(z, len(GROUPS) * d), dtype=np.float64)
    best = np.argmax(np.nan_to_num(sig, nan=-np.inf), axis=0)
    cols = np.arange(d)
    return sig[best, cols], best, z[best, cols]


def pooled_sides(evidence: list[dict[str, Any]], hidden: int | None) -> dict[str, Pooled]:
    """The pooled z of A ("a"), B ("b") and the update ("update") over the tensors whose
    evidence spans the `hidden` dims."""
    keep = [e for e in evidence if hidden and np.size(e["z_a"]) == hidden]
    sides = {}
    for side in ("a", "b", "update"):
        zs = [(e["tag"], e[f"z_{side}"]) for e in keep if e[f"z_{side}"] is not None]
        sides[side] = pooled_evidence(zs) if zs else pooled_evidence([("other", np.zeros(0))])
    return sides


def residual_table(evidence: list[dict[str, Any]], hidden: int | None) -> pd.DataFrame:
    """diff_residual.parquet: one row per residual dim, the most significant update first."""
    keep = [e for e in evidence if hidden and np.size(e["z_a"]) == hidden]
    if not keep:
        empty: pd.DataFrame = pd.DataFrame(columns=RESIDUAL_COLUMNS)
        return empty
    sides = pooled_sides(keep, hidden)
    energy_update = np.sum([e["energy_update"] for e in keep], axis=0)
    energy_a = np.sum([e["energy_a"] for e in keep], axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.sqrt(energy_update / energy_a)
    update = sides["update"]
    table = pd.DataFrame(
        {
            "residual_dim": np.arange(hidden or 0),
            "rel_change": rel,
            "pooled_z_update": update["all"][0],
            "pooled_z_update_read": update["read"][0],
            "pooled_z_update_write": update["write"][0],
            "significance_update": strongest(update)[0],
            "pooled_z_a": sides["a"]["all"][0],
            "pooled_z_b": sides["b"]["all"][0],
            "significance_a": strongest(sides["a"])[0],
            "significance_b": strongest(sides["b"])[0],
            "n_tensors": update["all"][1],
        },
        columns=RESIDUAL_COLUMNS,
    )
    order = table.assign(_s=table["significance_update"].fillna(-np.inf),
                         _r=table["rel_change"].fillna(-np.inf))  # fmt: skip
    ranked: pd.DataFrame = order.sort_values(
        ["_s", "_r", "residual_dim"], ascending=[False, False, True], ignore_index=True
    ).drop(columns=["_s", "_r"])
    return ranked


def residual_findings(
    evidence: list[dict[str, Any]], hidden: int | None, config: DiffConfig
) -> list[dict[str, Any]]:
    """Rows of diff_findings of kind "residual_dim": each dim significant in A (the scan's
    alpha, `scan.residual.alpha`) with its pooled z in B in the same sum, and each dim
    significant only in B ("new"); see `striate.diff.compare` for the status rule."""
    sides = pooled_sides(evidence, hidden)
    if not sides["a"]["all"][0].size:
        return []
    threshold = -math.log10(config.scan.residual.alpha)
    sig_a, group_a, z_a = strongest(sides["a"])
    sig_b, group_b, z_b = strongest(sides["b"])
    z_of = {side: np.stack([sides[side][g][0] for g in GROUPS]) for side in ("a", "b")}
    rows = []
    for dim in range(sig_a.size):
        in_a, in_b = bool(sig_a[dim] >= threshold), bool(sig_b[dim] >= threshold)
        if not (in_a or in_b):
            continue
        group = int(group_a[dim] if in_a else group_b[dim])
        value_a, value_b = float(z_of["a"][group, dim]), float(z_of["b"][group, dim])
        kept = value_b / value_a if in_a and value_a else math.nan
        verdict = status(kept, in_b, config.compare) if in_a else "new"
        rows.append(
            {
                "kind": "residual_dim",
                "tensor": None,
                "tensor_b": None,
                "index": [dim],
                "residual_dim": dim,
                "layer": None,
                "role": None,
                "status": verdict,
                "value_a": value_a,
                "value_b": value_b,
                "rel_change": (value_b - value_a) / abs(value_a) if value_a else math.nan,
                "retention": kept,
                "found_in_a": in_a,
                "found_in_b": in_b,
                "significance_a": float(sig_a[dim]),
                "significance_b": float(sig_b[dim]),
                "score_a": abs(float(z_a[dim])),
                "score_b": abs(float(z_b[dim])),
                "block_error_ratio": math.nan,
                "detail": f"residual dim {dim}: pooled z ({GROUPS[group]}) {value_a:.3g} in A, "
                f"{value_b:.3g} in B",
            }
        )
    return rows
