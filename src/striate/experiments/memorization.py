"""Memorization: an MLP that fits shuffled labels ends with higher-rank weights than one that
learns the true labels.

The same MLP, init and data order train (SGD with momentum, the learning rate falling linearly
to 0) on the true labels and on a fixed random permutation of them (memorization: the test
accuracy stays at chance) until both fit the training set (>= 95% train accuracy, a claim of
its own: the comparison means nothing otherwise). The claim under test, with one measure
fixed before any run: the memorizing network ends with higher-rank weights, read as the
final effective rank of every weight matrix W_T. It is decided at each weight decay of the
config apart (`CLAIMS`), because the two disagree: without weight decay W_T keeps much of the
random, full-rank init, with weight decay the init decays away and W_T is what was learned.
The rank of the update W_T - W_0 (`update0_effective_rank` of `striate track`'s dynamics
table) is reported beside it in summary.json, not decided.

    striate experiment memorization --out runs/mem --preset full --seeds 3  # ~11 min a seed
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from striate.experiments.claims import Claim, Criterion, Summary
from striate.experiments.data import Dataset, load
from striate.experiments.figures import draw_curves, draw_sweep
from striate.experiments.harness import (
    Condition,
    Experiment,
    Tracked,
    log_schedule,
    over_seeds,
)
from striate.experiments.measures import crossing_step, weight_matrices
from striate.experiments.mlp import linear_decay, make_mlp, seed_of, seed_summaries, sgd, train
from striate.experiments.setting import Setting


@dataclass(frozen=True)
class Config:
    dataset: str = "fashion-mnist"  # "fashion-mnist" or "digits" (data.py)
    n_train: int = 4000  # training examples (0: all); memorizing random labels takes long
    n_test: int = 2000  # test examples (0: all)
    hidden: tuple[int, ...] = (512, 512)  # hidden widths of the MLP
    lr: float = 0.1  # peak SGD learning rate, falling linearly to 0 at `steps`
    momentum: float = 0.9  # SGD momentum
    batch_size: int = 64  # minibatch size
    weight_decays: tuple[float, ...] = (0.0, 2e-4)  # each: true and shuffled labels
    steps: int = 30000  # SGD steps; long enough for the shuffled labels to fit
    fit_acc: float = 0.99  # the curves mark the step where train accuracy reaches this
    checkpoints: int = 16  # checkpoints per run, log-spaced over [0, steps]
    eval_every: int = 500  # metrics logged every this many steps (and at checkpoints)
    seed: int = 0  # the data subset, the label permutation, the init and the data order


PRESETS: dict[str, Config] = {
    "full": Config(),  # ~11 minutes a seed on 2 CPU cores
    "quick": Config(
        dataset="digits",
        n_train=0,
        n_test=0,
        hidden=(256, 256),
        weight_decays=(0.0, 1e-3),
        steps=5000,
        eval_every=250,
    ),
}


def shuffle_labels(data: Dataset, seed: int) -> Dataset:
    """The same images with a fixed random permutation of the training labels (test labels
    stay true, so test accuracy measures generalization: chance for a memorizer)."""
    perm = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(seed))
    return replace(data, y_train=data.y_train[perm])


def train_run(cfg: Config, ex: Experiment, data: Dataset, labels: str, wd: float) -> Condition:
    """One run: the same init and data order in every condition."""
    sizes = (data.n_inputs, *cfg.hidden, data.n_classes)
    model = make_mlp(sizes, cfg.seed)
    opt = sgd(model, cfg.lr, cfg.momentum, weight_decay=wd)
    cond = ex.condition(f"{labels} wd={wd:g}", log_schedule(cfg.steps, cfg.checkpoints),
                        labels=labels, weight_decay=wd)  # fmt: skip
    order = torch.Generator().manual_seed(cfg.seed)
    train(model, opt, data, 0, cfg.steps, batch_size=cfg.batch_size, order=order, cond=cond,
          eval_every=cfg.eval_every, lr=linear_decay(cfg.lr, cfg.steps))  # fmt: skip
    return cond


def condition_summary(tracked: Tracked, name: str, cfg: Config) -> dict[str, Any]:
    """Per condition: when it fit, and the final rank of each matrix and of its update."""
    m = tracked.metrics[tracked.metrics["condition"] == name]
    t = tracked.trajectories[tracked.trajectories["condition"] == name]
    d = tracked.dynamics[tracked.dynamics["condition"] == name]
    t_end, d_end = t[t["step"] == t["step"].max()], d[d["step"] == d["step"].max()]
    rank = dict(zip(t_end["name"], t_end["effective_rank"], strict=True))
    update = dict(zip(d_end["tensor"], d_end["update0_effective_rank"], strict=True))
    last = m.iloc[-1]
    return {
        "fit_step": crossing_step(m, "train_acc", cfg.fit_acc),
        "final_train_acc": float(last["train_acc"]),
        "final_test_acc": float(last["test_acc"]),
        "effective_rank": {n: float(rank[n]) for n in weight_matrices(t)},
        "update_effective_rank": {n: float(update[n]) for n in weight_matrices(t)},
    }


def gaps(true: dict[str, Any], shuffled: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per matrix: shuffled minus true, of the final effective rank (`rank`, and relative to
    the true labels' `relative_rank`) and of the update's effective rank (`update_rank`)."""
    rank, update = "effective_rank", "update_effective_rank"
    return {n: {"rank": shuffled[rank][n] - true[rank][n],
                "relative_rank": shuffled[rank][n] / true[rank][n] - 1.0,
                "update_rank": shuffled[update][n] - true[update][n]}
            for n in true[rank]}  # fmt: skip


