"""Figures of the banding experiment: the article's NMF panels per condition, and banding
against training step."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from striate.analyses.banding import nmf_view
from striate.checkpoint import open_checkpoint
from striate.render.banding_figures import BANDED, nmf_grid, pick_neurons
from striate.render.png import save_figure
from striate.render.style import style

if TYPE_CHECKING:
    from striate.experiments.banding import Config
    from striate.experiments.harness import Condition

DIRECTION_COLORS = {"horizontal": BANDED, "vertical": "#1f77b4", "none": "0.6"}


def draw_conditions(out: Path, conds: list[Condition], summary: dict[str, Any], cfg: Config) -> str:
    """One row per condition: NMF tiles of the last two conv layers (the article's 5a and 5b)
    and the banding score of every conv group, coloured by direction."""
    groups = len(cfg.widths)
    fig = Figure(figsize=(10, 2.9 * len(conds) + 0.5), dpi=110)
    FigureCanvasAgg(fig)
    fig.suptitle("Weight banding: NMF of the last two conv layers, and banding score per layer",
                 fontsize=11, x=0.01, ha="left")  # fmt: skip
    for r, cond in enumerate(conds):
        info = summary["conditions"].get(cond.name)
        final = sorted(cond.folder.glob("step_*.safetensors"))[-1]
        with open_checkpoint(final) as ckpt:
            kernels = [ckpt.read(f"groups.{g}.conv.weight") for g in (groups - 2, groups - 1)]
        for c, w in enumerate(kernels):
            ax = fig.add_subplot(len(conds), 3, 3 * r + c + 1)
            view = nmf_view(w, seed=cfg.seed)
            ax.imshow(nmf_grid(view, pick_neurons(view, 36)), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            label = ("5a", "5b")[c]
            direction = info["direction"][groups - 2 + c] if info else "none"
            score = info["score"][groups - 2 + c] if info else float("nan")
            for spine in ax.spines.values():
                spine.set_edgecolor(DIRECTION_COLORS[direction])
                spine.set_linewidth(2.5 if direction != "none" else 0.8)
            ax.set_title(f"{cond.name}, layer {label} (group {groups - 1 + c})", fontsize=9,
                         loc="left")  # fmt: skip
            ax.set_xlabel(f"{direction}, score {score:+.2f}", fontsize=8,
                          color=DIRECTION_COLORS[direction])  # fmt: skip
        ax = fig.add_subplot(len(conds), 3, 3 * r + 3)
        if info:
            colors = [DIRECTION_COLORS[d] for d in info["direction"]]
            ax.bar(np.arange(1, groups + 1), info["score"], color=colors)
            ax.set_title(f"test accuracy {info['test_accuracy']:.1%}", fontsize=9, loc="left")
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_ylim(-1, 1)
        ax.set_xticks(np.arange(1, groups + 1))
        ax.set_xlabel("conv group", fontsize=8)
        ax.set_ylabel("rows - cols share", fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    with style():
        save_figure(fig, out / "banding.png")
    return "banding.png"


def draw_score_curves(out: Path, over_steps: pd.DataFrame) -> str:
    """Banding score of the last two conv layers and test accuracy against training step."""
    last = int(over_steps["group"].max())
    fig = Figure(figsize=(11, 3.4), dpi=110)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, 3, i + 1) for i in range(3)]
    for color, (name, table) in enumerate(over_steps.groupby("condition", sort=False)):
        for ax, group in zip(axes[:2], (last - 1, last), strict=True):
            t = table[table["group"] == group].sort_values("step")
            ax.plot(t["step"], t["banding_score"], marker=".", color=f"C{color}", label=str(name))
        t = table[table["group"] == last].sort_values("step")
        axes[2].plot(t["step"], t["test_accuracy"], marker=".", color=f"C{color}", label=str(name))
    for ax, title in zip(axes, ("banding score, layer 5a", "banding score, layer 5b",
                                "test accuracy"), strict=True):  # fmt: skip
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[:2]:
        ax.axhline(0, color="0.3", lw=0.8)
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    with style():
        save_figure(fig, out / "banding_steps.png")
    return "banding_steps.png"
