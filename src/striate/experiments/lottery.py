"""Lottery tickets: iterative magnitude pruning with rewinding keeps the dense network's top
singular directions.

Frankle et al.'s procedure on a small MLP: train dense from theta_0 (keeping theta_k, the
weights at an early step k); then, per round, remove the `prune_fraction` of each weight
matrix's surviving weights with the smallest magnitude in the trained weights of the round
before (round 1: the dense run; biases are never pruned), rewind the survivors to theta_k and
retrain with the mask. After n rounds a fraction 1 - (1 - p)^n of each matrix is gone. The
control: a random mask with as many survivors per matrix, retrained from the same theta_k with
the same data order as the round's ticket. Round 0 is the dense network rewound to theta_k and
retrained without a mask (a new data order): the sparsity-0 point of both, and the noise floor
of the overlap with the dense run. Every run's learning rate falls linearly to 0.

The claims (`CLAIMS`, decided on each seed's summary.json): the winning ticket's final top-k
singular subspaces overlap the dense network's more than the random control's do at every
round; the ticket trains as well as the dense network up to 80% sparsity and better than the
random mask at the last round. On the dense run, the source's claims on singular vectors
(`mlp.singular_vector_claims`): its top singular vectors have settled by half of training, and
neighbouring layers do not align.

    striate experiment lottery --out runs/lottery --preset full --seeds 3  # ~6 min a seed
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from striate.experiments.claims import Claim, Criterion, Summary
from striate.experiments.data import Dataset, load
from striate.experiments.figures import draw_curves, draw_sweep
from striate.experiments.harness import Condition, Experiment, log_schedule, over_seeds
from striate.experiments.mlp import (
    MLP,
    PAPER,
    Masks,
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
    n_train: int = 20000  # training examples (0: all)
    n_test: int = 2000  # test examples (0: all)
    hidden: tuple[int, ...] = (300, 100)  # LeNet-300-100, the MLP of the lottery-ticket papers
    lr: float = 0.05  # peak SGD learning rate, falling linearly to 0 at `steps` in every run
    momentum: float = 0.9  # SGD momentum
    batch_size: int = 64  # minibatch size
    steps: int = 6000  # SGD steps of the dense run (retraining runs from rewind_step to here)
    rewind_step: int = 200  # k: survivors are rewound to the dense run's weights at this step
    prune_fraction: float = 0.2  # p: share of each matrix's surviving weights pruned per round
    rounds: int = 10  # pruning rounds: sparsity 1 - (1 - p)^rounds at the end (89% here)
    top_k: int = 8  # singular directions compared with the dense network's
    checkpoints: int = 16  # checkpoints per tracked run, log-spaced
    eval_every: int = 250  # metrics logged every this many steps (and at checkpoints)
    seed: int = 0  # the data subset, the init, the data orders and the random masks


PRESETS: dict[str, Config] = {
    "full": Config(),  # ~6 minutes a seed on 2 CPU cores
    "quick": Config(
        dataset="digits",
        n_train=0,
        n_test=0,
        hidden=(256, 256),
        steps=1000,
        rewind_step=20,
        prune_fraction=0.4,
        rounds=4,
        eval_every=100,
    ),
}


def prune(w: torch.Tensor, mask: torch.Tensor, fraction: float) -> torch.Tensor:
    """The mask with round(fraction x survivors) more zeros: the survivors of smallest |w|
    (ties: the lower flat index goes first).

    w, mask: one shape; mask of 0/1. Returns a new 0/1 mask of that shape.

    >>> prune(torch.tensor([[3.0, -1.0], [0.5, 2.0]]), torch.ones(2, 2), 0.5)
    tensor([[1., 0.],
            [0., 1.]])
    """
    alive = mask.flatten() > 0  # (n,)
    n = round(fraction * int(alive.sum()))
    score = w.abs().flatten().masked_fill(~alive, math.inf)  # the pruned never come back
    out = mask.flatten().clone()
    out[torch.argsort(score, stable=True)[:n]] = 0
    return out.view_as(mask)


def random_like(mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A mask with as many survivors as `mask`, at uniformly random places."""
    return mask.flatten()[torch.randperm(mask.numel(), generator=gen)].view_as(mask)


def sparsity(masks: Masks) -> float:
    """The pruned share of all weights under the masks."""
    kept = sum(float(m.sum()) for m in masks.values())
    return 1.0 - kept / sum(m.numel() for m in masks.values())


