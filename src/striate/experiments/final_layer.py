"""`final-layer`: Hobbhahn (2023)'s appendix on a final MLP layer trained with cross-entropy.

An MLP block (n = 20 inputs, m = 10 neurons, logits = W2 ReLU(W1 x + b1) + b2) classifies the
20 one-hot vectors (each its own class), full batch, with a low weight decay and with weight
decay 1. The source reads the dictionary off the weights and states: cross-entropy with low
weight decay "love[s] big activations and strongly negative weights in" W2; the network
memorizes perfectly "and yet the cosine similarities of the activations are very close to 1";
"the first bias term lifts all the activations above 0"; and "a weight decay of 1 counteracts
the desire of cross-entropy to make everything go to infinity". Each is measured per weight
decay (replicates averaged) and claimed with a threshold fixed in code before any run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from striate.experiments.claims import Claim, Criterion
from striate.experiments.figures import guarded, new_figure, save
from striate.experiments.setting import Setting
from striate.experiments.toy.claims import BIAS_DECAY, Known, deviations, quote
from striate.experiments.toy.instance import Instance
from striate.experiments.toy.lab import Lab
from striate.experiments.toy.sweep import Final, LabResult
from striate.experiments.toy.train import TrainConfig
from striate.render.style import style

#: "strongly negative weights": W2's negative entries outweigh its positive ones at least 3:1
#: in total magnitude (mean / mean |.| <= -0.5)
NEGATIVE = -0.5
#: "very close to 1": the mean pairwise cosine of the training points' activations
CLOSE_TO_ONE = 0.9
#: "lifts all the activations above 0": this share of the pre-activations W1 x + b1 positive
LIFTED = 0.9
#: "counteracts": the logit margin with weight decay 1 at most this share of the low decay's
COUNTERED = 0.5


@dataclass(frozen=True)
class FinalLayerConfig:
    n_features: int = 20  # n: inputs, one-hot vectors and classes
    hidden: int = 10  # m: neurons
    weight_decays: tuple[float, float] = (1e-2, 1.0)  # low (AdamW's default), and 1
    replicates: int = 4  # seeds per weight decay
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=3000, log_every=500, test_size=20)
    )


def sweep(c: FinalLayerConfig) -> list[Instance]:
    grid = [(wd, r) for wd in c.weight_decays for r in range(c.replicates)]
    return [Instance(index=i, model="mlp-ce", n_features=c.n_features, n_hidden=c.hidden,
                     data="one-hot", lr=c.train.lr, weight_decay=wd, replicate=r)
            for i, (wd, r) in enumerate(grid)]  # fmt: skip


def anatomy(final: Final) -> dict[str, float]:
    """One model's measures on its training set, the n one-hot vectors (x = I, so W1 x + b1
    is W1's column plus b1)."""
    p = final.params
    pre = p["W1"].T + p["b1"]  # (n, m): the pre-activations of the n training points
    act = np.maximum(pre, 0)
    logits = act @ p["W2"].T + p["b2"]  # (n, n)
    norms = np.linalg.norm(act, axis=1)
    unit = act / np.where(norms > 0, norms, 1)[:, None]
    cos = unit @ unit.T
    off = ~np.eye(len(cos), dtype=bool)
    w2 = p["W2"]
    return {
        "train_accuracy": float((logits.argmax(1) == np.arange(len(logits))).mean()),
        "w2_sign_balance": float(w2.mean() / np.abs(w2).mean()),
        "w2_mean": float(w2.mean()),
        "activation_norm": float(norms.mean()),
        "logit_margin": float((logits.max(1) - logits.mean(1)).mean()),
        "activation_cosine": float(cos[off].mean()),
        "positive_preactivations": float((pre > 0).mean()),
    }


def summarize(c: FinalLayerConfig, result: LabResult) -> dict[str, Any]:
    means, by_decay = [], []
    for wd in c.weight_decays:
        rows = [anatomy(result.final[i.index]) for i in result.instances if i.weight_decay == wd]
        means.append({k: float(np.mean([r[k] for r in rows])) for k in rows[0]})
        by_decay.append({"weight_decay": wd, "replicates": rows} | means[-1])
    low, high = means
    return {
        "by_weight_decay": by_decay,
        "low": {"weight_decay": c.weight_decays[0]} | low,
        "margin_ratio": high["logit_margin"] / low["logit_margin"] if low["logit_margin"] else None,
    }


def draw(c: FinalLayerConfig, result: LabResult, out_dir: Path) -> list[str]:
    """Replicate 0 at each weight decay: W1 with b1 (the dictionary's keys), the activations of
    the training points, W2 with b2 (its values)."""
    with style():
        fig = new_figure(9.0, 2.6 * len(c.weight_decays) + 0.5,
                         "final layer, cross-entropy on one-hot inputs: replicate 0")  # fmt: skip
        axes = fig.subplots(len(c.weight_decays), 3, squeeze=False,
                            gridspec_kw={"hspace": 0.7, "wspace": 0.35, "top": 0.86})  # fmt: skip
        for row, wd in zip(axes, c.weight_decays, strict=True):
            inst = next(i for i in result.instances if i.weight_decay == wd and i.replicate == 0)
            p = result.final[inst.index].params
            act = np.maximum(p["W1"].T + p["b1"], 0)
            panels = [(np.c_[p["W1"], p["b1"]], "W1 | b1 (neurons x inputs)"),
                      (act.T, "activations (neurons x points)"),
                      (np.c_[p["W2"], p["b2"]], "W2 | b2 (classes x neurons)")]  # fmt: skip
            for ax, (values, title) in zip(row, panels, strict=True):
                guarded(ax, partial(_matrix, values=values, title=f"{title}, wd {wd:g}"))
    return [save(fig, out_dir, "final_layer.png")]


