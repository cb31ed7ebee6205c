"""Linear mode connectivity: when do two runs that share a start end in one linear basin?

A parent MLP trains with SGD to a split step k; two copies (children a and b) continue from
its weights (and optimizer state) to the end with different data orders, i.e. different SGD
noise only. Along the straight line theta(alpha) = (1 - alpha) theta_a + alpha theta_b the loss
rises by the *barrier* max_alpha [L(theta(alpha)) - ((1 - alpha) L(theta_a) + alpha L(theta_b))];
the pair is linearly connected when it is ~0. Frankle et al. (2020) found a split step after
which the barrier vanishes; the claim under test (our reading of Yunis et al. 2024, who link
linear mode connectivity to the top singular vectors) is that it vanishes where the two
children's top singular subspaces agree, per weight matrix
(`striate.analyses.dynamics.subspace_overlap` of their top-k singular vectors, left and right):
at every split before the first where the worst overlap reaches 0.9 the barrier is at least
0.05 nats, and at every split from that one on it is below (`CLAIMS`: the two directions can
fail apart, unlike a rank correlation of two curves that both move with the split step). On
child a of the first split (a whole run from initialization) the source's claims on singular
vectors are decided too: the top vectors settle by half of training, neighbouring layers do
not align (`mlp.singular_vector_claims`).

A large SGD learning rate without momentum and small batches (peak 0.4 on Fashion-MNIST, 0.8
on digits; batch 16) make the children part ways when split at initialization. The rate falls
linearly to 0 over the run so that both children end settled, not bouncing, and the barrier
measures the basins, not SGD noise. With lr 0.1 and momentum 0.9 the same MLP is stable from
step 0 and the experiment shows nothing.

    striate experiment lmc --out runs/lmc --preset full --seeds 3    # ~20 min a seed
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

from striate.experiments.claims import Claim, Criterion, Summary
from striate.experiments.data import Dataset, load
from striate.experiments.figures import Markers, draw_curves, draw_sweep
from striate.experiments.harness import Experiment, Tracked, log_schedule, over_seeds
from striate.experiments.mlp import (
    PAPER,
    Tensors,
    evaluate,
    linear_decay,
    make_mlp,
    mean_overlap,
    seed_of,
    seed_summaries,
    sgd,
    singular_vector_claims,
    singular_vectors,
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
    splits: tuple[int, ...] = (0, 25, 100, 300, 500, 800, 1200, 2000)  # split steps k: dense
    # where the barrier falls (300-1500 in the first run)
    alphas: int = 11  # points on the linear path, alpha = 0, 1/10, ..., 1
    top_k: int = 8  # singular directions compared between the children
    checkpoints: int = 12  # per child, log-spaced from its split step to the end
    track_b: bool = False  # track child b too (one more `striate track` run per split)
    eval_every: int = 250  # metrics logged every this many steps (and at checkpoints)
    seed: int = 0  # the data subset, the init and the parent's data order


PRESETS: dict[str, Config] = {
    "full": Config(),  # ~20 minutes a seed on 2 CPU cores (most of it tracking)
    "quick": Config(
        dataset="digits",
        n_train=0,
        n_test=0,
        hidden=(256, 256),
        lr=0.8,
        steps=1000,
        splits=(0, 30, 100, 300, 600),
        checkpoints=8,
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
    splits, half = sorted(set(cfg.splits)), cfg.steps // 2
    parent = make_mlp(sizes, cfg.seed)
    opt = sgd(parent, cfg.lr, cfg.momentum)
    order = torch.Generator().manual_seed(cfg.seed)
    last = splits[-1]
    pcond = ex.condition("parent", sorted(set(log_schedule(last, cfg.checkpoints)) | set(splits)))
    kw: dict[str, Any] = {"batch_size": cfg.batch_size, "eval_every": cfg.eval_every, "lr": lr}
    rows, done, vectors = [], 0, None
    for k in splits:
        train(parent, opt, data, done, k, order=order, cond=pcond, **kw)
        done = k
        children = []
        for i, child in enumerate("ab"):
            model = copy.deepcopy(parent)
            o = sgd(model, cfg.lr, cfg.momentum)
            o.load_state_dict(copy.deepcopy(opt.state_dict()))
            schedule = [k + s for s in log_schedule(cfg.steps - k, cfg.checkpoints)]
            # the first split's child a is a whole run from init: its weights at T/2 too
            whole = k == splits[0] and child == "a" and k < half
            cond = None
            if child == "a" or cfg.track_b:
                cond = ex.condition(f"split={k} {child}", sorted({*schedule, half} if whole
                                    else schedule), split=k, child=child)  # fmt: skip
            child_order = torch.Generator().manual_seed(seed_of(cfg.seed, k, i))
            start, w_half = k, None
            for stop in [half, cfg.steps] if whole else [cfg.steps]:
                train(model, o, data, start, stop, order=child_order, cond=cond, **kw)
                w_half = weights(model) if stop == half else w_half
                start = stop
            if w_half is not None:
                vectors = singular_vectors(w_half, weights(model), (half, cfg.steps), cfg.top_k)
            children.append(model)
        a, b = children
        rows.append({"split": k, **compare(a, b, data, cfg)})
        ex.say(f"split {k}: barrier {rows[-1]['barrier_train']:.3f}, "
               f"overlap {rows[-1]['overlap_min']:.2f}")  # fmt: skip
    tracked = ex.track()
    table = pd.DataFrame(rows)
    summary = {"splits": {str(r["split"]): r for r in rows}, "first_child": vectors}
    return ex.finish(summary, figures(tracked, table, ex.out / "figures", cfg))


def figures(tracked: Tracked, table: pd.DataFrame, folder: Path, cfg: Config) -> list[str]:
    shown = _a_only(tracked)
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


def _a_only(tracked: Tracked) -> Tracked:
    """The tables without the b children (a column per condition would be two per split)."""

    def a_only(t: pd.DataFrame) -> pd.DataFrame:
        kept: pd.DataFrame = t[~t["condition"].str.endswith(" b")]
        return kept

    return Tracked(*map(a_only, (tracked.metrics, tracked.trajectories, tracked.dynamics,
                                 tracked.alignment)))  # fmt: skip


def draw_seeds(runs: list[Path], folder: Path) -> list[str]:
    """The figures over seeds: every seed's curves; barrier and overlap per split (mean ± sd);
    the barrier against the overlap, one line per seed, with the claims' thresholds."""
    table = pd.DataFrame([{**r, "seed": seed} for seed, s in seed_summaries(runs)
                          for r in s["splits"].values()])  # fmt: skip
    panels = ["barrier_train", "barrier_test", "overlap_min", "overlap_mean"]
    return [
        draw_curves(_a_only(over_seeds(runs)), {}, folder / "curves.png",
                    "Linear mode connectivity: the parent, and child a of each split"),
        draw_sweep(table, "split", panels, folder / "splits.png",
                   "Children split at step k: loss barrier and top-k subspace overlap "
                   "(mean ± sd over seeds)", log_x=True),
        draw_sweep(table.sort_values("seed"), "overlap_min", ["barrier_train"],
                   folder / "barrier_vs_overlap.png",
                   f"Train-loss barrier against the worst overlap, per seed (claims: "
                   f"overlap {AGREE:g}, barrier {BARRIER_TOL:g} nats)", hue="seed"),
    ]  # fmt: skip


