"""Memorization: an MLP that fits shuffled labels ends with higher-rank weights than one that
learns the true labels.

The same MLP, init and data order train (SGD with momentum, the learning rate falling linearly
to 0) on the true labels and on a fixed random permutation of them (memorization: the test
accuracy stays at chance) until both fit the training set. The claim under test: the
memorizing network ends with higher effective rank, in its weights W_T and in its update
W_T - W_0 (`update0_effective_rank` of `striate track`'s dynamics table).

Both pairs run at two weight decays because each measure needs one of them. Without weight
decay W_T is mostly the random init (full rank, the same in both runs): the update tells the
runs apart, the final weights do not (the memorizer's larger update even lowers W_T's rank a
little). With weight decay the init decays away and W_T is the learned part, which carries the
difference, while the update W_T - W_0 is then mostly -W_0 (full rank in both runs). So the
claims are read where each measure means something: the update at the smallest weight decay
(0), the final weights at the largest.

    striate experiment memorization --out runs/mem --preset full    # ~13 minutes on 2 CPU cores
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from striate.experiments.data import Dataset, load
from striate.experiments.figures import draw_curves, draw_sweep
from striate.experiments.harness import Condition, Experiment, Tracked, log_schedule
from striate.experiments.measures import crossing_step, weight_matrices
from striate.experiments.mlp import linear_decay, make_mlp, seed_of, sgd, train
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
    weight_decays: tuple[float, ...] = (0.0, 2e-4)  # each: true and shuffled; 0 reads the update
    steps: int = 30000  # SGD steps; long enough for the shuffled labels to fit
    fit_acc: float = 0.99  # "fits the training set": train accuracy at least this
    checkpoints: int = 16  # checkpoints per run, log-spaced over [0, steps]
    eval_every: int = 500  # metrics logged every this many steps (and at checkpoints)
    seed: int = 0  # the data subset, the label permutation, the init and the data order


PRESETS: dict[str, Config] = {
    "full": Config(),  # ~13 minutes on 2 CPU cores
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
    """Per matrix: shuffled minus true, final effective rank and update effective rank."""
    rank, update = "effective_rank", "update_effective_rank"
    return {n: {"rank": shuffled[rank][n] - true[rank][n],
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
    low, high = gap[f"wd={min(cfg.weight_decays):g}"], gap[f"wd={max(cfg.weight_decays):g}"]
    test_acc = {n: c["final_test_acc"] for n, c in conds.items()}
    summary = {
        "conditions": conds,
        "shuffled_minus_true": gap,
        "claims": {
            "all_runs_fit_the_training_set": all(
                c["final_train_acc"] >= cfg.fit_acc for c in conds.values()
            ),
            "shuffled_labels_do_not_generalize": all(
                test_acc[f"shuffled {w}"] < 0.5 * test_acc[f"true {w}"] for w in gap
            ),
            # (2) memorizing takes a higher-rank update, every matrix (read without weight decay)
            "update_rank_higher_when_memorizing": all(g["update_rank"] > 0 for g in low.values()),
            # ... and ends with higher-rank weights (read with weight decay: the init decayed)
            "final_rank_higher_when_memorizing": all(g["rank"] > 0 for g in high.values()),
        },
    }
    return ex.finish(summary, figures(tracked, conds, cfg, ex.out / "figures"))


def figures(tracked: Tracked, conds: dict[str, Any], cfg: Config, folder: Path) -> list[str]:
    rows = []
    for name, c in conds.items():
        labels, wd = name.split(" wd=")
        row: dict[str, Any] = {"labels": labels, "weight_decay": float(wd)}
        for matrix in c["effective_rank"]:
            row[f"{matrix} rank"] = c["effective_rank"][matrix]
            row[f"{matrix} update rank"] = c["update_effective_rank"][matrix]
        rows.append(row)
    table = pd.DataFrame(rows)
    panels = [c for c in table.columns if c.endswith("rank")]
    markers = {n: {f"train {cfg.fit_acc:.0%}": c["fit_step"]} for n, c in conds.items()}
    return [
        draw_curves(tracked, markers, folder / "curves.png",
                    f"Memorization: true against shuffled labels ({cfg.dataset})"),
        draw_sweep(table, "weight_decay", panels, folder / "ranks.png",
                   "Final effective rank of W_T and of W_T - W_0, per matrix", hue="labels",
                   log_x=True),
    ]  # fmt: skip


MEMORIZATION = Setting(
    name="memorization",
    about="Memorization: an MLP fitting shuffled labels ends with higher-rank weights and "
    "updates than one learning the true labels",
    presets=PRESETS,
    engine=Experiment,
    run=run,
)