def _matrix(ax: Any, values: np.ndarray, title: str) -> None:
    lim = float(np.abs(values).max()) or 1.0
    image = ax.imshow(values, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.figure.colorbar(image, ax=ax, fraction=0.05)
    ax.set_title(title, fontsize=7, loc="left")


def run(c: FinalLayerConfig, lab: Lab) -> Path:
    result = lab.train(sweep(c))
    return lab.finish(summarize(c, result), draw(c, result, lab.out))


# --- claims and deviations ---------------------------------------------------------------------

_LOVE = ("First, MLPs trained with cross-entropy loss (and low weight decay) love big "
         "activations and strongly negative weights in")  # fmt: skip
_COSINE = ("This network has perfectly memorized the training data and yet the cosine "
           "similarities of the activations are very close to 1")  # fmt: skip
_BIAS = ("The biases take similar roles as in the MSE setting, i.e. the first bias term lifts "
         "all the activations above 0")  # fmt: skip
_DECAY = ("Weight decay also plays a predictable role in this setting, i.e. a weight decay of 1 "
          "counteracts the desire of cross-entropy to make everything go to infinity.")  # fmt: skip
_LOW = "with the low weight decay (replicates averaged)"

CLAIMS = (
    Claim(
        "memorizes",
        quote(_COSINE),
        "With low weight decay the network classifies every training point (it memorizes).",
        f"train accuracy {_LOW}; 1: every point",
        Criterion(">=", 1.0),
        lambda s: s["low"]["train_accuracy"],
    ),
    Claim(
        "w2-strongly-negative",
        quote(_LOVE),
        "With low weight decay W2's weights are mostly and strongly negative.",
        f"mean of W2 over mean |W2| {_LOW} (-1: all negative, 0: balanced); {NEGATIVE}: the "
        "negative entries outweigh the positive ones 3:1",
        Criterion("<=", NEGATIVE),
        lambda s: s["low"]["w2_sign_balance"],
    ),
    Claim(
        "activation-cosines-near-one",
        quote(_COSINE),
        "The memorizing network's activations of different training points point almost the "
        "same way.",
        f"mean cosine between the ReLU activations of pairs of training points {_LOW}; "
        f"{CLOSE_TO_ONE}: very close to 1",
        Criterion(">=", CLOSE_TO_ONE),
        lambda s: s["low"]["activation_cosine"],
    ),
    Claim(
        "first-bias-lifts-activations",
        quote(_BIAS),
        "The first bias lifts the pre-activations above 0.",
        f"share of the pre-activations W1 x + b1 (training points x neurons) above 0 {_LOW}; "
        f"{LIFTED}: (nearly) all",
        Criterion(">=", LIFTED),
        lambda s: s["low"]["positive_preactivations"],
    ),
    Claim(
        "weight-decay-1-counteracts",
        quote(_DECAY),
        "Weight decay 1 keeps the logits from growing: their margin is much smaller than with "
        "low weight decay.",
        "mean logit margin (largest logit minus the mean logit of a training point) with weight "
        f"decay 1 over the same with the low decay; {COUNTERED}: at most half",
        Criterion("<=", COUNTERED),
        lambda s: s["margin_ratio"],
    ),
)


def source_deviations(c: FinalLayerConfig) -> list[str]:
    known = [
        Known("n_features", 20, "the source's n = 20 inputs"),
        Known("hidden", 10, "the source's m = 10 neurons"),
        Known("train.steps", 3000, "the source's second setting trains 3,000 epochs (full batch: "
              "3,000 steps)"),
    ]  # fmt: skip
    always = [
        "The source's low weight decay, learning rate and initialization are not in the seed "
        "text: we take AdamW's default weight decay 1e-2 as the low one, lr 1e-3 and the lab's "
        "Xavier-normal initialization.",
        BIAS_DECAY,
    ]
    compared = ("weight_decays", "replicates", "train.lr")
    return deviations(c, known, FINAL_LAYER.presets["paper"], compared, always)


FINAL_LAYER = Setting(
    name="final-layer",
    about="Hobbhahn (2023), appendix: a final MLP layer (n=20, m=10) classifying one-hot "
    "inputs with cross-entropy, low weight decay against 1",
    presets={
        "quick": FinalLayerConfig(
            replicates=2, train=TrainConfig(steps=1000, lr=1e-2, log_every=500, test_size=20)
        ),
        "paper": FinalLayerConfig(),
    },
    engine=Lab,
    run=run,
    claims=CLAIMS,
    deviations=source_deviations,
)

__all__ = ["FINAL_LAYER", "FinalLayerConfig", "anatomy"]
