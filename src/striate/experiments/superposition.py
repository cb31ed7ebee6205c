"""`superposition` and `privileged`: sparsity sweeps of Elhage et al. (2022), fresh data.

- superposition: the ReLU output model, n=20 features, m=5, importance 0.7^i, 1 - S from 1
  to 0.001 ("basic results"). Dense: the m most important features get orthogonal directions,
  the rest none. Sparse: more than m features, in superposition.
- privileged: the ReLU hidden model, n=10, m=5 neurons, importance 0.75^i. Dense: monosemantic
  neurons; sparse: features shared by several neurons. The paper trains 1000 models per
  sparsity and shows the lowest loss; the figures here show the lowest-loss replicate.

Hobbhahn (2023, the seed text) replicates both; the claims (`SUPERPOSITION.claims`,
`PRIVILEGED.claims`) quote him and read the lowest-loss replicate of every sparsity, as TMS's
figures do. Their thresholds were fixed before any run over seeds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from striate.experiments.claims import Claim, Criterion
from striate.experiments.figures import draw_basic_results, draw_privileged, draw_sweep, save
from striate.experiments.setting import Setting
from striate.experiments.toy.claims import Known, deviations, over_seeds, quote, rank_correlation
from striate.experiments.toy.instance import Instance
from striate.experiments.toy.lab import Lab
from striate.experiments.toy.metrics import REPRESENTED_NORM
from striate.experiments.toy.sweep import LabResult
from striate.experiments.toy.train import TrainConfig

DrawSeeds = Callable[[list[Path], Path], list[str]]  # a Setting's draw_seeds

#: a neuron carries a feature when |W_ji| exceeds this share of the largest |W| of the model
NEURON_SHARE = 0.5


@dataclass(frozen=True)
class SparsityConfig:
    """A sweep over feature sparsity S, fresh batches every step."""

    model: str = "relu-output"  # "relu-output" (superposition), "linear" (its control) or
    # "relu-hidden" (privileged)
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


def top_m_mismatch(norms: np.ndarray, importance: np.ndarray, m: int) -> int | None:
    """Features in one set and not the other: those represented (norm > REPRESENTED_NORM)
    and the m most important (0: exactly the m most important); None when importance ties
    leave the m most important undefined.

    >>> top_m_mismatch(np.array([1.0, 0.9, 0.0, 0.7]), np.array([1.0, 0.7, 0.49, 0.34]), 2)
    1
    """
    order = np.argsort(-importance, kind="stable")
    if m < len(order) and importance[order[m - 1]] == importance[order[m]]:
        return None
    kept = set(np.flatnonzero(norms > REPRESENTED_NORM).tolist())
    return len(kept ^ set(order[:m].tolist()))


def summarize_superposition(c: SparsityConfig, result: LabResult) -> dict[str, Any]:
    counts = _represented(result)
    last = result.last()
    rows: list[dict[str, Any]] = []
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
            "top_m_mismatch": top_m_mismatch(f["norm"].to_numpy(), f["importance"].to_numpy(),
                                             c.n_hidden),
        })  # fmt: skip
    dense, sparsest = rows[0], rows[-1]
    mismatches = [r["top_m_mismatch"] for r in rows if r["top_m_mismatch"] is not None]
    return {
        "n_features": c.n_features,
        "n_hidden": c.n_hidden,
        "represented_norm": REPRESENTED_NORM,
        "by_sparsity": rows,
        "dense_sparsity": dense["sparsity"],
        "dense_represented": dense["represented"],
        "dense_top_m_mismatch": dense["top_m_mismatch"],
        "dense_max_superposition": dense["max_superposition"],
        "sparsest_sparsity": sparsest["sparsity"],
        "sparsest_represented": sparsest["represented"],
        # the claims' measures (see SUPERPOSITION.claims)
        "sparsest_represented_per_dim": sparsest["represented"] / c.n_hidden,
        "sparsest_represented_share": sparsest["represented"] / c.n_features,
        "represented_sparsity_spearman": rank_correlation(
            [r["sparsity"] for r in rows], [r["represented"] for r in rows]
        ),
        # the linear control's (see LINEAR.claims): over every sparsity swept
        "max_top_m_mismatch": max(mismatches) if mismatches else None,
        "max_superposition_any_sparsity": max(r["max_superposition"] for r in rows),
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
    model = "linear model" if c.model == "linear" else "ReLU output model"
    title = f"{model}, n={c.n_features}, m={c.n_hidden}, importance {c.importance}"
    return [save(draw_basic_results(columns, title), out_dir, "basic_results.png")]


def run_superposition(c: SparsityConfig, lab: Lab) -> Path:
    result = lab.train(sweep(c))
    return lab.finish(summarize_superposition(c, result), draw_superposition(c, result, lab.out))


def neurons(W: np.ndarray) -> tuple[int, int]:
    """(monosemantic, polysemantic) neurons of W (m, n): carrying one feature, or more."""
    carried = np.abs(W) > NEURON_SHARE * max(float(np.abs(W).max()), 1e-30)
    per_neuron = carried.sum(1)
    return int((per_neuron == 1).sum()), int((per_neuron > 1).sum())


def monosemanticity(W: np.ndarray) -> float:
    """Share of W's squared weight (W: (m, n), neurons x features) on each neuron's largest
    feature: 1 when every neuron reads one feature, 1/n when every neuron spreads evenly over
    all n. Neurons count by their squared norm, so a dead neuron counts for nothing.

    >>> monosemanticity(np.array([[2.0, 0.0, 0.0], [0.0, 1.0, -1.0], [0.0, 0.0, 0.0]]))
    0.8333333333333334
    """
    sq = np.square(W, dtype=np.float64)
    total = float(sq.sum())
    return float(sq.max(1).sum() / total) if total > 0 else float("nan")


def summarize_privileged(c: SparsityConfig, result: LabResult) -> dict[str, Any]:
    counts = _represented(result)
    rows = []
    for _, best in best_replicates(result).iterrows():
        i = int(best["instance"])
        W = result.final[i].params["W"]
        mono, poly = neurons(W)
        same_s = [j.index for j in result.instances if j.sparsity == best["sparsity"]]
        all_mono = [neurons(result.final[j].params["W"])[0] == c.n_hidden for j in same_s]
        rows.append({
            "sparsity": float(best["sparsity"]),
            "instance": i,
            "train_loss": float(best["train_loss"]),
            "represented": int(counts[i]),
            "monosemanticity": monosemanticity(W),
            "monosemanticity_mean": float(np.mean(  # over the replicates
                [monosemanticity(result.final[j].params["W"]) for j in same_s])),
            "monosemantic_neurons": mono,
            "polysemantic_neurons": poly,
            "all_monosemantic_share": float(np.mean(all_mono)),  # over the replicates
        })  # fmt: skip
    dense, sparsest = rows[0], rows[-1]
    sparsities = [r["sparsity"] for r in rows]
    return {
        "n_features": c.n_features,
        "n_hidden": c.n_hidden,
        "neuron_share": NEURON_SHARE,
        "by_sparsity": rows,
        "dense_monosemantic_neurons": dense["monosemantic_neurons"],
        "dense_all_monosemantic_share": dense["all_monosemantic_share"],
        "sparsest_polysemantic_neurons": sparsest["polysemantic_neurons"],
        "sparsest_all_monosemantic_share": sparsest["all_monosemantic_share"],
        # the claims' measures (see PRIVILEGED.claims)
        "dense_monosemanticity": dense["monosemanticity"],
        "sparsest_monosemanticity": sparsest["monosemanticity"],
        "monosemanticity_sparsity_spearman": rank_correlation(
            sparsities, [r["monosemanticity"] for r in rows]
        ),
        "represented_sparsity_spearman": rank_correlation(
            sparsities, [r["represented"] for r in rows]
        ),
    }


def draw_privileged_lab(c: SparsityConfig, result: LabResult, out_dir: Path) -> list[str]:
    columns = [(_label(best["sparsity"]), result.final[int(best["instance"])].params["W"])
               for _, best in best_replicates(result).iterrows()]  # fmt: skip
    title = f"ReLU hidden model, n={c.n_features}, m={c.n_hidden}, importance {c.importance}"
    return [save(draw_privileged(columns, title), out_dir, "privileged.png")]


def run_privileged(c: SparsityConfig, lab: Lab) -> Path:
    result = lab.train(sweep(c))
    return lab.finish(summarize_privileged(c, result), draw_privileged_lab(c, result, lab.out))


# --- claims, deviations and figures over seeds -------------------------------------------------

#: a monotone trend over the sparsities swept: Spearman's rank correlation at least this
TREND = 0.8
_TMS_BASIC = "Elhage et al. 2022, 'basic results' figure"
_BEST = "in the lowest-final-train-loss replicate at "

SUPERPOSITION_CLAIMS = (
    Claim(
        "dense-keeps-top-m",
        quote(
            "We are able to reproduce the main findings of the “basic results” section of the "
            "superposition paper",
            note=f"{_TMS_BASIC}, 1 - S = 1: the m most important "
            "features get orthogonal directions, the rest none",
        ),
        "With dense features the model represents exactly the m most important features.",
        "features represented (||W_i|| > 0.5) " + _BEST + "the lowest S swept, against the m "
        "most important: the count of features in one set and not the other (0: the same)",
        Criterion("<=", 0),
        lambda s: s["dense_top_m_mismatch"],
    ),
    Claim(
        "dense-no-superposition",
        quote(
            "we get basically the same outcomes and plots as in the original paper when "
            "sweeping over different sparsities S",
            note=f"{_TMS_BASIC}, 1 - S = 1: no superposition",
        ),
        "With dense features the represented features do not interfere (no superposition).",
        "the largest sum_{j != i} (W_i_hat . W_j)^2 over the represented features "
        + _BEST
        + "the lowest S (0: orthogonal; an antipodal pair gives 1)",
        Criterion("<", 0.1),
        lambda s: s["dense_max_superposition"],
    ),
    Claim(
        "sparse-more-than-m",
        quote(
            "we get basically the same outcomes and plots as in the original paper when "
            "sweeping over different sparsities S",
            note=f"{_TMS_BASIC}: sparse features "
            "are represented beyond the m dimensions, in superposition",
        ),
        "With sparse features the model represents more features than it has dimensions.",
        "features represented " + _BEST + "the highest S swept, per hidden dimension "
        "(represented / m)",
        Criterion(">", 1.0),
        lambda s: s["sparsest_represented_per_dim"],
    ),
    Claim(
        "sparsest-nearly-all",
        quote(
            "we get basically the same outcomes and plots as in the original paper when "
            "sweeping over different sparsities S",
            note=f"{_TMS_BASIC}, 1 - S = 0.001: nearly all n = 20 features represented",
        ),
        "At the highest sparsity nearly all n features are represented.",
        "share of the n features represented " + _BEST + "the highest S swept (0.9: 18 of 20)",
        Criterion(">=", 0.9),
        lambda s: s["sparsest_represented_share"],
    ),
    Claim(
        "superposition-grows-with-sparsity",
        quote(
            "we get basically the same outcomes and plots as in the original paper when "
            "sweeping over different sparsities S",
            note=f"{_TMS_BASIC}: the sparser the features, the more of them are represented",
        ),
        "The sparser the features, the more of them the model represents.",
        "Spearman's rank correlation of S and the features represented (lowest-loss replicate "
        f"of each S) over the sparsities swept (undefined for fewer than 3); {TREND}: a "
        "monotone trend",
        Criterion(">=", TREND),
        lambda s: s["represented_sparsity_spearman"],
    ),
)

_LINEAR_NOTE = ("Elhage et al. 2022, 'basic results': the linear model x' = W^T W x + b, the "
                "control, represents the m most important features on orthogonal directions "
                "at every sparsity; superposition needs the ReLU")  # fmt: skip

LINEAR_CLAIMS = (
    Claim(
        "linear-top-m-at-every-sparsity",
        quote(
            "We are able to reproduce the main findings of the “basic results” section of the "
            "superposition paper",
            note=_LINEAR_NOTE,
        ),
        "Without the ReLU the model represents exactly the m most important features, at every "
        "sparsity.",
        "features represented (||W_i|| > 0.5) " + _BEST + "each S swept, against the m most "
        "important: the largest count, over the sparsities, of features in one set and not the "
        "other (0: the same at every S)",
        Criterion("<=", 0),
        lambda s: s["max_top_m_mismatch"],
    ),
    Claim(
        "linear-no-superposition",
        quote(
            "We are able to reproduce the main findings of the “basic results” section of the "
            "superposition paper",
            note=_LINEAR_NOTE,
        ),
        "Without the ReLU the represented features never interfere: no superposition at any "
        "sparsity.",
        "the largest sum_{j != i} (W_i_hat . W_j)^2 over the represented features "
        + _BEST
        + "each S, the largest over the sparsities (0: orthogonal)",
        Criterion("<", 0.1),
        lambda s: s["max_superposition_any_sparsity"],
    ),
)

PRIVILEGED_CLAIMS = (
    Claim(
        "dense-neurons-monosemantic",
        quote(
            "In the case of zero sparsity, the network creates five monosemantic features "
            "that we can see in the weights",
            note="Elhage et al. 2022, superposition in a privileged basis",
        ),
        "With dense features every neuron carries one feature (monosemantic neurons).",
        "monosemanticity of W " + _BEST + "the lowest S: the share of W's squared weight "
        "on each neuron's largest feature (1: one feature per neuron; 0.9: at most a tenth "
        "of the weight elsewhere)",
        Criterion(">=", 0.9),
        lambda s: s["dense_monosemanticity"],
    ),
    Claim(
        "polysemanticity-grows-with-sparsity",
        quote(
            "The more we increase sparsity, the more convoluted the layer becomes",
            "more sparsity implies more polysemanticity",
        ),
        "The sparser the features, the more polysemantic the neurons.",
        "Spearman's rank correlation of S and the monosemanticity of W (lowest-loss "
        f"replicate of each S) over the sparsities swept; -{TREND}: a monotone fall",
        Criterion("<=", -TREND),
        lambda s: s["monosemanticity_sparsity_spearman"],
    ),
    Claim(
        "superposition-grows-with-sparsity",
        quote("increasing sparsity leads to increasing superposition"),
        "The sparser the features, the more of them the model represents.",
        "Spearman's rank correlation of S and the features represented (||W_i|| > 0.5, "
        f"lowest-loss replicate of each S) over the sparsities swept; {TREND}: a monotone trend",
        Criterion(">=", TREND),
        lambda s: s["represented_sparsity_spearman"],
    ),
)

_COMPARED = ("replicates", "train.steps", "train.batch_size", "train.lr", "train.weight_decay",
             "train.warmup", "train.weight_init", "train.test_size")  # fmt: skip
_CONSTANT_LR = Known(
    "train.schedule",
    "constant",
    "TMS's notebook trains at a constant learning rate; ours warms up (5%) and decays to 0 "
    "(cosine), as SMDD",
)
_ZERO_BIAS = Known(
    "train.bias_init",
    "zero",
    "the source initializes the bias with zeros and finds the results 'very responsive to the "
    "initialization of the bias term'",
)
_REPRESENTED = (
    f"A feature counts as represented when ||W_i|| > {REPRESENTED_NORM}, a threshold we chose: "
    "the source shows the norms, not a count."
)


def _known(c: SparsityConfig) -> list[Known]:
    return [
        Known("model", c.model, f"the source's model is {c.model}"),
        Known("n_features", c.n_features, f"the source has n = {c.n_features}"),
        Known("n_hidden", c.n_hidden, f"the source has m = {c.n_hidden}"),
        Known("importance", c.importance, f"the source's importance is {c.importance}^i"),
        Known(
            "sparsities",
            c.sparsities,
            "the source sweeps S = " + ", ".join(f"{s:g}" for s in c.sparsities),
        ),
    ]


def superposition_deviations(c: SparsityConfig) -> list[str]:
    """How a superposition config differs from TMS's basic results."""
    paper = SUPERPOSITION.presets["paper"]
    known = [*_known(paper), _CONSTANT_LR, _ZERO_BIAS]
    replicates = (
        f"The claims read the lowest-loss of the replicates at each sparsity ({paper.replicates} "
        "in the paper preset); the seed text does not say how many models the source trains."
    )
    return deviations(c, known, paper, _COMPARED, [replicates, _REPRESENTED])