def retrain(
    cfg: Config, data: Dataset, rewind: Tensors, masks: Masks, r: int, cond: Condition | None
) -> MLP:
    """theta_k under the mask, trained from step k to the end with round r's data order."""
    model = make_mlp((data.n_inputs, *cfg.hidden, data.n_classes), cfg.seed)
    model.load_state_dict({k: v * masks[k] if k in masks else v for k, v in rewind.items()})
    order = torch.Generator().manual_seed(seed_of(cfg.seed, r))
    train(model, sgd(model, cfg.lr, cfg.momentum), data, cfg.rewind_step, cfg.steps,
          batch_size=cfg.batch_size, order=order, cond=cond, eval_every=cfg.eval_every,
          masks=masks, lr=linear_decay(cfg.lr, cfg.steps))  # fmt: skip
    return model


def run(cfg: Config, ex: Experiment) -> Path:
    data = load(cfg.dataset, n_train=cfg.n_train, n_test=cfg.n_test, seed=cfg.seed)
    k, end, half = cfg.rewind_step, cfg.steps, cfg.steps // 2
    dense = make_mlp((data.n_inputs, *cfg.hidden, data.n_classes), cfg.seed)
    opt = sgd(dense, cfg.lr, cfg.momentum)
    cond = ex.condition("dense", sorted({*log_schedule(end, cfg.checkpoints), k, half}))
    order = torch.Generator().manual_seed(cfg.seed)
    lr = linear_decay(cfg.lr, end)  # the schedule of every run, dense and retrained
    kw: dict[str, Any] = {"batch_size": cfg.batch_size, "order": order, "cond": cond,
                          "eval_every": cfg.eval_every, "lr": lr}  # fmt: skip
    states, done = {}, 0
    for stop in sorted({k, half, end}):  # theta_k to rewind to; the weights at T/2 and T
        train(dense, opt, data, done, stop, **kw)
        states[stop], done = {n: v.clone() for n, v in dense.state_dict().items()}, stop
    rewind = states[k]
    w_dense, acc_dense = weights(dense), evaluate(dense, data)["test_acc"]
    w_half = {n: states[half][n] for n in w_dense}

    masks: Masks = {name: torch.ones_like(w) for name, w in w_dense.items()}
    w_ticket = w_dense  # the weights the next round prunes by
    schedule = [k + s for s in log_schedule(end - k, cfg.checkpoints)]
    gen = torch.Generator().manual_seed(seed_of(cfg.seed, 1))  # the random masks
    rows: list[dict[str, Any]] = []
    for r in range(cfg.rounds + 1):
        masks = (
            {n: prune(w_ticket[n], m, cfg.prune_fraction) for n, m in masks.items()} if r else masks
        )
        s = sparsity(masks)
        controls = {n: random_like(m, gen) for n, m in masks.items()}
        for kind, mk in (("ticket", masks), ("random", controls)):
            if r == 0 and kind == "random":  # round 0 has no mask: the same run as the ticket
                rows.append({**rows[-1], "mask": kind})
                continue
            c = None
            if r == cfg.rounds:  # track only the last round: dense, ticket and control
                c = ex.condition(f"{kind} {s:.0%} sparse", schedule, mask=kind, sparsity=s)
            model = retrain(cfg, data, rewind, mk, r, c)
            w = weights(model)
            if kind == "ticket" and r:  # round 1 prunes the dense run itself
                w_ticket = w
            overlaps = top_overlaps(w, w_dense, cfg.top_k)
            rows.append({"round": r, "mask": kind, "sparsity": s, **evaluate(model, data),
                         "overlap": mean_overlap(overlaps), "overlaps": overlaps})  # fmt: skip
        ex.say(f"round {r}: sparsity {s:.3f}, test acc ticket {rows[-2]['test_acc']:.3f}, "
               f"random {rows[-1]['test_acc']:.3f}")  # fmt: skip
    tracked = ex.track()
    summary = {
        "dense_test_acc": acc_dense,
        "rounds": rows,
        "dense": singular_vectors(w_half, w_dense, (half, end), cfg.top_k),
    }
    folder = ex.out / "figures"
    figures = [
        draw_curves(tracked, {}, folder / "curves.png",
                    f"Lottery ticket: dense, and ticket and random mask at {sparsity(masks):.0%}"),
        draw_sweep(pd.DataFrame(rows), "sparsity", ["test_acc", "overlap"], folder / "rounds.png",
                   f"Magnitude pruning: test accuracy, top-{cfg.top_k} overlap with dense",
                   hue="mask"),
    ]  # fmt: skip
    return ex.finish(summary, figures)


def draw_seeds(runs: list[Path], folder: Path) -> list[str]:
    """The figures over seeds: every seed's curves; accuracy and overlap per round, mean ± sd."""
    rows = [{**r, "seed": seed} for seed, s in seed_summaries(runs) for r in s["rounds"]]
    return [
        draw_curves(over_seeds(runs), {}, folder / "curves.png",
                    "Lottery ticket: dense, and ticket and random mask at the last round"),
        draw_sweep(pd.DataFrame(rows), "sparsity", ["test_acc", "overlap"], folder / "rounds.png",
                   "Magnitude pruning: test accuracy, overlap with dense (mean ± sd over seeds)",
                   hue="mask"),
    ]  # fmt: skip


