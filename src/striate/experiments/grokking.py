"""Grokking on modular addition, with and without weight decay.

The task: a + b mod p for all p^2 pairs, a fixed share of them for training. The model: one
embedding shared by both operands, concatenated, an MLP with one ReLU hidden layer (the
one-hot-input MLP of the grokking literature, with the one-hot product written as an
embedding lookup). Full-batch AdamW. With weight decay around 1 the network first memorizes
the training pairs (train accuracy 100%, test at chance), then, much later, generalizes; the
claim under test is that the jump in test accuracy comes with the weight matrices falling to
low effective rank. The same run without weight decay memorizes and stays there.

    striate experiment grokking --out runs/grok --preset full
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from striate.experiments.figures import draw_curves
from striate.experiments.harness import Condition, Experiment, Tracked, log_schedule
from striate.experiments.measures import (
    alignment_at_end,
    crossing_step,
    rank_drop,
    settling,
    weight_matrices,
)
from striate.experiments.setting import Setting


@dataclass(frozen=True)
class Config:
    p: int = 97  # modulus: inputs a, b in [0, p), label (a + b) mod p
    train_fraction: float = 0.4  # share of the p^2 pairs used for training
    d_embed: int = 128  # embedding width per operand
    d_hidden: int = 128  # hidden width of the MLP
    lr: float = 1e-3  # AdamW learning rate, constant
    beta2: float = 0.98  # AdamW beta2 (0.98 as in the grokking papers)
    weight_decays: tuple[float, ...] = (1.0, 0.0)  # one run each; the largest should grok,
    # the run without weight decay should not
    steps: int = 15000  # full-batch optimizer steps
    checkpoints: int = 32  # checkpoints saved, log-spaced over [0, steps]
    eval_every: int = 100  # accuracy and loss logged every this many steps (and at checkpoints)
    top_k: int = 8  # singular directions compared by the dynamics (striate track's default)
    seed: int = 0  # one seed for the split, the init and nothing else random


PRESETS: dict[str, Config] = {
    "full": Config(),  # ~15 minutes on 2 CPU cores
    "quick": Config(
        p=59, train_fraction=0.5, d_embed=64, d_hidden=64, lr=3e-3, steps=3000, checkpoints=24
    ),
}


class MLP(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.embed = nn.Embedding(cfg.p, cfg.d_embed)
        self.fc1 = nn.Linear(2 * cfg.d_embed, cfg.d_hidden)
        self.fc2 = nn.Linear(cfg.d_hidden, cfg.p)

    def forward(self, ab: torch.Tensor) -> torch.Tensor:  # ab (B, 2) -> logits (B, p)
        x = self.embed(ab).flatten(1)  # (B, 2 * d_embed)
        return self.fc2(F.relu(self.fc1(x)))  # type: ignore[no-any-return]


def modular_addition(p: int, train_fraction: float, seed: int) -> dict[str, torch.Tensor]:
    """All pairs (a, b) with labels (a + b) mod p, split at random into train and test."""
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    ab = torch.stack([a.flatten(), b.flatten()], 1)  # (p^2, 2)
    y = ab.sum(1) % p
    perm = torch.randperm(p * p, generator=torch.Generator().manual_seed(seed))
    n = round(train_fraction * p * p)
    return {
        "x_train": ab[perm[:n]],
        "y_train": y[perm[:n]],
        "x_test": ab[perm[n:]],
        "y_test": y[perm[n:]],
    }


@torch.no_grad()
def evaluate(model: nn.Module, data: dict[str, torch.Tensor]) -> dict[str, float]:
    out = {}
    for split in ("train", "test"):
        logits = model(data[f"x_{split}"])
        out[f"{split}_loss"] = F.cross_entropy(logits, data[f"y_{split}"]).item()
        out[f"{split}_acc"] = (logits.argmax(1) == data[f"y_{split}"]).float().mean().item()
    return out


def train(cfg: Config, ex: Experiment, name: str, weight_decay: float) -> Condition:
    """Train one model with `weight_decay`, saving checkpoints and curves as condition `name`."""
    data = modular_addition(cfg.p, cfg.train_fraction, cfg.seed)
    torch.manual_seed(cfg.seed)  # the same init in every condition
    model = MLP(cfg)
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=(0.9, cfg.beta2), weight_decay=weight_decay
    )
    cond = ex.condition(name, log_schedule(cfg.steps, cfg.checkpoints), weight_decay=weight_decay)
    for step in range(cfg.steps + 1):
        if cond.due(step) or step % cfg.eval_every == 0:
            cond.log(step, **evaluate(model, data))
        if cond.due(step):
            cond.save(step, model)
        if step == cfg.steps:
            break
        loss = F.cross_entropy(model(data["x_train"]), data["y_train"])
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    return cond


def condition_summary(tracked: Tracked, name: str, cfg: Config) -> dict[str, Any]:
    """Per condition: when it memorized and generalized, and how each matrix's rank fell."""
    m = tracked.metrics[tracked.metrics["condition"] == name]
    t = tracked.trajectories[tracked.trajectories["condition"] == name]
    train99, test99 = (
        crossing_step(m, "train_acc", 0.99),
        crossing_step(m, "test_acc", 0.99),
    )
    ranks = {n: rank_drop(t[t["name"] == n]) for n in weight_matrices(t)}
    for r in ranks.values():
        step = r["drop_step"]
        r["drop_step_over_test99"] = None if step is None or not test99 else step / test99
    last = m.iloc[-1]
    return {
        "train99_step": train99,
        "test99_step": test99,
        "final_train_acc": float(last["train_acc"]),
        "final_test_acc": float(last["test_acc"]),
        "effective_rank": ranks,
    }


