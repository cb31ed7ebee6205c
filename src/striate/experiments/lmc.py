"""Linear mode connectivity: when do two runs that share a start end in one linear basin?

A parent MLP trains with SGD to a split step k; two copies (children a and b) continue from
its weights (and optimizer state) to the end with different data orders, i.e. different SGD
noise only. Along the straight line theta(alpha) = (1 - alpha) theta_a + alpha theta_b the loss
rises by the *barrier* max_alpha [L(theta(alpha)) - ((1 - alpha) L(theta_a) + alpha L(theta_b))];
the pair is linearly connected when it is ~0. Frankle et al. (2020) found a split step after
which the barrier vanishes; the claim under test is that it vanishes once the two children's
top singular subspaces agree, per weight matrix (`striate.analyses.dynamics.subspace_overlap`
of their top-k singular vectors, left and right).

A large SGD learning rate without momentum and small batches (peak 0.4 on Fashion-MNIST, 0.8
on digits; batch 16) make the children part ways when split at initialization: a barrier of
0.6-0.9 nats (quick preset, seeds 0-2). The rate falls linearly to 0 over the run so that both
children end settled, not bouncing, and the barrier measures the basins, not SGD noise. With
lr 0.1 and momentum 0.9 the same MLP is stable from step 0 and the experiment shows nothing.

    striate experiment lmc --out runs/lmc --preset full    # ~8 minutes on 2 CPU cores
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from striate.experiments.data import Dataset, load
from striate.experiments.figures import Markers, draw_curves, draw_sweep
from striate.experiments.harness import Experiment, Tracked, log_schedule
from striate.experiments.measures import spearman
from striate.experiments.mlp import (
    Tensors,
    evaluate,
    linear_decay,
    make_mlp,
    mean_overlap,
    seed_of,
    sgd,
    top_overlaps,
    train,
    weights,
)
from striate.experiments.setting import Setting


@dataclass(frozen=True)
class Config:
    dataset: str = "fashion-mnist"  # "fashion-mnist" or "digits" (data.py)
    n_train: int = 10000  # training examples (0: all)
    n_test: int = 2000  # test examples (0: all)
    hidden: tuple[int, ...] = (512, 512)  # hidden widths of the MLP
    lr: float = 0.4  # peak SGD learning rate: large, so that splitting at init is unstable
    momentum: float = 0.0  # SGD momentum
    batch_size: int = 16  # minibatch size (small batches: more SGD noise)
    steps: int = 4000  # SGD steps; the learning rate falls linearly to 0 at the last one
    splits: tuple[int, ...] = (0, 25, 100, 300, 800, 1500, 2500)  # split steps k
    alphas: int = 11  # points on the linear path, alpha = 0, 1/10, ..., 1
    top_k: int = 8  # singular directions compared between the children
    barrier_tol: float = 0.05  # a train-loss barrier below this (nats): linearly connected
    overlap_level: float = 0.95  # subspaces agree: every matrix's overlap (left, right) >= this
    checkpoints: int = 12  # per child, log-spaced from its split step to the end
    track_b: bool = True  # track child b too (a `striate track` run per split: ~5 s each)
    eval_every: int = 250  # metrics logged every this many steps (and at checkpoints)
    seed: int = 0  # the data subset, the init and the parent's data order


PRESETS: dict[str, Config] = {
    "full": Config(),  # ~8 minutes on 2 CPU cores
    "quick": Config(
        dataset="digits",
        n_train=0,
        n_test=0,
        hidden=(256, 256),
        lr=0.8,
        steps=1000,
        splits=(0, 30, 100, 300, 600),
        checkpoints=8,
        track_b=False,
        eval_every=100,
    ),
}


def interpolate(a: Tensors, b: Tensors, alpha: float) -> Tensors:
    """The state dict (1 - alpha) a + alpha b."""
    return {k: (1.0 - alpha) * a[k] + alpha * b[k] for k in a}


def loss_barrier(alphas: np.ndarray, losses: np.ndarray) -> float:
    """max over the path of loss(alpha) minus the straight line between the end losses.

    alphas (n,) from 0 to 1 ascending; losses (n,) the loss at each. >= 0 (the ends give 0).

    >>> a = np.linspace(0, 1, 5)
    >>> loss_barrier(a, 1 + 4 * a * (1 - a))
    1.0
    """
    line = (1 - alphas) * losses[0] + alphas * losses[-1]  # (n,)
    return float(np.max(losses - line))


def path_losses(a: nn.Module, b: nn.Module, data: Dataset, alphas: np.ndarray) -> pd.DataFrame:
    """Loss and accuracy on train and test at each alpha of the linear path from a to b."""
    sa, sb, model = a.state_dict(), b.state_dict(), copy.deepcopy(a)
    rows: list[dict[str, float]] = []
    for alpha in alphas:
        model.load_state_dict(interpolate(sa, sb, float(alpha)))
        rows.append({"alpha": float(alpha), **evaluate(model, data)})
    path: pd.DataFrame = pd.DataFrame(rows)
    return path


def compare(a: nn.Module, b: nn.Module, data: Dataset, cfg: Config) -> dict[str, Any]:
    """The barrier along the path between two children and the overlap of their subspaces."""
    alphas = np.linspace(0.0, 1.0, cfg.alphas)
    path = path_losses(a, b, data, alphas)
    overlaps = top_overlaps(weights(a), weights(b), cfg.top_k)
    return {
        "barrier_train": loss_barrier(alphas, path["train_loss"].to_numpy()),
        "barrier_test": loss_barrier(alphas, path["test_loss"].to_numpy()),
        # the worst matrix and side: "agree" must hold for every matrix
        "overlap_min": min(min(o["left"], o["right"]) for o in overlaps.values()),
        "overlap_mean": mean_overlap(overlaps),
        "end_train_acc": [float(path["train_acc"].iloc[i]) for i in (0, -1)],
        "end_test_acc": [float(path["test_acc"].iloc[i]) for i in (0, -1)],
        "overlaps": overlaps,
        "path": path.to_dict("list"),
    }


def run(cfg: Config, ex: Experiment) -> Path:
    data = load(cfg.dataset, n_train=cfg.n_train, n_test=cfg.n_test, seed=cfg.seed)
    sizes = (data.n_inputs, *cfg.hidden, data.n_classes)
    lr = linear_decay(cfg.lr, cfg.steps)
    splits = sorted(set(cfg.splits))
    parent = make_mlp(sizes, cfg.seed)
    opt = sgd(parent, cfg.lr, cfg.momentum)
    order = torch.Generator().manual_seed(cfg.seed)
    last = splits[-1]
    pcond = ex.condition("parent", sorted(set(log_schedule(last, cfg.checkpoints)) | set(splits)))
    kw: dict[str, Any] = {"batch_size": cfg.batch_size, "eval_every": cfg.eval_every, "lr": lr}
    rows, done = [], 0
    for k in splits:
        train(parent, opt, data, done, k, order=order, cond=pcond, **kw)
        done = k
        children = []
        for i, child in enumerate("ab"):
            model = copy.deepcopy(parent)
            o = sgd(model, cfg.lr, cfg.momentum)
            o.load_state_dict(copy.deepcopy(opt.state_dict()))
            schedule = [k + s for s in log_schedule(cfg.steps - k, cfg.checkpoints)]
            cond = None
            if child == "a" or cfg.track_b:
                cond = ex.condition(f"split={k} {child}", schedule, split=k, child=child)
            child_order = torch.Generator().manual_seed(seed_of(cfg.seed, k, i))
            train(model, o, data, k, cfg.steps, order=child_order, cond=cond, **kw)
            children.append(model)
        a, b = children
        rows.append({"split": k, **compare(a, b, data, cfg)})
        ex.say(f"split {k}: barrier {rows[-1]['barrier_train']:.3f}, "
               f"overlap {rows[-1]['overlap_min']:.2f}")  # fmt: skip
    tracked = ex.track()
    table = pd.DataFrame(rows)
    summary = {"splits": {str(r["split"]): r for r in rows}, "claims": judge(table, cfg)}
    summary["spearman_barrier_overlap"] = rank_correlation(table)
    return ex.finish(summary, figures(tracked, table, ex.out / "figures", cfg))


def judge(table: pd.DataFrame, cfg: Config) -> dict[str, bool]:
    """The claims, from one row per split (barrier_train, overlap_min)."""
    connected = table["barrier_train"] < cfg.barrier_tol
    agree = table["overlap_min"] >= cfg.overlap_level
    rho = rank_correlation(table)
    return {
        # without this, the experiment shows nothing: splitting at init must part the runs
        "barrier_at_split_0": bool(table["split"].iloc[0] == 0 and not connected.iloc[0]),
        "connected_at_last_split": bool(connected.iloc[-1]),
        # (5) every pair whose top subspaces agree is linearly connected (and one such pair exists)
        "connected_once_subspaces_agree": bool(agree.any() and connected[agree].all()),
        "barrier_falls_as_overlap_rises": rho < 0,  # NaN (< 3 splits) is not < 0
    }


def rank_correlation(table: pd.DataFrame) -> float:
    """Spearman's rho of the train-loss barrier and the worst overlap across split steps."""
    return spearman(list(table["barrier_train"]), list(table["overlap_min"]))


