"""`superposition` and `privileged`: sparsity sweeps of Elhage et al. (2022), fresh data.

- superposition: the ReLU output model, n=20 features, m=5, importance 0.7^i, 1 - S from 1
  to 0.001 ("basic results"). Dense: the m most important features get orthogonal directions,
  the rest none. Sparse: more than m features, in superposition.
- privileged: the ReLU hidden model, n=10, m=5 neurons, importance 0.75^i. Dense: monosemantic
  neurons; sparse: features shared by several neurons. The paper trains 1000 models per
  sparsity and shows the lowest loss; the figures here show the lowest-loss replicate.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from striate.experiments.figures import draw_basic_results, draw_privileged, save
from striate.experiments.setting import Setting
from striate.experiments.toy.instance import Instance
from striate.experiments.toy.lab import Lab
from striate.experiments.toy.metrics import REPRESENTED_NORM
from striate.experiments.toy.sweep import LabResult
from striate.experiments.toy.train import TrainConfig

#: a neuron carries a feature when |W_ji| exceeds this share of the largest |W| of the model
NEURON_SHARE = 0.5


@dataclass(frozen=True)
class SparsityConfig:
    """A sweep over feature sparsity S, fresh batches every step."""

    model: str = "relu-output"  # "relu-output" (superposition) or "relu-hidden" (privileged)
    n_features: int = 20  # n
    n_hidden: int = 5  # m
    importance: str = "0.7"  # I_i = 0.7 ** i ("uniform", "decay" or a ratio r: r ** i)
    sparsities: tuple[float, ...] = (0.0, 0.7, 0.9, 0.97, 0.99, 0.997, 0.999)  # 1 - S: 1 ... .001
    replicates: int = 4  # seeds per sparsity; figures show the lowest final train loss
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=10_000, log_every=500))


def sweep(c: SparsityConfig) -> list[Instance]:
    grid = [(s, r) for s in c.sparsities for r in range(c.replicates)]
    return [
        Instance(
            index=i,
            model=c.model,
            n_features=c.n_features,
            n_hidden=c.n_hidden,
            sparsity=s,
            importance=c.importance,
            lr=c.train.lr,
            weight_decay=c.train.weight_decay,
            replicate=r,
        )
        for i, (s, r) in enumerate(grid)
    ]


def best_replicates(result: LabResult) -> pd.DataFrame:
    """The last logged row of the lowest-loss replicate at each sparsity.

    Lowest train loss: with fresh batches it is the mean over the last `log_every` steps
    (hundreds of thousands of samples), a finer ruler than the test set.
    """
    last = result.last()
    best: pd.DataFrame = last.loc[last.groupby("sparsity")["train_loss"].idxmin()]
    out: pd.DataFrame = best.sort_values("sparsity")
    return out


def _represented(result: LabResult) -> pd.Series:
    """Features with ||W_i|| > REPRESENTED_NORM, per instance."""
    f = result.features
    return (f["norm"] > REPRESENTED_NORM).groupby(f["instance"]).sum()


def summarize_superposition(c: SparsityConfig, result: LabResult) -> dict[str, Any]:
    counts = _represented(result)
    last = result.last()
    rows = []
    for _, best in best_replicates(result).iterrows():
        i = int(best["instance"])
        f = result.features[result.features["instance"] == i]
        kept = f[f["norm"] > REPRESENTED_NORM]
        same_s = last[last["sparsity"] == best["sparsity"]]["instance"]
        rows.append({
            "sparsity": float(best["sparsity"]),
            "instance": i,
            "train_loss": float(best["train_loss"]),
            "test_loss": float(best["test_loss"]),
            "represented": int(counts[i]),
            "represented_mean": float(counts[same_s].mean()),
            "max_superposition": float(kept["superposition"].max()) if len(kept) else 0.0,
            "dims_per_feature": float(best["dims_per_feature"]),
        })  # fmt: skip
    dense, sparsest = rows[0], rows[-1]
    return {
        "n_features": c.n_features,
        "n_hidden": c.n_hidden,
        "represented_norm": REPRESENTED_NORM,
        "by_sparsity": rows,
        "dense_sparsity": dense["sparsity"],
        "dense_represented": dense["represented"],
        "dense_max_superposition": dense["max_superposition"],
        "sparsest_sparsity": sparsest["sparsity"],
        "sparsest_represented": sparsest["represented"],
        "claims": {
            "dense_keeps_m_features": dense["represented"] == c.n_hidden,
            "dense_has_no_superposition": dense["max_superposition"] < 0.1,
            "sparse_represents_more_than_m": sparsest["represented"] > c.n_hidden,
        },
    }


def _label(s: float) -> str:
    return f"1-S = {1 - s:.3g}"


def draw_superposition(c: SparsityConfig, result: LabResult, out_dir: Path) -> list[str]:
    columns = []
    for _, best in best_replicates(result).iterrows():
        i = int(best["instance"])
        f = result.features[result.features["instance"] == i]
        fin = result.final[i]
        columns.append((_label(best["sparsity"]), fin.features, fin.bias,
                        f["superposition"].to_numpy()))  # fmt: skip
    title = f"ReLU output model, n={c.n_features}, m={c.n_hidden}, importance {c.importance}"
    return [save(draw_basic_results(columns, title), out_dir, "basic_results.png")]


def run_superposition(c: SparsityConfig, lab: Lab) -> Path:
    result = lab.train(sweep(c))
    return lab.finish(summarize_superposition(c, result), draw_superposition(c, result, lab.out))


def neurons(W: np.ndarray) -> tuple[int, int]:
    """(monosemantic, polysemantic) neurons of W (m, n): carrying one feature, or more."""
    carried = np.abs(W) > NEURON_SHARE * max(float(np.abs(W).max()), 1e-30)
    per_neuron = carried.sum(1)
    return int((per_neuron == 1).sum()), int((per_neuron > 1).sum())


def summarize_privileged(c: SparsityConfig, result: LabResult) -> dict[str, Any]:
    counts = _represented(result)
    rows = []
    for _, best in best_replicates(result).iterrows():
        i = int(best["instance"])
        mono, poly = neurons(result.final[i].params["W"])
        same_s = [j.index for j in result.instances if j.sparsity == best["sparsity"]]
        all_mono = [neurons(result.final[j].params["W"])[0] == c.n_hidden for j in same_s]
        rows.append({
            "sparsity": float(best["sparsity"]),
            "instance": i,
            "train_loss": float(best["train_loss"]),
            "represented": int(counts[i]),
            "monosemantic_neurons": mono,
            "polysemantic_neurons": poly,
            "all_monosemantic_share": float(np.mean(all_mono)),  # over the replicates
        })  # fmt: skip
    dense, sparsest = rows[0], rows[-1]
    return {
        "n_features": c.n_features,
        "n_hidden": c.n_hidden,
        "neuron_share": NEURON_SHARE,
        "by_sparsity": rows,
        "dense_monosemantic_neurons": dense["monosemantic_neurons"],
        "dense_all_monosemantic_share": dense["all_monosemantic_share"],
        "sparsest_polysemantic_neurons": sparsest["polysemantic_neurons"],
        "sparsest_all_monosemantic_share": sparsest["all_monosemantic_share"],
        "claims": {
            "dense_neurons_monosemantic": dense["monosemantic_neurons"] == c.n_hidden,
            "sparse_neurons_polysemantic": sparsest["polysemantic_neurons"] > 0,
        },
    }


def draw_privileged_lab(c: SparsityConfig, result: LabResult, out_dir: Path) -> list[str]:
    columns = [(_label(best["sparsity"]), result.final[int(best["instance"])].params["W"])
               for _, best in best_replicates(result).iterrows()]  # fmt: skip
    title = f"ReLU hidden model, n={c.n_features}, m={c.n_hidden}, importance {c.importance}"
    return [save(draw_privileged(columns, title), out_dir, "privileged.png")]


def run_privileged(c: SparsityConfig, lab: Lab) -> Path:
    result = lab.train(sweep(c))
    return lab.finish(summarize_privileged(c, result), draw_privileged_lab(c, result, lab.out))


QUICK_TRAIN = TrainConfig(steps=2000, batch_size=512, lr=1e-2, log_every=500, test_size=500)

SUPERPOSITION = Setting(
    name="superposition",
    about="Elhage et al. (2022), basic results: the ReLU output model across sparsities",
    presets={
        "quick": SparsityConfig(sparsities=(0.0, 0.99), replicates=2, train=QUICK_TRAIN),
        "paper": SparsityConfig(),
    },
    engine=Lab,
    run=run_superposition,
)

_PRIVILEGED = SparsityConfig(
    model="relu-hidden",
    n_features=10,
    n_hidden=5,
    importance="0.75",
    sparsities=(0.0, 0.7, 0.85, 0.88, 0.94, 0.97, 0.99),  # 1 - S = 1, .3, .15, .12, .06, .03, .01
    replicates=20,
)

PRIVILEGED = Setting(
    name="privileged",
    about="Elhage et al. (2022), superposition in a privileged basis: the ReLU hidden model",
    presets={
        "quick": replace(_PRIVILEGED, sparsities=(0.0, 0.97), replicates=4, train=QUICK_TRAIN),
        "paper": _PRIVILEGED,
    },
    engine=Lab,
    run=run_privileged,
)