# --- the claims, fixed before any run ------------------------------------------------------------

BARRIER_TOL = 0.05  # nats: a train-loss barrier below this is "linearly connected"
AGREE = 0.9  # the children's top-k subspaces agree: the worst matrix and side at least this


def _splits(s: Summary) -> list[dict[str, Any]]:
    return sorted(s["splits"].values(), key=lambda r: r["split"])


def _first_agreeing(rows: list[dict[str, Any]]) -> int | None:
    """The index of the first split whose worst overlap reaches AGREE (None: none does)."""
    return next((i for i, r in enumerate(rows) if r["overlap_min"] >= AGREE), None)


def _barrier_at_0(s: Summary) -> float | None:
    first = _splits(s)[0]
    return float(first["barrier_train"]) if first["split"] == 0 else None


def _barrier_before_agreement(s: Summary) -> float | None:
    rows = _splits(s)
    i = _first_agreeing(rows)
    before = rows if i is None else rows[:i]
    return min((r["barrier_train"] for r in before), default=None)


def _barrier_after_agreement(s: Summary) -> float | None:
    rows = _splits(s)
    i = _first_agreeing(rows)
    return None if i is None else max(r["barrier_train"] for r in rows[i:])


SOURCE = (f"{PAPER}, abstract: these dynamics reveal 'the shape of the loss surface through "
          "linear mode connectivity'; seed: 'linear mode connectivity (the ability to smoothly "
          "transition between different optimal weight configurations)'")  # fmt: skip