def linear_deviations(c: SparsityConfig) -> list[str]:
    """How a linear-control config differs from TMS's basic results (its linear model)."""
    paper = LINEAR.presets["paper"]
    known = [*_known(paper), _CONSTANT_LR, _ZERO_BIAS]
    return deviations(c, known, paper, _COMPARED, [_REPRESENTED])


def privileged_deviations(c: SparsityConfig) -> list[str]:
    """How a privileged config differs from TMS's privileged-basis setting."""
    paper = PRIVILEGED.presets["paper"]
    replicates = Known("replicates", 1000, "TMS train 1,000 models per sparsity and show the "
                       "lowest-loss one; we show the lowest-loss of ours")  # fmt: skip
    known = [*_known(paper), replicates, _CONSTANT_LR, _ZERO_BIAS]
    monosemantic = ("A neuron's monosemanticity (the share of its squared weight on its "
                    "largest feature) is our measure: the source reads W and the neurons' "
                    "stack plots by eye.")  # fmt: skip
    compared = [f for f in _COMPARED if f != "replicates"]
    return deviations(c, known, paper, compared, [_REPRESENTED, monosemantic])


def _sparsity_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**r, "1 - S": 1 - r["sparsity"]} for r in summary["by_sparsity"]]


def draw_sparsity_seeds(panels: list[str], name: str) -> DrawSeeds:
    """draw_seeds of a sparsity sweep: `panels` of the lowest-loss replicates against 1 - S,
    mean ± sd over the seeds."""

    def draw(seed_dirs: list[Path], figures: Path) -> list[str]:
        table = over_seeds(seed_dirs, _sparsity_rows)
        title = (f"{name}: lowest-loss replicate per sparsity, mean ± sd over "
                 f"{len(seed_dirs)} seeds")  # fmt: skip
        return [draw_sweep(table, "1 - S", panels, figures / f"{name}_seeds.png", title,
                           log_x=True)]  # fmt: skip

    return draw