def run(cfg: Config, ex: Experiment) -> Path:
    data = load(cfg.dataset, n_train=cfg.n_train, n_test=cfg.n_test, seed=cfg.seed)
    shuffled = shuffle_labels(data, seed_of(cfg.seed, 1))
    for wd in cfg.weight_decays:
        train_run(cfg, ex, data, "true", wd)
        train_run(cfg, ex, shuffled, "shuffled", wd)
    tracked = ex.track()
    conds = {c.name: condition_summary(tracked, c.name, cfg) for c in ex.conditions}
    gap = {f"wd={wd:g}": gaps(conds[f"true wd={wd:g}"], conds[f"shuffled wd={wd:g}"])
           for wd in cfg.weight_decays}  # fmt: skip
    summary = {"weight_decays": list(cfg.weight_decays), "conditions": conds,
               "shuffled_minus_true": gap}  # fmt: skip
    return ex.finish(summary, figures(tracked, conds, cfg, ex.out / "figures"))


def rank_table(conds: dict[str, Any]) -> pd.DataFrame:
    """One row per condition: labels, weight_decay, and per matrix its final rank and the rank
    of its update (`<matrix> rank`, `<matrix> update rank`)."""
    rows = []
    for name, c in conds.items():
        labels, wd = name.split(" wd=")
        row: dict[str, Any] = {"labels": labels, "weight_decay": float(wd)}
        for matrix in c["effective_rank"]:
            row[f"{matrix} rank"] = c["effective_rank"][matrix]
            row[f"{matrix} update rank"] = c["update_effective_rank"][matrix]
        rows.append(row)
    table: pd.DataFrame = pd.DataFrame(rows)
    return table


def figures(tracked: Tracked, conds: dict[str, Any], cfg: Config, folder: Path) -> list[str]:
    table = rank_table(conds)
    panels = [c for c in table.columns if c.endswith("rank")]
    markers = {n: {f"train {cfg.fit_acc:.0%}": c["fit_step"]} for n, c in conds.items()}
    return [
        draw_curves(tracked, markers, folder / "curves.png",
                    f"Memorization: true against shuffled labels ({cfg.dataset})"),
        draw_sweep(table, "weight_decay", panels, folder / "ranks.png",
                   "Final effective rank of W_T and of W_T - W_0, per matrix", hue="labels",
                   log_x=True),
    ]  # fmt: skip


def draw_seeds(runs: list[Path], folder: Path) -> list[str]:
    """The figures over seeds: every seed's curves; the final ranks, mean ± sd over seeds."""
    table = pd.concat([rank_table(s["conditions"]).assign(seed=seed)
                       for seed, s in seed_summaries(runs)], ignore_index=True)  # fmt: skip
    panels = [c for c in table.columns if c.endswith("rank")]
    return [
        draw_curves(over_seeds(runs), {}, folder / "curves.png",
                    "Memorization: true against shuffled labels, every seed"),
        draw_sweep(table, "weight_decay", panels, folder / "ranks.png",
                   "Final effective rank of W_T and of W_T - W_0, per matrix (mean ± sd over "
                   "seeds)", hue="labels", log_x=True),
    ]  # fmt: skip


# --- the claims, fixed before any run ------------------------------------------------------------