# --- the claims, fixed before any run ------------------------------------------------------------

ACC_TOL = 0.01  # "trains as well as dense": test accuracy at most this far below dense ...
MODERATE = 0.8  # ... at every round up to this sparsity


def _masks(s: Summary, mask: str) -> list[dict[str, Any]]:
    """The rounds >= 1 of one mask ("ticket" or "random"), in order."""
    return [r for r in s["rounds"] if r["mask"] == mask and r["round"] > 0]


def _overlap_margin(s: Summary) -> float | None:
    pairs = zip(_masks(s, "ticket"), _masks(s, "random"), strict=True)
    return min((t["overlap"] - r["overlap"] for t, r in pairs), default=None)


def _accuracy_kept(s: Summary) -> float | None:
    moderate = [t["test_acc"] for t in _masks(s, "ticket") if t["sparsity"] <= MODERATE]
    return min(moderate) - s["dense_test_acc"] if moderate else None


def _end_gap(s: Summary) -> float:
    return float(_masks(s, "ticket")[-1]["test_acc"] - _masks(s, "random")[-1]["test_acc"])


SOURCE = (f"{PAPER}, abstract: 'these dynamics reveal structure in well-performing sparse "
          "subnetworks (lottery tickets)'; seed: 'The study also connects these weight "
          "dynamics to ... the lottery ticket hypothesis'")  # fmt: skip
CLAIMS = (
    Claim(
        "ticket_keeps_dense_directions",
        SOURCE,
        "Retrained after magnitude pruning, the winning ticket keeps more of the dense "
        "network's top singular directions than a random mask of the same sparsity, at every "
        "round.",
        "Per round r >= 1: the mean over the weight matrices and both sides of the top-k "
        "subspace overlap (`subspace_overlap`, k = top_k) of the retrained network's final "
        "weights with the dense network's, ticket minus random mask; the smallest over rounds.",
        Criterion(">", 0.0),
        _overlap_margin,
    ),
    Claim(
        "ticket_trains_as_well_as_dense",
        "Frankle & Carbin 2019 (the lottery ticket hypothesis the seed names): a winning ticket "
        "rewound and retrained matches the dense network's test accuracy",
        f"Up to {MODERATE:.0%} sparsity the winning ticket's test accuracy is within "
        f"{ACC_TOL:g} of the dense network's.",
        f"min over rounds r >= 1 with sparsity <= {MODERATE:g} of the ticket's final test "
        "accuracy, minus the dense network's final test accuracy.",
        Criterion(">=", -ACC_TOL),
        _accuracy_kept,
    ),
    Claim(
        "ticket_beats_random_at_the_end",
        "Frankle & Carbin 2019: a random mask of the same sparsity, rewound and retrained the "
        "same way, trains worse than the winning ticket",
        "At the last round (the highest sparsity) the ticket's test accuracy is above the "
        "random mask's.",
        "The ticket's final test accuracy minus the random mask's, at the last round.",
        Criterion(">", 0.0),
        _end_gap,
    ),
    *singular_vector_claims("dense", "the dense run (theta_0 to step T = steps)"),
)


def deviations(cfg: Config) -> list[str]:
    """How a config differs from the source's lottery-ticket setting."""
    out = [
        f"An MLP {cfg.hidden} on {cfg.dataset}, which trains in minutes on a CPU; not the "
        "source's networks and data.",
        f"{cfg.rounds} rounds removing {cfg.prune_fraction:.0%} of each matrix's survivors, "
        f"{1 - (1 - cfg.prune_fraction) ** cfg.rounds:.0%} sparse at the end; rewinding to step "
        f"{cfg.rewind_step} of {cfg.steps}.",
        "Settling is read at t = T/2 of the dense run only, and the overlap with the dense run "
        "after retraining, not at every step.",
    ]
    if cfg.dataset != "fashion-mnist" or cfg.n_train:
        size = "All" if not cfg.n_train else f"{cfg.n_train:,}"
        out.append(f"{size} training images of {cfg.dataset}, to keep a run short.")
    return out


LOTTERY = Setting(
    name="lottery",
    about="Lottery tickets: iterative magnitude pruning with rewinding keeps the dense "
    "network's top singular directions; random masks do not",
    presets=PRESETS,
    engine=Experiment,
    run=run,
    claims=CLAIMS,
    deviations=deviations,
    draw_seeds=draw_seeds,
)
