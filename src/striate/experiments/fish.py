"""`fish`: Hobbhahn (2023)'s limits of reconstruction behind a random embedding.

A fixed standard-Gaussian E (d x n) squeezes a sparse x (n features) into a bottleneck of d
dimensions, like a residual stream; an MLP (m hidden neurons) reads E x and must reconstruct
x ("big fish", target `input`), E x itself ("small fish", the identity; `embedded`) or E' x
for a second random E' ("re-projector"; `reprojected`). The grid is n x d x m, each cell with
all three targets, on the source's fixed set of 1,000 points of sparsity 0.99. Accuracy
forwards the n one-hot vectors through E and asks whether the output's argmax is the
target's.

The claims are the source's sentences on the three settings, each measured on the grid, with
thresholds fixed in code before any run.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from striate.experiments.claims import Claim, Criterion
from striate.experiments.figures import grid_heatmap, guarded, new_figure, save
from striate.experiments.reconstruction import (
    PERFECT,
    SHARE,
    ReconstructionConfig,
    cells,
    sweep,
    trend,
)
from striate.experiments.setting import Setting
from striate.experiments.toy.claims import BIAS_DECAY, Known, deviations, quote
from striate.experiments.toy.lab import Lab
from striate.experiments.toy.sweep import LabResult
from striate.experiments.toy.train import TrainConfig
from striate.render.style import style

#: the three targets, in the source's order, and its names for them
TARGETS = {"input": "big fish", "embedded": "small fish", "reprojected": "re-projector"}
#: "does not seem to affect the outcome by a lot": the bottleneck moves the big fish's
#: accuracy at most this share of what the hidden size moves it (over the swept ranges)
LITTLE = 0.5
#: "look pretty similar to the big fish setting": the re-projector's accuracy at most this
#: share as far from the big fish's as the small fish's is
SIMILAR = 0.5
#: "unable to reconstruct all inputs": the small fish's median accuracy over the cells with
#: fewer neurons than features below this
NOT_ALL = 0.99


def _wide(table: pd.DataFrame) -> pd.DataFrame:
    """One row per cell (n, d, m), one column per target: the one-hot accuracy."""
    wide: pd.DataFrame = table.pivot_table(
        index=["n_features", "n_embed", "n_hidden"], columns="target", values="probe_accuracy"
    )
    return wide


def mean_change(table: pd.DataFrame, along: str) -> float | None:
    """Mean |accuracy at the largest `along` - at the smallest| over the big fish's grid lines
    along `along` (all else fixed); None without a line."""
    big = table[table["target"] == "input"]
    fixed = [k for k in ("n_features", "n_embed", "n_hidden") if k != along]
    changes = []
    for _, g in big.groupby(fixed):
        accuracy = g.sort_values(along)["probe_accuracy"].to_numpy()
        if len(accuracy) > 1:
            changes.append(abs(float(accuracy[-1] - accuracy[0])))
    return float(np.mean(changes)) if changes else None


def bottleneck_over_hidden(table: pd.DataFrame) -> float | None:
    """`mean_change` along d over `mean_change` along m, for the big fish (0: only m
    matters); None when m changes nothing."""
    d, m = mean_change(table, "n_embed"), mean_change(table, "n_hidden")
    return d / m if d is not None and m else None


def small_fish_better(table: pd.DataFrame) -> float | None:
    """Share of the cells (either accuracy below 1) where the small fish's accuracy is above
    the big fish's."""
    wide = _wide(table)
    if not {"input", "embedded"} <= set(wide.columns):
        return None
    open_ = np.minimum(wide["input"], wide["embedded"]) < PERFECT
    return float((wide["embedded"][open_] > wide["input"][open_]).mean()) if open_.any() else None


def small_fish_short(table: pd.DataFrame) -> float | None:
    """The small fish's median accuracy over the cells with m < n."""
    small = table[(table["target"] == "embedded") & (table["n_hidden"] < table["n_features"])]
    return float(small["probe_accuracy"].median()) if len(small) else None