def figures(tracked: Tracked, table: pd.DataFrame, folder: Path, cfg: Config) -> list[str]:
    # a column per condition would be two per split: the parent and the a children only
    def a_only(t: pd.DataFrame) -> pd.DataFrame:
        kept: pd.DataFrame = t[~t["condition"].str.endswith(" b")]
        return kept

    shown = Tracked(*map(a_only, (tracked.metrics, tracked.trajectories, tracked.dynamics,
                                  tracked.alignment)))  # fmt: skip
    markers: Markers = {f"split={k} a": {"split": int(k)} for k in table["split"]}
    panels = ["barrier_train", "barrier_test", "overlap_min", "overlap_mean"]
    return [
        draw_curves(shown, markers, folder / "curves.png",
                    "Linear mode connectivity: the parent, and child a of each split"),
        draw_sweep(table, "split", panels, folder / "splits.png",
                   f"Children split at step k: loss barrier and top-{cfg.top_k} subspace overlap",
                   log_x=True),
        draw_sweep(table, "overlap_min", ["barrier_train"], folder / "barrier_vs_overlap.png",
                   "Train-loss barrier against the children's overlap (worst matrix)"),
    ]  # fmt: skip


LMC = Setting(
    name="lmc",
    about="Linear mode connectivity: two runs split from one parent end in one linear basin "
    "once their top singular subspaces agree",
    presets=PRESETS,
    engine=Experiment,
    run=run,
)