FIT = 0.95  # both runs of a pair fit the training set: final train accuracy at least this


def _rank_gap(s: Summary, wd: float | None) -> float | None:
    """The smallest over the weight matrices of (rank shuffled / rank true - 1), final W_T."""
    if wd is None:
        return None
    gaps = s["shuffled_minus_true"][f"wd={wd:g}"]
    return float(min(g["relative_rank"] for g in gaps.values()))


def _decayed(s: Summary) -> float | None:
    """The largest weight decay above 0 of the run (None: it has none)."""
    return max((wd for wd in s["weight_decays"] if wd > 0), default=None)


def _generalization_ratio(s: Summary) -> float:
    c = s["conditions"]
    return float(max(c[f"shuffled wd={wd:g}"]["final_test_acc"] / c[f"true wd={wd:g}"]
                     ["final_test_acc"] for wd in s["weight_decays"]))  # fmt: skip


SEED = ("shared/seeds/002_7ce23dd3d668ff53.txt: 'models that generalize well tend to have "
        "simpler weight structures (lower rank), while those that just memorize have more "
        "complex ones (higher rank)'; Yunis et al. 2024 (arXiv 2408.11804), abstract: 'these "
        "spectral dynamics distinguish random label training from true labels'")  # fmt: skip
RANK = (
    "Per weight matrix, the effective rank (exp of the entropy of the normalized singular "
    "values, `striate track`) of the final weights W_T, shuffled labels over true labels "
    "minus 1; the smallest over the weight matrices (every matrix must be higher). One "
    "measure for both weight decays, fixed before any run; the rank of the update "
    "W_T - W_0 is in summary.json ('shuffled_minus_true'), not decided."
)
CLAIMS = (
    Claim(
        "both_fit_the_training_set",
        "Issue 22: random against true labels 'with both at >= 95% train accuracy'",
        f"Every run, true or shuffled labels, ends with at least {FIT:.0%} train accuracy.",
        "The smallest final train accuracy over all runs (true and shuffled labels, every "
        "weight decay).",
        Criterion(">=", FIT),
        lambda s: min(c["final_train_acc"] for c in s["conditions"].values()),
    ),
    Claim(
        "shuffled_labels_do_not_generalize",
        "The premise of the comparison: a network fitting shuffled labels memorizes",
        "The network trained on shuffled labels has at most half the test accuracy of the one "
        "trained on the true labels.",
        "The largest over weight decays of the shuffled run's final test accuracy over the "
        "true run's.",
        Criterion("<", 0.5),
        _generalization_ratio,
    ),
    Claim(
        "memorizing_ends_higher_rank",
        SEED,
        "With weight decay, the network that memorizes shuffled labels ends with higher-rank "
        "weights than the one learning the true labels, in every weight matrix.",
        f"At the largest weight decay above 0 of the run. {RANK}",
        Criterion(">", 0.0),
        lambda s: _rank_gap(s, _decayed(s)),
    ),
    Claim(
        "memorizing_ends_higher_rank_without_weight_decay",
        SEED,
        "Without weight decay, the network that memorizes shuffled labels ends with "
        "higher-rank weights than the one learning the true labels, in every weight matrix.",
        f"At weight decay 0 (undefined when the run has none). {RANK}",
        Criterion(">", 0.0),
        lambda s: _rank_gap(s, 0.0 if 0.0 in s["weight_decays"] else None),
    ),
)


def deviations(cfg: Config) -> list[str]:
    """How a config differs from the source's memorization setting."""
    n = "all" if not cfg.n_train else f"{cfg.n_train:,}"
    return [
        f"An MLP {cfg.hidden} on {n} training images of {cfg.dataset}, few enough for shuffled "
        "labels to fit in minutes on a CPU; not the source's networks and data.",
        f"SGD with momentum {cfg.momentum:g}, learning rate {cfg.lr:g} falling linearly to 0 "
        f"over {cfg.steps:,} steps; weight decays "
        f"{', '.join(f'{w:g}' for w in cfg.weight_decays)}.",
        "The shuffled labels are one fixed random permutation of the true ones (the same "
        "label counts), not labels drawn uniformly.",
    ]


MEMORIZATION = Setting(
    name="memorization",
    about="Memorization: an MLP fitting shuffled labels ends with higher-rank weights than one "
    "learning the true labels",
    presets=PRESETS,
    engine=Experiment,
    run=run,
    claims=CLAIMS,
    deviations=deviations,
    draw_seeds=draw_seeds,
)
