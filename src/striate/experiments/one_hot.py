"""`one-hot`: Hobbhahn (2023)'s appendix on orthogonal, noiseless inputs.

The training set is the n one-hot vectors (T = n, no noise, MSE). The source: an MLP (two
layers, two biases, a ReLU between them) "struggles to accurately reconstruct the input when
the hidden size is much lower than the dataset size", where the models "without ReLUs in the
middle" (the ReLU output bottleneck, x' = ReLU(W^T W x + b)) did not, "suggest[ing] that the
ReLU makes superposition harder". The grid is both models x n x m; accuracy forwards the n
one-hot vectors and asks whether the output's argmax is the input's. The claims read the cells
where m is much below T (m <= T / MUCH), with thresholds fixed in code before any run.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from striate.experiments.claims import Claim, Criterion
from striate.experiments.figures import grid_heatmap, guarded, new_figure, save
from striate.experiments.reconstruction import PERFECT, SHARE, ReconstructionConfig, cells, sweep
from striate.experiments.setting import Setting
from striate.experiments.toy.claims import BIAS_DECAY, Known, deviations, quote
from striate.experiments.toy.lab import Lab
from striate.experiments.toy.sweep import LabResult
from striate.experiments.toy.train import TrainConfig
from striate.render.style import style

#: the MLP, and the bottleneck without a ReLU in the middle
MODELS = ("mlp", "relu-output")
#: "much lower than the dataset size": m at most T / MUCH
MUCH = 4
#: "struggles to accurately reconstruct": a median one-hot accuracy below this; "did not have
#: this problem": at least this
ACCURATE = 0.9


def _narrow(table: pd.DataFrame) -> pd.DataFrame:
    """The cells with m much below T (= n for one-hot data)."""
    narrow: pd.DataFrame = table[table["n_hidden"] * MUCH <= table["n_features"]]
    return narrow


def median_accuracy(table: pd.DataFrame, model: str) -> float | None:
    """`model`'s median one-hot accuracy over the cells with m <= T / MUCH."""
    acc = _narrow(table).loc[lambda t: t["model"] == model, "probe_accuracy"]
    return float(acc.median()) if len(acc) else None


def bottleneck_better(table: pd.DataFrame) -> float | None:
    """Share of the cells with m <= T / MUCH (either accuracy below 1) where the bottleneck's
    one-hot accuracy is above the MLP's."""
    wide = _narrow(table).pivot_table(index=["n_features", "n_hidden"], columns="model",
                                      values="probe_accuracy")  # fmt: skip
    if not set(MODELS) <= set(wide.columns):
        return None
    open_ = np.minimum(wide["mlp"], wide["relu-output"]) < PERFECT
    better = wide["relu-output"][open_] > wide["mlp"][open_]
    return float(better.mean()) if len(better) else None


def summarize(c: ReconstructionConfig, result: LabResult) -> dict[str, Any]:
    table = cells(result)
    return {
        "cells": table.to_dict("records"),
        "much_below": MUCH,
        "mlp_median_when_m_much_below_T": median_accuracy(table, "mlp"),
        "bottleneck_median_when_m_much_below_T": median_accuracy(table, "relu-output"),
        "bottleneck_better": bottleneck_better(table),
    }


def draw(c: ReconstructionConfig, result: LabResult, out_dir: Path) -> list[str]:
    """One-hot accuracy over m (y) x T = n (x), one panel per model."""
    table = cells(result)
    ns, ms = sorted(table["n_features"].unique()), sorted(table["n_hidden"].unique())
    models = list(c.models or (c.model,))
    with style():
        fig = new_figure(2.9 * len(models) + 0.4, 3.0, "one-hot inputs, no noise: accuracy")
        axes = fig.subplots(1, len(models), squeeze=False,
                            gridspec_kw={"top": 0.8, "bottom": 0.18, "wspace": 0.4})  # fmt: skip
        for ax, model in zip(axes[0], models, strict=True):
            grid = table[table["model"] == model].pivot(
                index="n_hidden", columns="n_features", values="probe_accuracy"
            )
            paint = partial(grid_heatmap, values=grid.reindex(index=ms, columns=ns).to_numpy(),
                            xs=ns, ys=ms, xlabel="T = n one-hot vectors", ylabel="hidden size m",
                            title=model, vlim=(0.0, 1.0), cmap="magma")  # fmt: skip
            guarded(ax, paint)
    return [save(fig, out_dir, "one_hot_accuracy.png")]


