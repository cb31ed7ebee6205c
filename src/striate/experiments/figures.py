"""Figures of an experiment: curves against step per condition, and sweeps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from striate.experiments.claims import weight_matrices
from striate.experiments.harness import Tracked
from striate.render.png import save_figure
from striate.render.style import style

Markers = dict[str, dict[str, int | None]]  # condition -> label -> step


def _x_log(ax: Axes, steps: np.ndarray) -> None:
    if steps.size and steps.max() >= 100:
        ax.set_xscale("symlog", linthresh=10)
    ax.grid(alpha=0.3)


def _mark(ax: Axes, marks: dict[str, int | None]) -> None:
    for i, (label, step) in enumerate(marks.items()):
        if step is not None:
            ax.axvline(step, color=f"C{i + 3}", ls="--", lw=1, label=f"{label} (step {step})")


def draw_curves(tracked: Tracked, markers: Markers, path: Path, title: str) -> str:
    """One column per condition: accuracy (top) and the effective rank of every weight
    matrix (bottom) against step, with the marked steps as dashed lines. Returns the path
    relative to the run directory's parent folder of `figures/`."""
    names = list(dict.fromkeys(tracked.metrics["condition"]))
    with style():
        fig = Figure(figsize=(4.4 * len(names), 6.4), dpi=110)
        FigureCanvasAgg(fig)
        fig.suptitle(title, x=0.01, ha="left", fontsize=10, weight="bold", parse_math=False)
        axes = fig.subplots(2, len(names), squeeze=False, sharex="col", sharey="row")
        for col, name in enumerate(names):
            m = tracked.metrics[tracked.metrics["condition"] == name]
            t = tracked.trajectories[tracked.trajectories["condition"] == name]
            top, bottom = axes[0, col], axes[1, col]
            for key, color in (("train_acc", "C0"), ("test_acc", "C1")):
                if key in m:
                    top.plot(m["step"], m[key], color=color, lw=1.2, label=key.replace("_", " "))
            top.set_title(name, fontsize=9, loc="left", parse_math=False)
            top.set_ylim(-0.02, 1.02)
            for i, matrix in enumerate(weight_matrices(t)):
                rows = t[t["name"] == matrix].sort_values("step")
                bottom.plot(
                    rows["step"],
                    rows["effective_rank"],
                    color=f"C{i % 10}",
                    lw=1.2,
                    marker=".",
                    ms=3,
                    label=matrix,
                )
            bottom.set_xlabel("step")
            for ax in (top, bottom):
                _x_log(ax, m["step"].to_numpy())
                _mark(ax, markers.get(name, {}))
            top.legend(fontsize=7, loc="center left")
            bottom.legend(fontsize=7, loc="best")
        axes[0, 0].set_ylabel("accuracy")
        axes[1, 0].set_ylabel("effective rank")
        fig.subplots_adjust(left=0.07, right=0.98, top=0.9, bottom=0.08, hspace=0.12, wspace=0.2)
        save_figure(fig, path)
    return f"figures/{path.name}"


def draw_sweep(
    table: pd.DataFrame,
    x: str,
    panels: list[str],
    path: Path,
    title: str,
    *,
    hue: str | None = None,
    log_x: bool = False,
    reference: dict[str, float] | None = None,
) -> str:
    """One panel per column in `panels`, `x` on the horizontal axis, one line per `hue`.
    `reference` draws a dotted horizontal line per panel (e.g. chance level)."""
    with style():
        # wide enough for the title on one line (about 0.08 inch per character at size 10)
        fig = Figure(figsize=(max(4.2 * len(panels), 0.08 * len(title)), 3.6), dpi=110)
        FigureCanvasAgg(fig)
        fig.suptitle(title, x=0.01, ha="left", fontsize=10, weight="bold", parse_math=False)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        groups = list(table.groupby(hue, sort=False)) if hue else [("", table)]
        for ax, column in zip(axes, panels, strict=True):
            for i, (label, rows) in enumerate(groups):
                rows = rows.sort_values(x)
                ax.plot(
                    rows[x],
                    rows[column],
                    color=f"C{i % 10}",
                    marker="o",
                    ms=4,
                    lw=1.2,
                    label=str(label) or None,
                )
            if reference and column in reference:
                ax.axhline(reference[column], color="grey", ls=":", lw=1, label="chance")
            if log_x:
                positive = table[x].to_numpy(dtype=float)
                ax.set_xscale("symlog", linthresh=float(np.min(positive[positive > 0], initial=1)))
            ax.set_title(column, fontsize=9, loc="left", parse_math=False)
            ax.set_xlabel(x, parse_math=False)
            ax.grid(alpha=0.3)
        if axes[0].get_legend_handles_labels()[1]:
            axes[0].legend(fontsize=7)
        fig.subplots_adjust(left=0.07, right=0.98, top=0.84, bottom=0.16, wspace=0.25)
        save_figure(fig, path)
    return f"figures/{path.name}"