def train_all(cfg: Config, ex: Experiment) -> tuple[Tracked, dict[str, Any]]:
    """One run per weight decay, tracked; the per-condition summaries by condition name."""
    names = [f"wd={wd:g}" for wd in cfg.weight_decays]
    for name, wd in zip(names, cfg.weight_decays, strict=True):
        train(cfg, ex, name, wd)
    tracked = ex.track()
    return tracked, {n: condition_summary(tracked, n, cfg) for n in names}


def run(cfg: Config, ex: Experiment) -> Path:
    tracked, conditions = train_all(cfg, ex)
    grok, control = f"wd={max(cfg.weight_decays):g}", f"wd={min(cfg.weight_decays):g}"
    g, c = conditions[grok], conditions[control]
    dyn = tracked.dynamics[tracked.dynamics["condition"] == grok]
    traj = tracked.trajectories[tracked.trajectories["condition"] == grok]
    ratios = [
        r["drop_step_over_test99"]
        for r in g["effective_rank"].values()
        if r["drop_step_over_test99"] is not None
    ]
    summary = {
        "conditions": conditions,
        "claims": {
            # (3) grokking: the weight-decay run generalizes, the control does not ...
            "grokked_with_weight_decay": g["test99_step"] is not None,
            "no_grokking_without_weight_decay": min(cfg.weight_decays) == 0
            and c["test99_step"] is None,
            # ... and its matrices lose half their rank drop within 2x of the grokking step
            "rank_drop_coincides_with_grokking": bool(ratios)
            and all(0.5 <= x <= 2.0 for x in ratios),
            # (1) weight decay: lower final effective rank for every matrix
            "weight_decay_lowers_rank": all(
                g["effective_rank"][n]["final"] < c["effective_rank"][n]["final"]
                for n in g["effective_rank"]
            ),
        },
        # (4) top singular subspaces settle early and line up between layers
        "settling": settling(dyn, cfg.steps),
        "alignment": alignment_at_end(
            tracked.alignment[tracked.alignment["condition"] == grok], traj, cfg.top_k
        ),
    }
    markers = {
        n: {"train 99%": s["train99_step"], "test 99%": s["test99_step"]}
        for n, s in summary["conditions"].items()
    }
    figures = [
        draw_curves(
            tracked, markers, ex.out / "figures" / "curves.png", f"Grokking: a + b mod {cfg.p}"
        )
    ]
    return ex.finish(summary, figures)


GROKKING = Setting(
    name="grokking",
    about="Grokking on modular addition: the jump in test accuracy comes with low-rank "
    "weights; without weight decay no jump",
    presets=PRESETS,
    engine=Experiment,
    run=run,
)