def run(c: ReconstructionConfig, lab: Lab) -> Path:
    result = lab.train(sweep(c))
    return lab.finish(summarize(c, result), draw(c, result, lab.out))


# --- claims and deviations ---------------------------------------------------------------------

_MLP = ("When we compare the hidden size vs. dataset size scaling for orthogonal noiseless "
        "inputs (i.e. one-hot vectors), we see that an MLP trained with MSE struggles to "
        "accurately reconstruct the input when the hidden size is much lower than the dataset "
        "size.")  # fmt: skip
_BOTTLENECK = ("In the cases without ReLUs in the middle, we did not have this problem and it "
               "seems to suggest that the ReLU makes superposition harder.")  # fmt: skip
_CELLS = f"the cells with m <= T / {MUCH} (T = n, the one-hot vectors)"

CLAIMS = (
    Claim(
        "mlp-struggles-when-m-much-below-T",
        quote(_MLP),
        "On the one-hot vectors, an MLP with far fewer hidden neurons than vectors does not "
        "reconstruct them accurately.",
        f"the MLP's median one-hot accuracy over {_CELLS}; {ACCURATE}: accurate",
        Criterion("<", ACCURATE),
        lambda s: s["mlp_median_when_m_much_below_T"],
    ),
    Claim(
        "bottleneck-does-not-struggle",
        quote(_BOTTLENECK),
        "The ReLU output bottleneck (no ReLU in the middle) reconstructs them accurately in the "
        "same cells.",
        f"the bottleneck's median one-hot accuracy over {_CELLS}; {ACCURATE}: accurate",
        Criterion(">=", ACCURATE),
        lambda s: s["bottleneck_median_when_m_much_below_T"],
    ),
    Claim(
        "bottleneck-beats-the-mlp",
        quote(_BOTTLENECK),
        "Where m is much below T, the bottleneck recovers more one-hot vectors than the MLP.",
        f"share of {_CELLS} (either accuracy below 1) where the bottleneck's one-hot accuracy "
        f"is above the MLP's; {SHARE}: the finding holds on the grid",
        Criterion(">=", SHARE),
        lambda s: s["bottleneck_better"],
    ),
)


def source_deviations(c: ReconstructionConfig) -> list[str]:
    """How a one-hot config differs from the source's setting."""
    known = [
        Known("data", "one-hot", "the source's orthogonal inputs are the one-hot vectors"),
        Known("noise", 0.0, "the source's setting is noiseless"),
        Known("models", MODELS, "the source compares the MLP with the models without a ReLU "
              "in the middle (our reading: its ReLU output bottleneck)"),
    ]  # fmt: skip
    compared = ("importance", "n_features", "hidden", "replicates", "train.steps", "train.lr")
    always = [
        "The grid's n (= T) and m values are ours: the source's are in a figure the seed text "
        "does not give, and so are its importance and training budget (we take uniform "
        "importance and the reconstruction lab's 5,000 steps).",
        BIAS_DECAY,
    ]
    return deviations(c, known, ONE_HOT.presets["paper"], compared, always)


_PAPER = ReconstructionConfig(
    model="mlp",
    models=MODELS,
    importance=("uniform",),
    n_features=(20, 50, 100, 200),
    hidden=(2, 5, 10, 25, 50),
    sparsities=(0.0,),
    noise=0.0,
    data="one-hot",
)
_QUICK = ReconstructionConfig(
    model="mlp",
    models=MODELS,
    importance=("uniform",),
    n_features=(12, 40),
    hidden=(2, 3, 10),
    sparsities=(0.0,),
    noise=0.0,
    data="one-hot",
    train=TrainConfig(steps=1500, lr=1e-2, log_every=500, test_size=100),
)

ONE_HOT = Setting(
    name="one-hot",
    about="Hobbhahn (2023), appendix: reconstructing the n one-hot vectors (no noise), the MLP "
    "against the ReLU output bottleneck, over T = n x m",
    presets={"quick": _QUICK, "paper": _PAPER},
    engine=Lab,
    run=run,
    claims=CLAIMS,
    deviations=source_deviations,
)

__all__ = ["ONE_HOT", "bottleneck_better", "median_accuracy"]
