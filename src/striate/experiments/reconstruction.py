"""`reconstruction`: the limits of reconstruction (Hobbhahn 2023), grids of small models.

How well does a model reconstruct its input, over importance x features x hidden size x
sparsity? Loss is the test loss (importance-weighted MSE); accuracy forwards the n one-hot
vectors and asks whether the output's argmax is the input's. Settings of the source:

- the bottleneck (model relu-output) on noisy sparse inputs, decaying or uniform importance
  (the paper preset); without noise (noise=0); on the n one-hot vectors (data=one-hot);
- an MLP behind a fixed random Gaussian E (model=mlp, n_embed=d): reconstruct x ("big fish",
  targets=input), E x ("small fish", targets=embedded) or another random E' x
  (targets=reprojected); the three side by side are the `fish` lab (`fish.py`).

The claims (`RECONSTRUCTION.claims`) are the source's "findings from the above figures", each
measured as the share of the grid's lines (or cells) on which it holds, and its statement on
the dense, decaying-importance corner of the grid. Thresholds fixed before any run over seeds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from striate.experiments.claims import Claim, Criterion
from striate.experiments.figures import grid_heatmap, guarded, new_figure, save
from striate.experiments.setting import Setting
from striate.experiments.toy.claims import BIAS_DECAY, Known, deviations, quote
from striate.experiments.toy.instance import Instance
from striate.experiments.toy.lab import Lab
from striate.experiments.toy.sweep import LabResult
from striate.experiments.toy.train import TrainConfig
from striate.render.style import style


@dataclass(frozen=True)
class ReconstructionConfig:
    """A grid over importance x n x d x m x S; every cell a model on a fixed set of T points."""

    model: str = "relu-output"  # "relu-output" (the bottleneck) or "mlp"
    models: tuple[str, ...] = ()  # models swept side by side (empty: `model` alone)
    importance: tuple[str, ...] = ("decay", "uniform")  # "decay": 100 ** -linspace(0, 1, n)
    n_features: tuple[int, ...] = (50, 250)  # n
    hidden: tuple[int, ...] = (5, 10, 25, 50, 100)  # m
    sparsities: tuple[float, ...] = (0.0, 0.5, 0.9, 0.99)  # S (unused for one-hot data)
    noise: float = 0.05  # std of Gaussian noise on the inputs (our choice: the source gives none)
    data: str = "sparse"  # "sparse" or "one-hot" (the n one-hot vectors as the training set)
    dataset_size: int = 1000  # T, the fixed training set (0: fresh batches every step)
    n_embed: tuple[int, ...] = (0,)  # d: mlp only, a fixed random E (d x n) in front; 0 = none
    # with E, what the model reconstructs: "input" (x), "embedded" (E x), "reprojected" (E' x)
    targets: tuple[str, ...] = ("input",)
    replicates: int = 1  # seeds per cell
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=5000, log_every=1000, test_size=1000)
    )


def sweep(c: ReconstructionConfig) -> list[Instance]:
    sparsities = c.sparsities if c.data == "sparse" else (0.0,)
    grid = itertools.product(c.models or (c.model,), c.importance, c.n_features, c.n_embed,
                             c.hidden, sparsities, c.targets, range(c.replicates))  # fmt: skip
    return [
        Instance(
            index=i,
            model=model,
            n_features=n,
            n_hidden=m,
            sparsity=s,
            importance=imp,
            dataset_size=_set_size(c, n),
            noise=c.noise,
            data=c.data,
            n_embed=d,
            target=target,
            lr=c.train.lr,
            weight_decay=c.train.weight_decay,
            replicate=r,
        )
        for i, (model, imp, n, d, m, s, target, r) in enumerate(grid)
    ]


def _set_size(c: ReconstructionConfig, n: int) -> int:
    """T: the configured size, or the whole one-hot (n) or antipodal (2n) set."""
    if c.data == "sparse":
        return c.dataset_size
    return 2 * n if c.data == "antipodal" else n


CELL = ["model", "importance", "n_features", "n_embed", "n_hidden", "sparsity", "target"]
#: a one-hot accuracy this high has nothing left to gain (every input recovered)
PERFECT = 1.0
#: a finding of the source holds on the grid when it holds on at least this share of its
#: lines or cells (the source states each without exceptions; one seed per cell is noisy)
SHARE = 0.9


def cells(result: LabResult) -> pd.DataFrame:
    """Final test loss and accuracies per grid cell, averaged over replicates."""
    cols = ["test_loss", "probe_accuracy", "test_accuracy", "represented"]
    return result.last().groupby(CELL, as_index=False)[cols].mean()


def trend(
    table: pd.DataFrame, along: str, col: str, falls: bool, perfect: float | None = None
) -> float | None:
    """Share of the grid's lines along `along` (all else fixed) on which `col` is lower
    (`falls`) or higher at the largest value of `along` than at the smallest; None if none.
    Lines with `col` at `perfect` at both ends (an accuracy of 1: nothing left to gain) are
    left out."""
    fixed = [k for k in CELL if k != along]
    verdicts = []
    for _, g in table.groupby(fixed):
        g = g.sort_values(along)
        if len(g) > 1:
            first, last = float(g[col].iloc[0]), float(g[col].iloc[-1])
            if perfect is not None and min(first, last) >= perfect:
                continue
            verdicts.append(last < first if falls else last > first)
    return float(np.mean(verdicts)) if verdicts else None


def uniform_vs_decay(table: pd.DataFrame) -> dict[str, float | None]:
    """Shares of the cells (all else fixed) where uniform importance has a higher loss, and
    a higher one-hot accuracy (cells with both at 1 left out), than decaying importance."""
    if not {"uniform", "decay"} <= set(table["importance"]):
        return {"worse_loss": None, "better_accuracy": None}
    others = [k for k in CELL if k != "importance"]
    wide = table.pivot_table(index=others, columns="importance",
                             values=["test_loss", "probe_accuracy"])  # fmt: skip
    loss, acc = wide["test_loss"], wide["probe_accuracy"]
    open_ = np.minimum(acc["uniform"], acc["decay"]) < PERFECT
    better = acc["uniform"][open_] > acc["decay"][open_]
    return {
        "worse_loss": float((loss["uniform"] > loss["decay"]).mean()),
        "better_accuracy": float(better.mean()) if len(better) else None,
    }


def recovered_per_dim(table: pd.DataFrame) -> float | None:
    """One-hot inputs recovered (accuracy x n) per hidden dimension, median over the cells
    with decaying importance at the lowest S swept and m < n; None without such cells."""
    dense = table[(table["importance"] == "decay") & (table["sparsity"] == table["sparsity"].min())
                  & (table["n_hidden"] < table["n_features"])]  # fmt: skip
    ratio = dense["probe_accuracy"] * dense["n_features"] / dense["n_hidden"]
    return float(ratio.median()) if len(ratio) else None


def summarize(c: ReconstructionConfig, result: LabResult) -> dict[str, Any]:
    table = cells(result)
    return {
        "model": c.model,
        "data": c.data,
        "noise": c.noise,
        "cells": table.to_dict("records"),
        # shares of the grid's lines on which each claim holds (1.0: everywhere)
        "sparser_lowers_loss": trend(table, "sparsity", "test_loss", falls=True),
        "sparser_raises_accuracy": trend(
            table, "sparsity", "probe_accuracy", falls=False, perfect=PERFECT
        ),
        "wider_lowers_loss": trend(table, "n_hidden", "test_loss", falls=True),
        "wider_raises_accuracy": trend(
            table, "n_hidden", "probe_accuracy", falls=False, perfect=PERFECT
        ),
        "uniform_vs_decay": uniform_vs_decay(table),
        "dense_decay_recovered_per_dim": recovered_per_dim(table),
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
    """Rows: importance (and E's size, the target); columns: n; each panel m (y) x sparsity (x)."""
    rows = list(itertools.product(c.importance, c.n_embed, c.targets))
    cols = list(c.n_features)
    sparsities = sorted(table["sparsity"].unique())
    hidden = sorted(table["n_hidden"].unique())
    with style():
        fig = new_figure(max(5.0, 2.6 * len(cols) + 0.4), 2.4 * len(rows) + 0.6,
                         f"{c.model}: {label}, noise {c.noise}, data {c.data}")  # fmt: skip
        axes = fig.subplots(len(rows), len(cols), squeeze=False,
                            gridspec_kw={"top": 1 - 0.55 / (2.4 * len(rows) + 0.6),
                                         "hspace": 0.6, "wspace": 0.4})  # fmt: skip
        for (r, (imp, d, target)), (k, n) in itertools.product(enumerate(rows), enumerate(cols)):
            g = table[(table["importance"] == imp) & (table["n_embed"] == d)
                      & (table["n_features"] == n) & (table["target"] == target)]  # fmt: skip
            grid = g.pivot(index="n_hidden", columns="sparsity", values="value")
            values = grid.reindex(index=hidden, columns=sparsities).to_numpy()
            title = f"importance {imp}, n={n}" + (f", d={d}, {target}" if d else "")
            paint = partial(grid_heatmap, values=values, xs=sparsities, ys=hidden,
                            xlabel="sparsity S", ylabel="hidden size m", title=title, vlim=lim,
                            cmap=cmap)  # fmt: skip
            guarded(axes[r, k], paint)
    return fig


# --- claims and deviations ---------------------------------------------------------------------

_LINES = ("share of the grid's lines along {along} (all else fixed) on which the {col} at the "
          "largest {along} is {better} than at the smallest{perfect}; " + f"{SHARE}: the "
          "finding holds on the grid")  # fmt: skip
_SATURATED = " (lines with accuracy 1 at both ends left out)"
_SPARSITY = "The sparser the vector is, the better the reconstruction loss and accuracy"
_HIDDEN = ("The findings mostly confirm what we would predict, e.g. more sparsity or larger "
           "hidden sizes lead to better reconstructions")  # fmt: skip
_IMPORTANCE = ("uniform importance creates a worse loss but a better accuracy than decreasing "
               "importance")  # fmt: skip


def _lines(along: str, col: str, better: str, perfect: bool = False) -> str:
    return _LINES.format(along=along, col=col, better=better,
                         perfect=_SATURATED if perfect else "")  # fmt: skip


CLAIMS = (
    Claim(
        "sparser-lowers-loss",
        quote(_SPARSITY),
        "The sparser the inputs, the lower the reconstruction loss.",
        _lines("S", "test loss", "lower"),
        Criterion(">=", SHARE),
        lambda s: s["sparser_lowers_loss"],
    ),
    Claim(
        "sparser-raises-accuracy",
        quote(_SPARSITY),
        "The sparser the inputs, the higher the one-hot accuracy.",
        _lines("S", "one-hot accuracy (the argmax of the output for e_i is i)", "higher", True),
        Criterion(">=", SHARE),
        lambda s: s["sparser_raises_accuracy"],
    ),
    Claim(
        "wider-lowers-loss",
        quote(_HIDDEN),
        "The wider the hidden layer, the lower the reconstruction loss.",
        _lines("m", "test loss", "lower"),
        Criterion(">=", SHARE),
        lambda s: s["wider_lowers_loss"],
    ),
    Claim(
        "wider-raises-accuracy",
        quote(_HIDDEN),
        "The wider the hidden layer, the higher the one-hot accuracy.",
        _lines("m", "one-hot accuracy", "higher", True),
        Criterion(">=", SHARE),
        lambda s: s["wider_raises_accuracy"],
    ),
    Claim(
        "uniform-worse-loss",
        quote(_IMPORTANCE),
        "Uniform importance gives a higher loss than decaying importance.",
        "share of the grid's cells (all else fixed) where the test loss with uniform importance "
        "is higher than with decaying importance (each importance-weighted: uniform weights "
        f"sum to n, decaying ones to about n / 5); {SHARE}: the finding holds on the grid",
        Criterion(">=", SHARE),
        lambda s: s["uniform_vs_decay"]["worse_loss"],
    ),
    Claim(
        "uniform-better-accuracy",
        quote(_IMPORTANCE),
        "Uniform importance gives a higher one-hot accuracy than decaying importance.",
        "share of the grid's cells (all else fixed; cells with accuracy 1 under both left out) "
        "where the one-hot accuracy with uniform importance is higher than with decaying "
        f"importance; {SHARE}: the finding holds on the grid",
        Criterion(">=", SHARE),
        lambda s: s["uniform_vs_decay"]["better_accuracy"],
    ),
    Claim(
        "dense-decay-recovers-about-m",
        quote(
            "Under the roughest conditions, i.e. decreasing importance with zero sparsity, "
            "the network can only recreate roughly as many one-hot vectors as it has "
            "neurons"
        ),
        "With decaying importance and dense inputs the model recovers about as many one-hot "
        "inputs as it has hidden dimensions.",
        "one-hot inputs recovered (accuracy x n) per hidden dimension m, median over the cells "
        "with decaying importance at the lowest S swept and m < n; 'roughly as many': within "
        "a factor 2 of 1",
        Criterion("between", (0.5, 2.0)),
        lambda s: s["dense_decay_recovered_per_dim"],
    ),
)


def source_deviations(c: ReconstructionConfig) -> list[str]:
    """How a reconstruction config differs from the source's (noisy bottleneck) setting."""
    known = [
        Known("model", "relu-output", "the source's bottleneck is the ReLU output model"),
        Known("dataset_size", 1000, "the source trains on a fixed set of 1,000 points"),
    ]
    compared = ("importance", "n_features", "hidden", "sparsities", "noise", "data", "n_embed",
                "targets", "replicates", "train.steps", "train.lr", "train.test_size")  # fmt: skip
    always = [
        "The grid's n, m and S values are ours: the source's are in figures the seed text does "
        "not give, and so is its training budget.",
        BIAS_DECAY,
    ]
    if c.noise > 0:
        always.append(
            f"Gaussian input noise of std {c.noise:g} (clean targets) is our reading "
            "of the source's 'noisy inputs': it gives no level."
        )
    if c.model == "relu-output" and c.data == "sparse":
        always.append(
            "The source's third setting (no noise, one-hot inputs) and its MLP "
            "settings (big fish, small fish, re-projector) are other configs of this "
            "lab (noise=0, data=one-hot; model=mlp with n_embed and targets; the `fish` lab)."
        )
    return deviations(c, known, RECONSTRUCTION.presets["paper"], compared, always)


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
    claims=CLAIMS,
    deviations=source_deviations,
)

__all__ = ["RECONSTRUCTION", "ReconstructionConfig"]