def reprojector_closeness(table: pd.DataFrame) -> float | None:
    """Mean |re-projector - big fish| accuracy over the cells, over mean |small fish - big
    fish| (0: the re-projector is the big fish; 1: as far from it as the small fish)."""
    wide = _wide(table)
    if not set(TARGETS) <= set(wide.columns):
        return None
    far = float((wide["embedded"] - wide["input"]).abs().mean())
    return float((wide["reprojected"] - wide["input"]).abs().mean()) / far if far else None


def summarize(c: ReconstructionConfig, result: LabResult) -> dict[str, Any]:
    table = cells(result)
    big = table[table["target"] == "input"]
    accuracy = table.groupby("target")["probe_accuracy"].mean()
    return {
        "cells": table.to_dict("records"),
        "mean_accuracy": {t: float(accuracy[t]) for t in c.targets},
        "big_fish_wider_raises_accuracy": trend(
            big, "n_hidden", "probe_accuracy", falls=False, perfect=PERFECT
        ),
        "big_fish_change_along_d": mean_change(table, "n_embed"),
        "big_fish_change_along_m": mean_change(table, "n_hidden"),
        "bottleneck_over_hidden": bottleneck_over_hidden(table),
        "small_fish_better": small_fish_better(table),
        "small_fish_median_when_m_below_n": small_fish_short(table),
        "reprojector_closeness": reprojector_closeness(table),
    }


def draw(c: ReconstructionConfig, result: LabResult, out_dir: Path) -> list[str]:
    """Accuracy over m (y) x d (x): one row of panels per target, one column per n."""
    table = cells(result)
    ds, ms = sorted(table["n_embed"].unique()), sorted(table["n_hidden"].unique())
    rows, cols = list(c.targets), list(c.n_features)
    with style():
        fig = new_figure(
            max(5.0, 2.6 * len(cols) + 0.4),
            2.4 * len(rows) + 0.6,
            "MLP behind a random embedding E: one-hot accuracy",
        )
        axes = fig.subplots(
            len(rows),
            len(cols),
            squeeze=False,
            gridspec_kw={"top": 1 - 0.55 / (2.4 * len(rows) + 0.6), "hspace": 0.6, "wspace": 0.4},
        )
        for (r, target), (k, n) in itertools.product(enumerate(rows), enumerate(cols)):
            g = table[(table["target"] == target) & (table["n_features"] == n)]
            grid = g.pivot(index="n_hidden", columns="n_embed", values="probe_accuracy")
            paint = partial(
                grid_heatmap,
                values=grid.reindex(index=ms, columns=ds).to_numpy(),
                xs=ds,
                ys=ms,
                xlabel="bottleneck d",
                ylabel="hidden size m",
                title=f"{TARGETS.get(target, target)} ({target}), n={n}",
                vlim=(0.0, 1.0),
                cmap="magma",
            )
            guarded(axes[r, k], paint)
    return [save(fig, out_dir, "fish_accuracy.png")]


def run(c: ReconstructionConfig, lab: Lab) -> Path:
    result = lab.train(sweep(c))
    return lab.finish(summarize(c, result), draw(c, result, lab.out))


# --- claims and deviations ---------------------------------------------------------------------

_BIG = (
    "The clearest finding, in this case, is that the bottleneck size does not seem to affect "
    "the outcome by a lot and only the hidden size of the network is relevant for its "
    "reconstruction loss and accuracy."
)
_SMALL = (
    "In this case, we can recover more inputs from the input to the network than in the "
    "previous setting."
)
_SHORT = (
    "However, the fact that it is still unable to reconstruct all inputs seems to imply "
    "that ReLU networks struggle with computations in superposition"
)
_REPROJECTOR = "These results look pretty similar to the big fish setting"

