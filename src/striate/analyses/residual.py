"""Residual dimensions across the model: evidence pooled over every tensor that touches the stream.

Two kinds of evidence meet here, per dimension d of the residual stream (the hidden basis):

- **Pooled line statistics.** Every tensor that reads or writes the stream (the anatomy knows its
  residual axis: attention and FFN matrices, embeddings, norm gains and biases, biases written
  into the stream) gives each dim a signed z: a matrix the z of its line along the residual axis
  (`striate.analyses.lines.line_z`), a vector the robust z of |x| (`vector_z`). Stouffer's
  combination of the T tensors that judged dim d,

      pooled_z_d = sum_t z_td / sqrt(T_d),

  is N(0, 1) for a model without structure (each z is, and independent tensors add), so a dim
  that is 1.2x in every matrix, a line in none, adds up to a large pooled z. The same sum is also
  taken over the matrices that read the stream alone (`pooled_z_read`: attention inputs, FFN
  inputs, heads) and over those that write it (`pooled_z_write`: attention and FFN outputs,
  embeddings), because a dim can be written loudly and read quietly (MiniLM's dim 99: the rows of
  its FFN outputs are loud, the columns of its value projections 0.1x), and the two cancel in
  the sum over all. `significance` is the strongest of the three, -log10 of the expected number
  of null dims at least as extreme, 3 * 2 * d * Phi(-|z|); the dim is significant when that
  expected number is at most `ResidualConfig.alpha`. `direction` is the sign of that strongest
  z (`loud` / `quiet`), or `mixed` when reads and writes are both significant with opposite
  signs.
- **Findings pinned to the dim** (lines, hotspots, norm outliers): how many tensors, which layers.

`residual_dims.parquet` has one row per dim that is significant when pooled or that a finding
touches, strongest pooled evidence first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from striate.analyses.robust import expected_count, median, robust_z

#: finding kinds that pin a residual dimension and count toward its score
RESIDUAL_KINDS = ("line", "hotspot", "norm_outlier")

COLUMNS = [
    "residual_dim", "pooled_z", "direction", "significance", "n_tensors_pooled", "pooled_z_read",
    "pooled_z_write", "score",
    "n_tensors", "n_lines", "n_norm_outliers", "n_hotspots", "n_layers", "layers", "max_score",
    "tensors",
]  # fmt: skip


@dataclass(frozen=True)
class ResidualConfig:
    """Threshold of the pooled evidence (see the module docstring)."""

    alpha: float = 1e-3  # expected null dims at least this extreme, per model
    rel_floor: float = 1e-3  # a vector's scale is at least this x its median |x| (as in norms)


def vector_z(x: np.ndarray, config: ResidualConfig | None = None) -> np.ndarray:
    """Signed robust z of |x| for a vector along the stream (a norm gain, a bias), shape (d,).

    Larger magnitude is loud. The scale is 1.4826 * MAD with the floor of `striate.analyses.norms`
    (float noise around a constant gain never scores); NaN where x is not finite.
    """
    config = config or ResidualConfig()
    a = np.abs(np.asarray(x, dtype=np.float64).reshape(-1))
    floor = config.rel_floor * median(a) if np.isfinite(a).any() else 0.0
    z, _, _ = robust_z(a, floor=floor)
    return z


def pool_z(zs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stouffer's z per dim over the arrays `zs` (each of shape (d,); NaN = no evidence).

    Returns (pooled_z, n_pooled), both of shape (d,): NaN and 0 where no tensor judged the dim.
    """
    if not zs:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    stack = np.vstack([np.asarray(z, dtype=np.float64) for z in zs])  # (T, d)
    ok = np.isfinite(stack)
    n = ok.sum(axis=0)
    total = np.where(ok, stack, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = np.where(n > 0, total / np.sqrt(n), np.nan)
    return pooled, n.astype(np.int64)


#: the pooled sums: over every tensor, over the readers of the stream, over its writers
GROUPS = ("all", "read", "write")


def pooled_expected(pooled_z: np.ndarray, d: int | None = None) -> np.ndarray:
    """Expected number of dims at least as extreme as each pooled z among d (default: its size)
    in a model without structure, counting the 3 sums (`GROUPS`) as tests: 3 * 2 * d * Phi(-|z|).
    A dim is reported when this is at most `ResidualConfig.alpha`."""
    z = np.asarray(pooled_z, dtype=np.float64)
    return np.asarray(10 ** _log_expected(z, z.size if d is None else d))


def _log_expected(z: np.ndarray, d: int) -> np.ndarray:
    return expected_count(z, len(GROUPS) * d)


def pooled_evidence(
    evidence: Sequence[tuple[str, np.ndarray]],
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`pool_z` over all tensors' z, and over those tagged "read" and "write", by group name.

    `evidence`: (tag, z of shape (d,)) per tensor; tags other than read/write (norm vectors,
    biases) count in "all" only.
    """
    pooled = {"all": pool_z([z for _, z in evidence])}
    for group in GROUPS[1:]:
        zs = [z for tag, z in evidence if tag == group]
        pooled[group] = (
            pool_z(zs)
            if zs
            else (np.full(pooled["all"][0].size, np.nan), np.zeros(pooled["all"][0].size, np.int64))
        )
    return pooled


def _strongest(pooled: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Per dim: the significance of the strongest group (Bonferroni over the 3) and its z."""
    d = pooled["all"][0].size
    sig = np.stack([-_log_expected(pooled[g][0], d) for g in GROUPS])  # (3, d)
    z = np.stack([pooled[g][0] for g in GROUPS])
    best = np.argmax(np.nan_to_num(sig, nan=-np.inf), axis=0)
    cols = np.arange(d)
    return sig[best, cols], z[best, cols]


def residual_dims(
    findings: pd.DataFrame,
    pooled: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    config: ResidualConfig | None = None,
) -> pd.DataFrame:
    """One row per residual dimension that is significant when pooled or that a line, hotspot or
    norm outlier touches.

    `findings` has at least the columns `kind, tensor, layer, score, residual_dim`; `pooled` is
    `pooled_evidence`'s result. Columns: `pooled_z` and `n_tensors_pooled` over all tensors,
    `pooled_z_read`, `pooled_z_write`, `direction` (loud / quiet / mixed) and `significance`
    (see the module docstring); `n_lines` / `n_norm_outliers` / `n_hotspots` count the
    distinct tensors with a finding of that kind at the dim; `n_tensors` the distinct tensors
    with any; `layers` the sorted layer indices involved; `max_score` the strongest finding
    there; `score` = sum over those tensors of log10(1 + the tensor's strongest score there).
    Ordered by significance (then score), strongest first.
    """
    config = config or ResidualConfig()
    empty = (np.zeros(0), np.zeros(0, np.int64))
    pooled = pooled or dict.fromkeys(GROUPS, empty)
    pooled_z, n_pooled = pooled["all"]
    d = pooled_z.size
    significance, strongest = _strongest(pooled) if d else (np.zeros(0), np.zeros(0))
    dims = set(np.flatnonzero(significance >= -math.log10(config.alpha)).tolist())
    z_read, z_write = pooled["read"][0], pooled["write"][0]
    opposite = (
        (np.sign(z_read) * np.sign(z_write) < 0)
        & (
            np.minimum(-_log_expected(z_read, d), -_log_expected(z_write, d))
            >= -math.log10(config.alpha)
        )
        if d
        else np.zeros(0, bool)
    )
    pinned = findings.iloc[0:0] if findings.empty else findings[
        findings["kind"].isin(RESIDUAL_KINDS) & findings["residual_dim"].notna()
    ]  # fmt: skip
    pinned = pinned.assign(residual_dim=pinned["residual_dim"].astype(np.int64))
    groups = dict(iter(pinned.groupby("residual_dim", sort=False)))
    dims |= {int(str(k)) for k in groups}
    rows = []
    for dim in dims:
        group = groups.get(dim, pinned.iloc[0:0])
        per_tensor = group.groupby("tensor")["score"].max()
        layers = sorted({int(x) for x in group["layer"].dropna()})
        known = dim < d and bool(np.isfinite(strongest[dim]))
        direction = None if not known else ("loud" if strongest[dim] > 0 else "quiet")
        rows.append(
            {
                "residual_dim": dim,
                "pooled_z": float(pooled_z[dim]) if dim < d else float("nan"),
                "direction": "mixed" if known and opposite[dim] else direction,
                "significance": float(significance[dim]) if known else float("nan"),
                "n_tensors_pooled": int(n_pooled[dim]) if dim < d else 0,
                "pooled_z_read": float(z_read[dim]) if dim < d else float("nan"),
                "pooled_z_write": float(z_write[dim]) if dim < d else float("nan"),
                "score": float(np.log10(1.0 + per_tensor.to_numpy()).sum()),
                "n_tensors": int(per_tensor.size),
                "n_lines": _tensors_with(group, "line"),
                "n_norm_outliers": _tensors_with(group, "norm_outlier"),
                "n_hotspots": _tensors_with(group, "hotspot"),
                "n_layers": len(layers),
                "layers": layers,
                "max_score": float(group["score"].max()) if len(group) else float("nan"),
                "tensors": sorted(per_tensor.index.astype(str)),
            }
        )
    table: pd.DataFrame = pd.DataFrame(rows, columns=COLUMNS)
    if table.empty:
        return table
    order = table.assign(_strength=table["significance"].fillna(-np.inf))
    ranked: pd.DataFrame = order.sort_values(
        ["_strength", "score", "residual_dim"], ascending=[False, False, True], ignore_index=True
    ).drop(columns="_strength")
    return ranked


def _tensors_with(group: pd.DataFrame, kind: str) -> int:
    return int(group.loc[group["kind"] == kind, "tensor"].nunique())
