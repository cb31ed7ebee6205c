"""Figures of a checkpoint series: each metric against step, one line per matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from striate.render.png import save_figure
from striate.render.style import canvas, style

#: tensor metrics plotted from trajectories.parquet, and dynamics from dynamics.parquet
TRAJECTORY_METRICS = ("frobenius_norm", "spectral_norm", "stable_rank", "effective_rank", "alpha")
DYNAMICS_METRICS = ("update0_relative", "update0_effective_rank", "overlap_left_final",
                    "overlap_right_final", "overlap_left_prev")  # fmt: skip
CURVE_COLUMNS = ("train_loss", "test_loss", "train_acc", "test_acc", "train_accuracy",
                 "test_accuracy")  # fmt: skip


def _log_steps(steps: np.ndarray) -> bool:
    positive = steps[steps > 0]
    return positive.size > 1 and positive.max() / positive.min() >= 100


def _panel_lines(ax: object, table: pd.DataFrame, value: str, key: str) -> None:
    from matplotlib.axes import Axes

    assert isinstance(ax, Axes)
    groups = list(table.groupby(key, sort=False))
    colors = [f"C{i % 10}" for i in range(len(groups))]
    for (name, group), color in zip(groups, colors, strict=True):
        g = group.sort_values("step")
        ax.plot(g["step"], g[value], color=color, lw=1.2, marker=".", ms=3, label=str(name))
    ax.set_title(value, fontsize=9, loc="left", parse_math=False)
    if _log_steps(table["step"].to_numpy()):
        ax.set_xscale("symlog", linthresh=1)
    ax.grid(alpha=0.3)


def draw_metric_grid(
    table: pd.DataFrame, metrics: tuple[str, ...], path: Path, title: str, key: str = "tensor"
) -> bool:
    """One panel per metric (those present with data), one line per `key`; False if none."""
    present = [m for m in metrics if m in table and table[m].notna().any()]
    if not present:
        return False
    with style():
        fig = canvas(4.2 * len(present), 3.6, dpi=110)
        fig.suptitle(title, x=0.01, ha="left", fontsize=10, weight="bold", parse_math=False)
        axes = fig.subplots(1, len(present), squeeze=False)[0]
        for ax, metric in zip(axes, present, strict=True):
            _panel_lines(ax, table[table[metric].notna()], metric, key)
            ax.set_xlabel("step", parse_math=False)
        handles, labels = axes[0].get_legend_handles_labels()
        if len(labels) <= 12:
            fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=7)
            fig.subplots_adjust(bottom=0.16 + 0.05 * ((len(labels) - 1) // 4), top=0.85)
        save_figure(fig, path)
    return True


def draw_track_figures(
    out_dir: Path,
    trajectories: pd.DataFrame,
    dynamics: pd.DataFrame,
    alignment: pd.DataFrame,
    curves: pd.DataFrame | None,
) -> list[str]:
    """The series' figures under `images/track/`; their paths relative to `out_dir`."""
    written = []
    matrices = (
        trajectories[trajectories["stable_rank"].notna()]
        if "stable_rank" in trajectories
        else trajectories
    )
    plans: list[tuple[str, pd.DataFrame, tuple[str, ...], str, str]] = [
        ("weights.png", matrices, TRAJECTORY_METRICS, "weight metrics against step", "name"),
        ("dynamics.png", dynamics, DYNAMICS_METRICS, "updates and singular subspaces", "tensor"),
        ("alignment.png", alignment, ("alignment",), "top-k output space of a layer against "
         "the next layer's input space", "tensor"),
    ]  # fmt: skip
    if curves is not None:
        long = curves.assign(curve="run")
        plans.insert(0, ("curves.png", long, CURVE_COLUMNS, "the run's own curves", "curve"))
    for filename, table, metrics, title, key in plans:
        rel = f"images/track/{filename}"
        if not table.empty and draw_metric_grid(table, metrics, out_dir / rel, title, key):
            written.append(rel)
    return written
