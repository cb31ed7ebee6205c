"""The numbers that decide the claims (`claims.py`), computed from an experiment's tables.

Every function reads the tidy tables `Experiment.track` returns (metrics, trajectories,
dynamics, alignment; one `condition` column) and returns plain numbers for `summary.json`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def weight_matrices(trajectories: pd.DataFrame) -> list[str]:
    """Names of the tensors with an effective rank (matrices), in file order."""
    has = trajectories[trajectories["effective_rank"].notna()]
    return list(dict.fromkeys(has["name"]))


def crossing_step(metrics: pd.DataFrame, column: str, threshold: float) -> int | None:
    """The first logged step where `column` reaches `threshold` (None if it never does)."""
    hit = metrics.loc[metrics[column] >= threshold, "step"]
    return int(hit.min()) if len(hit) else None


def rank_drop(series: pd.DataFrame, metric: str = "effective_rank") -> dict[str, Any]:
    """How a matrix's rank falls after its peak: the peak, the final value, the relative drop
    (peak - final) / peak, and `drop_step`, the first step after the peak where the rank has
    covered half of that fall (None when it falls by less than 5%).

    series: one matrix's rows (`step`, `metric`).
    """
    s = series.sort_values("step")
    steps, r = s["step"].to_numpy(), s[metric].to_numpy(dtype=float)
    if r.size == 0 or not np.isfinite(r).any():
        return {"peak": None, "final": None, "drop": None, "drop_step": None}
    top = int(np.nanargmax(r))
    peak, final = float(r[top]), float(r[-1])
    drop = (peak - final) / peak if peak > 0 else 0.0
    step = None
    if drop >= 0.05:
        half = peak - 0.5 * (peak - final)
        after = np.nonzero(r[top:] <= half)[0]
        step = int(steps[top + after[0]]) if after.size else None
    return {"peak": peak, "final": final, "drop": drop, "drop_step": step}


def settle_step(dynamics: pd.DataFrame, column: str, level: float = 0.9) -> int | None:
    """The first step from which `column` (an overlap with the final checkpoint) stays at or
    above `level` until the end; None if it never does."""
    s = dynamics.sort_values("step")
    below = np.nonzero(~(s[column].to_numpy(dtype=float) >= level))[0]
    if below.size == 0:
        return int(s["step"].iloc[0])
    return None if below[-1] == len(s) - 1 else int(s["step"].iloc[below[-1] + 1])


def settling(dynamics: pd.DataFrame, final_step: int, level: float = 0.9) -> dict[str, Any]:
    """Claim 4a, per matrix: the step from which its top-k left and right singular subspaces
    stay at least `level` of the final checkpoint's, and that step as a fraction of training."""
    out: dict[str, Any] = {}
    for name, rows in dynamics.groupby("tensor", sort=False):
        steps = [settle_step(rows, c, level) for c in ("overlap_left_final", "overlap_right_final")]
        step = None if None in steps else max(s for s in steps if s is not None)
        out[str(name)] = {
            "settle_step": step,
            "settle_fraction": None if step is None else step / final_step,
        }
    return out


def alignment_at_end(
    alignment: pd.DataFrame, trajectories: pd.DataFrame, top_k: int
) -> dict[str, Any]:
    """Claim 4b, per consecutive pair: the overlap of layer l's output space with layer l+1's
    input space at the last checkpoint, beside chance, k / width of the shared axis."""
    if alignment.empty:
        return {}
    last = alignment[alignment["step"] == alignment["step"].max()]
    shapes = dict(zip(trajectories["name"], trajectories["shape"], strict=True))
    out: dict[str, Any] = {}
    for r in last.itertuples():
        width = int(shapes[r.tensor][0])
        out[f"{r.tensor} -> {r.next_tensor}"] = {
            "alignment": float(r.alignment),
            "chance": min(top_k, width) / width,
        }
    return out


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN for fewer than 3 points.

    >>> round(spearman([0, 1, 2, 3], [9, 7, 8, 1]), 12)
    -0.8
    """
    if len(x) < 3:
        return float("nan")
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    return float(np.corrcoef(rx, ry)[0, 1])