OVERLAP = (
    "overlap_min: per split, the top-k subspace overlap (`subspace_overlap`, k = top_k) "
    "of the two children's final weights, left and right singular vectors of each "
    "weight matrix, the worst of these. Barrier: the train-loss barrier on 11 evenly "
    "spaced points of the straight line between the children (`loss_barrier`), nats."
)
CLAIMS = (
    Claim(
        "barrier_at_split_0",
        "Frankle et al. 2020: children split at initialization are not linearly connected "
        "(the precondition of the experiment)",
        "Two children split at initialization end in different basins: a loss barrier rises "
        "between them.",
        "The train-loss barrier between the two children of split step 0 (nats; undefined "
        "when the splits do not include 0).",
        Criterion(">=", BARRIER_TOL),
        _barrier_at_0,
    ),
    Claim(
        "barrier_before_subspaces_agree",
        SOURCE,
        f"As long as the children's top singular subspaces disagree (worst overlap < {AGREE:g}),"
        " a loss barrier separates them.",
        "The smallest train-loss barrier over the split steps before the first one whose "
        f"overlap_min reaches {AGREE:g} (all splits when none does). {OVERLAP}",
        Criterion(">=", BARRIER_TOL),
        _barrier_before_agreement,
    ),
    Claim(
        "connected_once_subspaces_agree",
        SOURCE,
        f"From the first split step where the children's top singular subspaces agree (worst "
        f"overlap >= {AGREE:g}) on, the children are linearly connected.",
        "The largest train-loss barrier over the split steps from the first one whose "
        f"overlap_min reaches {AGREE:g} on (undefined when none does). {OVERLAP}",
        Criterion("<", BARRIER_TOL),
        _barrier_after_agreement,
    ),
    *singular_vector_claims(
        "first_child",
        "child a of the first split (split step 0: a whole run from initialization to T = steps)",
    ),
)


def deviations(cfg: Config) -> list[str]:
    """How a config differs from the source's linear-mode-connectivity setting."""
    out = [
        f"An MLP {cfg.hidden} on {cfg.dataset} trained with SGD at a large learning rate "
        f"({cfg.lr:g}, no momentum, batch {cfg.batch_size}) so that splitting at initialization "
        "parts the children; not the source's networks and data.",
        f"{len(set(cfg.splits))} split steps ({', '.join(map(str, sorted(set(cfg.splits))))}) "
        f"of {cfg.steps}; the barrier is decided on the train loss at {cfg.alphas} points.",
        f"Subspaces compared through their top {cfg.top_k} singular vectors, with "
        "`subspace_overlap` (mean squared cosine of the principal angles).",
    ]
    if cfg.dataset != "fashion-mnist" or cfg.n_train:
        size = "All" if not cfg.n_train else f"{cfg.n_train:,}"
        out.append(f"{size} training images of {cfg.dataset}, to keep a run short.")
    return out


LMC = Setting(
    name="lmc",
    about="Linear mode connectivity: two runs split from one parent end in one linear basin "
    "once their top singular subspaces agree",
    presets=PRESETS,
    engine=Experiment,
    run=run,
    claims=CLAIMS,
    deviations=deviations,
    draw_seeds=draw_seeds,
)
