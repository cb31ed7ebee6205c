"""`reconstruction`: the limits of reconstruction (Hobbhahn 2023), grids of small models.

How well does a model reconstruct its input, over importance x features x hidden size x
sparsity? Loss is the test loss (importance-weighted MSE); accuracy forwards the n one-hot
vectors and asks whether the output's argmax is the input's. Settings of the source:

- the bottleneck (model relu-output) on noisy sparse inputs, decaying or uniform importance
  (the paper preset); without noise (noise=0); on the n one-hot vectors (data=one-hot);
- an MLP behind a fixed random Gaussian E (model=mlp, n_embed=d): reconstruct x ("big fish",
  target=input), E x ("small fish", target=embedded) or another random E' x (target=reprojected).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from striate.experiments.figures import grid_heatmap, guarded, new_figure, save
from striate.experiments.setting import Setting
from striate.experiments.toy.instance import Instance
from striate.experiments.toy.lab import Lab
from striate.experiments.toy.sweep import LabResult
from striate.experiments.toy.train import TrainConfig
from striate.render.style import style


@dataclass(frozen=True)
class ReconstructionConfig:
    """A grid over importance x n x d x m x S; every cell a model on a fixed set of T points."""

    model: str = "relu-output"  # "relu-output" (the bottleneck) or "mlp"
    importance: tuple[str, ...] = ("decay", "uniform")  # "decay": 100 ** -linspace(0, 1, n)
    n_features: tuple[int, ...] = (50, 250)  # n
    hidden: tuple[int, ...] = (5, 10, 25, 50, 100)  # m
    sparsities: tuple[float, ...] = (0.0, 0.5, 0.9, 0.99)  # S (unused for one-hot data)
    noise: float = 0.05  # std of Gaussian noise on the inputs (our choice: the source gives none)
    data: str = "sparse"  # "sparse" or "one-hot" (the n one-hot vectors as the training set)
    dataset_size: int = 1000  # T, the fixed training set (0: fresh batches every step)
    n_embed: tuple[int, ...] = (0,)  # d: mlp only, a fixed random E (d x n) in front; 0 = none
    target: str = "input"  # with E: "input" (x), "embedded" (E x) or "reprojected" (E' x)
    replicates: int = 1  # seeds per cell
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=5000, log_every=1000, test_size=1000)
    )


def sweep(c: ReconstructionConfig) -> list[Instance]:
    sparsities = c.sparsities if c.data == "sparse" else (0.0,)
    grid = itertools.product(c.importance, c.n_features, c.n_embed, c.hidden, sparsities,
                             range(c.replicates))  # fmt: skip
    return [
        Instance(
            index=i,
            model=c.model,
            n_features=n,
            n_hidden=m,
            sparsity=s,
            importance=imp,
            dataset_size=_set_size(c, n),
            noise=c.noise,
            data=c.data,
            n_embed=d,
            target=c.target,
            lr=c.train.lr,
            weight_decay=c.train.weight_decay,
            replicate=r,
        )
        for i, (imp, n, d, m, s, r) in enumerate(grid)
    ]


def _set_size(c: ReconstructionConfig, n: int) -> int:
    """T: the configured size, or the whole one-hot (n) or antipodal (2n) set."""
    if c.data == "sparse":
        return c.dataset_size
    return 2 * n if c.data == "antipodal" else n


CELL = ["importance", "n_features", "n_embed", "n_hidden", "sparsity"]


def cells(result: LabResult) -> pd.DataFrame:
    """Final test loss and accuracies per grid cell, averaged over replicates."""
    cols = ["test_loss", "probe_accuracy", "test_accuracy", "represented"]
    return result.last().groupby(CELL, as_index=False)[cols].mean()


def trend(table: pd.DataFrame, along: str, col: str, falls: bool) -> float | None:
    """Share of the grid's lines along `along` (all else fixed) on which `col` is lower
    (`falls`) or higher at the largest value of `along` than at the smallest; None if none."""
    fixed = [k for k in CELL if k != along]
    verdicts = []
    for _, g in table.groupby(fixed):
        g = g.sort_values(along)
        if len(g) > 1:
            first, last = float(g[col].iloc[0]), float(g[col].iloc[-1])
            verdicts.append(last < first if falls else last > first)
    return float(np.mean(verdicts)) if verdicts else None


def summarize(c: ReconstructionConfig, result: LabResult) -> dict[str, Any]:
    table = cells(result)
    uniform_vs_decay: dict[str, float | None] = {"worse_loss": None, "better_accuracy": None}
    if {"uniform", "decay"} <= set(table["importance"]):
        others = [k for k in CELL if k != "importance"]
        wide = table.pivot_table(index=others, columns="importance",
                                 values=["test_loss", "probe_accuracy"])  # fmt: skip
        loss, acc = wide["test_loss"], wide["probe_accuracy"]
        uniform_vs_decay = {
            "worse_loss": float((loss["uniform"] > loss["decay"]).mean()),
            "better_accuracy": float((acc["uniform"] > acc["decay"]).mean()),
        }
    return {
        "model": c.model,
        "data": c.data,
        "noise": c.noise,
        "cells": table.to_dict("records"),
        # shares of the grid's lines on which each claim holds (1.0: everywhere)
        "sparser_lowers_loss": trend(table, "sparsity", "test_loss", falls=True),
        "wider_lowers_loss": trend(table, "n_hidden", "test_loss", falls=True),
        "wider_raises_accuracy": trend(table, "n_hidden", "probe_accuracy", falls=False),
        "uniform_vs_decay": uniform_vs_decay,
    }


def draw(c: ReconstructionConfig, result: LabResult, out_dir: Path) -> list[str]:
    table = cells(result)
    written = []
    for col, name, label, cmap in (
        ("test_loss", "reconstruction_loss.png", "log10 test loss", "viridis"),
        ("probe_accuracy", "reconstruction_accuracy.png", "one-hot probe accuracy", "magma"),
    ):
        values = np.log10(table[col]) if col == "test_loss" else table[col]
        table = table.assign(value=values)
        lim = (float(values.min()), float(values.max())) if col == "test_loss" else (0.0, 1.0)
        written.append(save(_grid_figure(c, table, label, lim, cmap), out_dir, name))
    return written


def run(c: ReconstructionConfig, lab: Lab) -> Path:
    result = lab.train(sweep(c))
    return lab.finish(summarize(c, result), draw(c, result, lab.out))


def _grid_figure(
    c: ReconstructionConfig, table: pd.DataFrame, label: str, lim: tuple[float, float], cmap: str
) -> Any:
    """Rows: importance (and E's size); columns: n; each panel m (y) x sparsity (x)."""
    rows = list(itertools.product(c.importance, c.n_embed))
    cols = list(c.n_features)
    sparsities = sorted(table["sparsity"].unique())
    hidden = sorted(table["n_hidden"].unique())
    with style():
        fig = new_figure(max(5.0, 2.6 * len(cols) + 0.4), 2.4 * len(rows) + 0.6,
                         f"{c.model}: {label}, noise {c.noise}, data {c.data}")  # fmt: skip
        axes = fig.subplots(len(rows), len(cols), squeeze=False,
                            gridspec_kw={"top": 1 - 0.55 / (2.4 * len(rows) + 0.6),
                                         "hspace": 0.6, "wspace": 0.4})  # fmt: skip
        for (r, (imp, d)), (k, n) in itertools.product(enumerate(rows), enumerate(cols)):
            g = table[(table["importance"] == imp) & (table["n_embed"] == d)
                      & (table["n_features"] == n)]  # fmt: skip
            grid = g.pivot(index="n_hidden", columns="sparsity", values="value")
            values = grid.reindex(index=hidden, columns=sparsities).to_numpy()
            title = f"importance {imp}, n={n}" + (f", d={d}" if d else "")
            paint = partial(grid_heatmap, values=values, xs=sparsities, ys=hidden,
                            xlabel="sparsity S", ylabel="hidden size m", title=title, vlim=lim,
                            cmap=cmap)  # fmt: skip
            guarded(axes[r, k], paint)
    return fig


_QUICK = ReconstructionConfig(
    n_features=(20,),
    hidden=(2, 5, 10),
    sparsities=(0.0, 0.9),
    dataset_size=200,
    train=TrainConfig(steps=1000, lr=1e-2, log_every=500, test_size=500),
)

RECONSTRUCTION = Setting(
    name="reconstruction",
    about="Hobbhahn (2023), limits of reconstruction: loss and one-hot accuracy over "
    "importance x features x hidden size x sparsity",
    presets={"quick": _QUICK, "paper": ReconstructionConfig()},
    engine=Lab,
    run=run,
)

__all__ = ["RECONSTRUCTION", "ReconstructionConfig"]
