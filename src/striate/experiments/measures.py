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


# --- rank as the spectral-dynamics source defines it -------------------------------------------
#
# striate's spectrum gives `effective_rank` = exp(H), H = -sum_i p_i ln p_i the Shannon entropy
# (nats) of the normalized singular values p_i = s_i / sum_j s_j (Roy & Vetterli, 2007). The
# source reads the entropy itself, and the entropy normalized by its largest value, ln min(m, n)
# for an m x n matrix (1 for equal singular values, 0 for rank one).

RANK_DEFINITIONS = ("effective_rank", "rank_entropy", "normalized_entropy")


def entropy_ranks(trajectories: pd.DataFrame) -> pd.DataFrame:
    """`trajectories` with two more columns, computed from `effective_rank` and `shape`:
    `rank_entropy` H = ln(effective_rank) and `normalized_entropy` H / ln(min(m, n)) (NaN for
    tensors without an effective rank, or with min(m, n) = 1).

    >>> t = pd.DataFrame({"effective_rank": [4.0, None], "shape": [[16, 8], [8]]})
    >>> entropy_ranks(t)[["rank_entropy", "normalized_entropy"]].round(6).values.tolist()
    [[1.386294, 0.666667], [nan, nan]]
    """
    out: pd.DataFrame = trajectories.copy()
    h = np.log(out["effective_rank"].to_numpy(dtype=float))
    width = np.array([min(s) if len(s) >= 2 else 1 for s in out["shape"]], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["rank_entropy"] = h
        out["normalized_entropy"] = np.where(width > 1, h / np.log(width), np.nan)
    return out


def steepest_drop(series: pd.DataFrame, metric: str = "effective_rank") -> int | None:
    """Where `metric` falls fastest: over the intervals between consecutive checkpoints from the
    peak of `metric` on, the one with the largest fall per optimizer step, (r_i - r_i+1) /
    (step_i+1 - step_i); returns its midpoint step (rounded down). None when it never falls
    after its peak. Per step, not per log-step: early checkpoints are crowded, and a fall per
    log-step favours them.

    series: one curve's rows (`step`, `metric`).

    >>> steepest_drop(pd.DataFrame({"step": [0, 10, 20, 40], "r": [5, 6, 5, 2]}), "r")
    30
    """
    s = series.sort_values("step")
    steps, r = s["step"].to_numpy(dtype=float), s[metric].to_numpy(dtype=float)
    if r.size < 2 or not np.isfinite(r).any():
        return None
    top = int(np.nanargmax(r))
    fall = (r[top:-1] - r[top + 1 :]) / np.diff(steps[top:])
    if fall.size == 0 or not np.nanmax(fall, initial=-np.inf) > 0:
        return None
    i = top + int(np.nanargmax(fall))
    return int((steps[i] + steps[i + 1]) // 2)


def rank_measures(
    trajectories: pd.DataFrame,
    matrices: list[str],
    metric: str = "normalized_entropy",
    every: int = 0,
) -> dict[str, Any]:
    """How the rank of `matrices` falls, in one of `RANK_DEFINITIONS`: per matrix `rank_drop`
    and `steepest_drop` of its curve; `mean_drop` and `min_drop`, the mean and the least of the
    matrices' relative drops (peak - final) / peak; `steepest_drop_step`, the `steepest_drop`
    of the mean curve over the matrices. With `every`, the steepest drops read only the
    checkpoints at multiples of `every` steps: intervals of equal length, not the few steps
    between the crowded early checkpoints of a log-spaced schedule.

    trajectories: one run's rows (`entropy_ranks` adds the entropy columns).
    """
    t = trajectories[trajectories["name"].isin(matrices)]
    grid = t[t["step"] % every == 0] if every > 0 else t
    per_matrix = {}
    for name in matrices:
        rows, on_grid = t[t["name"] == name], grid[grid["name"] == name]
        per_matrix[name] = {
            **rank_drop(rows, metric),
            "steepest_drop_step": steepest_drop(on_grid, metric),
        }
    drops = [r["drop"] for r in per_matrix.values() if r["drop"] is not None]
    mean_curve = grid.groupby("step", as_index=False)[metric].mean()
    return {
        "matrices": per_matrix,
        "mean_drop": float(np.mean(drops)) if drops else None,
        "min_drop": float(np.min(drops)) if drops else None,
        "steepest_drop_step": steepest_drop(mean_curve, metric),
    }