QUICK_TRAIN = TrainConfig(steps=2000, batch_size=512, lr=1e-2, log_every=500, test_size=500)

SUPERPOSITION = Setting(
    name="superposition",
    about="Elhage et al. (2022), basic results: the ReLU output model across sparsities",
    presets={
        "quick": SparsityConfig(sparsities=(0.0, 0.9, 0.99), replicates=2, train=QUICK_TRAIN),
        "paper": SparsityConfig(),
    },
    engine=Lab,
    run=run_superposition,
    claims=SUPERPOSITION_CLAIMS,
    deviations=superposition_deviations,
    draw_seeds=draw_sparsity_seeds(
        ["represented", "max_superposition", "dims_per_feature"], "superposition"
    ),
)

#: the control: the same sweep, the same claims' measures, without the ReLU
LINEAR = replace(
    SUPERPOSITION,
    name="linear",
    about="Elhage et al. (2022), basic results: the linear model, control of the ReLU output "
    "model, across the same sparsities",
    presets={k: replace(c, model="linear") for k, c in SUPERPOSITION.presets.items()},
    claims=LINEAR_CLAIMS,
    deviations=linear_deviations,
    draw_seeds=draw_sparsity_seeds(
        ["represented", "max_superposition", "dims_per_feature"], "linear"
    ),
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
        "quick": replace(
            _PRIVILEGED, sparsities=(0.0, 0.85, 0.97), replicates=4, train=QUICK_TRAIN
        ),
        "paper": _PRIVILEGED,
    },
    engine=Lab,
    run=run_privileged,
    claims=PRIVILEGED_CLAIMS,
    deviations=privileged_deviations,
    draw_seeds=draw_sparsity_seeds(
        ["represented", "monosemanticity", "polysemantic_neurons"], "privileged"
    ),
)