CLAIMS = (
    Claim(
        "big-fish-wider-raises-accuracy",
        quote(_BIG),
        "Big fish (reconstruct x from E x): the wider the hidden layer, the higher the one-hot "
        "accuracy.",
        "share of the big fish's grid lines along m (n and d fixed; lines with accuracy 1 at "
        "both ends left out) on which the one-hot accuracy at the largest m is higher than at "
        f"the smallest; {SHARE}: the finding holds on the grid",
        Criterion(">=", SHARE),
        lambda s: s["big_fish_wider_raises_accuracy"],
    ),
    Claim(
        "big-fish-bottleneck-matters-little",
        quote(_BIG),
        "Big fish: the bottleneck's size d moves the accuracy much less than the hidden size m.",
        "mean |accuracy change| from the smallest to the largest d (n, m fixed) over the mean "
        "|accuracy change| from the smallest to the largest m (n, d fixed), big fish, over the "
        f"ranges swept; {LITTLE}: at most half as much",
        Criterion("<=", LITTLE),
        lambda s: s["bottleneck_over_hidden"],
    ),
    Claim(
        "small-fish-recovers-more",
        quote(_SMALL),
        "Small fish (reconstruct E x, the identity) recovers more one-hot inputs than big fish.",
        "share of the cells (n, d, m; cells with accuracy 1 in both left out) where the small "
        f"fish's one-hot accuracy is above the big fish's; {SHARE}: the finding holds on the grid",
        Criterion(">=", SHARE),
        lambda s: s["small_fish_better"],
    ),
    Claim(
        "small-fish-not-all-inputs",
        quote(_SHORT),
        "Small fish still does not recover every input when the hidden layer is narrower than "
        "the number of features.",
        "median one-hot accuracy of the small fish over the cells with m < n; "
        f"{NOT_ALL}: not all inputs",
        Criterion("<", NOT_ALL),
        lambda s: s["small_fish_median_when_m_below_n"],
    ),
    Claim(
        "reprojector-like-big-fish",
        quote(_REPROJECTOR),
        "The re-projector (reconstruct E' x from E x) behaves like the big fish, not like the "
        "small fish.",
        "mean |re-projector - big fish| one-hot accuracy over the cells over mean |small fish - "
        f"big fish| (0: the same as the big fish, 1: as far as the small fish); {SIMILAR}: "
        "at most half as far",
        Criterion("<=", SIMILAR),
        lambda s: s["reprojector_closeness"],
    ),
)


def source_deviations(c: ReconstructionConfig) -> list[str]:
    """How a fish config differs from the source's setting."""
    known = [
        Known("model", "mlp", "the source's MLP block: two layers, two biases, one ReLU"),
        Known("dataset_size", 1000, "the source trains on a fixed set of 1,000 points"),
        Known("sparsities", (0.99,), "the source's sparsity is 0.99"),
        Known("targets", tuple(TARGETS), "the source's three settings"),
    ]
    compared = ("importance", "n_features", "n_embed", "hidden", "noise", "replicates",
                "train.steps", "train.lr", "train.test_size")  # fmt: skip
    always = [
        "The grid's n, d and m values are ours: the source's are in figures the seed text does "
        "not give, and so are its importance, noise and training budget (we take uniform "
        "importance, no noise and the reconstruction lab's 5,000 steps).",
        BIAS_DECAY,
    ]
    return deviations(c, known, FISH.presets["paper"], compared, always)


_PAPER = ReconstructionConfig(
    model="mlp",
    importance=("uniform",),
    n_features=(100, 200),
    n_embed=(10, 20, 40),
    hidden=(10, 25, 50, 100),
    sparsities=(0.99,),
    noise=0.0,
    targets=tuple(TARGETS),
)

FISH = Setting(
    name="fish",
    about="Hobbhahn (2023), limits of reconstruction behind a random embedding E: big fish "
    "(x from E x), small fish (E x from E x), re-projector (E' x from E x) over n x d x m",
    presets={
        "quick": replace(
            _PAPER,
            n_features=(30,),
            n_embed=(5, 10),
            hidden=(3, 10, 30),
            dataset_size=300,
            train=TrainConfig(steps=1000, lr=1e-2, log_every=500, test_size=300),
        ),
        "paper": _PAPER,
    },
    engine=Lab,
    run=run,
    claims=CLAIMS,
    deviations=source_deviations,
)

__all__ = ["FISH", "bottleneck_over_hidden", "reprojector_closeness", "small_fish_better"]
