"""Grokking on modular addition, with and without weight decay: the MLP variant.

The task: a + b mod p for all p^2 pairs, a fixed share of them for training. The model: one
embedding shared by both operands, concatenated, an MLP with one ReLU hidden layer (the
one-hot-input MLP of the grokking literature, with the one-hot product written as an
embedding lookup). Full-batch AdamW. With weight decay around 1 the network first memorizes
the training pairs (train accuracy 100%, test at chance), then, much later, generalizes; the
claim under test (`CLAIMS`) is that the jump in test accuracy comes with the weight matrices
falling to low rank, and that the same run without weight decay neither generalizes nor loses
its rank. The source's own setting, a one-layer transformer on a + b mod 113, is the
`grokking-transformer` experiment; this MLP is its quick variant (`deviations`).

Rank has three definitions here (`measures.entropy_ranks`): the spectrum's effective rank
exp(H), the entropy H of the normalized singular values, and H / ln min(m, n). The claims read
the last, fixed before any run; the summary reports all three.

    striate experiment grokking --out runs/grok --preset full --seeds 3
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from striate.experiments.claims import Claim, Criterion, Summary
from striate.experiments.figures import draw_curves
from striate.experiments.harness import Condition, Experiment, Tracked, log_schedule, over_seeds
from striate.experiments.measures import (
    RANK_DEFINITIONS,
    alignment_at_end,
    crossing_step,
    entropy_ranks,
    rank_drop,
    rank_measures,
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
    checkpoint_every: int = 0  # and one every this many steps (0: none): where the rank falls
    # fastest is placed to within this many steps
    eval_every: int = 100  # accuracy and loss logged every this many steps (and at checkpoints)
    top_k: int = 8  # singular directions compared by the dynamics (striate track's default)
    seed: int = 0  # one seed for the split, the init and nothing else random


PRESETS: dict[str, Config] = {
    "full": Config(checkpoint_every=250),  # ~15 minutes on 2 CPU cores
    "quick": Config(
        p=59,
        train_fraction=0.5,
        d_embed=64,
        d_hidden=64,
        lr=3e-3,
        steps=3000,
        checkpoints=24,
        checkpoint_every=100,
    ),
}

CLAIM_RANK = "normalized_entropy"  # the rank definition the claims read (`RANK_DEFINITIONS`)
RANK_COLLAPSE = 0.2  # a mean relative rank drop of at least this is a collapse (issue 22)


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


def checkpoint_schedule(steps: int, n_log: int, every: int) -> list[int]:
    """`n_log` log-spaced steps (`log_schedule`) and every `every`-th step (0: none).

    >>> checkpoint_schedule(1000, 6, 400)
    [0, 3, 15, 62, 250, 400, 800, 1000]
    """
    linear = set(range(0, steps + 1, every)) if every > 0 else set()
    return sorted(set(log_schedule(steps, n_log)) | linear)


def train(cfg: Config, ex: Experiment, name: str, weight_decay: float) -> Condition:
    """Train one model with `weight_decay`, saving checkpoints and curves as condition `name`."""
    data = modular_addition(cfg.p, cfg.train_fraction, cfg.seed)
    torch.manual_seed(cfg.seed)  # the same init in every condition
    model = MLP(cfg)
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=(0.9, cfg.beta2), weight_decay=weight_decay
    )
    schedule = checkpoint_schedule(cfg.steps, cfg.checkpoints, cfg.checkpoint_every)
    cond = ex.condition(name, schedule, weight_decay=weight_decay)
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


def summarize(
    tracked: Tracked, name: str, matrices: list[str] | None = None, every: int = 0
) -> dict[str, Any]:
    """Per condition: when it memorized and generalized (`test99_step`, the first logged step
    with test accuracy >= 99%: the grokking step), and how the rank of `matrices` (default:
    every weight matrix) fell, in each of `RANK_DEFINITIONS` (`measures.rank_measures`), with
    the steepest drop of the mean curve, read on the checkpoints every `every` steps (all when
    0), as a multiple of the grokking step."""
    m = tracked.metrics[tracked.metrics["condition"] == name]
    t = entropy_ranks(tracked.trajectories[tracked.trajectories["condition"] == name])
    train99, test99 = crossing_step(m, "train_acc", 0.99), crossing_step(m, "test_acc", 0.99)
    matrices = weight_matrices(t) if matrices is None else matrices
    effective = {n: rank_drop(t[t["name"] == n]) for n in weight_matrices(t)}
    for r in effective.values():
        step = r["drop_step"]
        r["drop_step_over_test99"] = None if step is None or not test99 else step / test99
    ranks = {d: rank_measures(t, matrices, d, every) for d in RANK_DEFINITIONS}
    for r in ranks.values():
        step = r["steepest_drop_step"]
        r["steepest_drop_over_test99"] = None if step is None or not test99 else step / test99
    last = m.iloc[-1]
    return {
        "train99_step": train99,
        "test99_step": test99,
        "final_train_acc": float(last["train_acc"]),
        "final_test_acc": float(last["test_acc"]),
        "best_test_acc": float(m["test_acc"].max()),
        "last_step": int(last["step"]),
        "effective_rank": effective,  # per matrix, exp(H); drop_step: half of the fall covered
        "rank_matrices": matrices,
        "rank": ranks,
    }


def condition_summary(tracked: Tracked, name: str, cfg: Config) -> dict[str, Any]:
    """`summarize` over every weight matrix (`weight_decay.py` reads `effective_rank`)."""
    return summarize(tracked, name, every=cfg.checkpoint_every)


def train_all(cfg: Config, ex: Experiment) -> tuple[Tracked, dict[str, Any]]:
    """One run per weight decay, tracked; the per-condition summaries by condition name."""
    names = [f"wd={wd:g}" for wd in cfg.weight_decays]
    for name, wd in zip(names, cfg.weight_decays, strict=True):
        train(cfg, ex, name, wd)
    tracked = ex.track()
    return tracked, {n: condition_summary(tracked, n, cfg) for n in names}


def markers(conditions: dict[str, Any]) -> dict[str, dict[str, int | None]]:
    """The steps `draw_curves` marks: memorized, grokked, and the rank's steepest drop."""
    return {
        n: {"train 99%": s["train99_step"], "test 99%": s["test99_step"],
            "steepest rank drop": s["rank"][CLAIM_RANK]["steepest_drop_step"]}
        for n, s in conditions.items()
    }  # fmt: skip


def run(cfg: Config, ex: Experiment) -> Path:
    tracked, conditions = train_all(cfg, ex)
    grok, control = f"wd={max(cfg.weight_decays):g}", f"wd={min(cfg.weight_decays):g}"
    dyn = tracked.dynamics[tracked.dynamics["condition"] == grok]
    traj = tracked.trajectories[tracked.trajectories["condition"] == grok]
    summary = {
        "conditions": conditions,
        "weight_decay_run": grok,  # the claims read these two conditions
        "control_run": control,
        "claim_rank": CLAIM_RANK,
        # the source's claim 4, reported here, not claimed: top singular subspaces settle
        # early and line up between layers
        "settling": settling(dyn, cfg.steps),
        "alignment": alignment_at_end(
            tracked.alignment[tracked.alignment["condition"] == grok], traj, cfg.top_k
        ),
    }
    title = f"Grokking: a + b mod {cfg.p}"
    figures = [draw_curves(tracked, markers(conditions), ex.out / "figures" / "curves.png", title)]
    return ex.finish(summary, figures)


# --- the claims, fixed before any run ----------------------------------------------------------

SOURCE = (
    "shared/seeds/002_7ce23dd3d668ff53.txt: 'this sudden leap in performance is linked to the "
    "model finding a low-rank solution for its weights'; as issue 22 states it for Yunis et al. "
    "(2024) on the setting of Nanda et al. (2023): the drop of validation loss coincides with "
    "the onset of low rank, and without weight decay there is neither"
)
GROKKING_STEP = (
    "the grokking step is the first logged step (every eval_every steps, and at every "
    "checkpoint) where test accuracy is >= 99%"
)
RANK_TEXT = (
    "rank is H / ln min(m, n), H = -sum_i p_i ln p_i the entropy of the normalized singular "
    "values p_i = s_i / sum_j s_j of an m x n weight matrix (the source's definition; "
    "the summary also gives H and exp(H))"
)


def _run(summary: Summary, which: str) -> dict[str, Any]:
    """The condition the claims read: `weight_decay_run` or `control_run`."""
    run: dict[str, Any] = summary["conditions"][summary[which]]
    return run


def _coincidence(summary: Summary) -> float | None:
    ratio: float | None = _run(summary, "weight_decay_run")["rank"][summary["claim_rank"]][
        "steepest_drop_over_test99"
    ]
    return ratio


def grokking_claims(matrices: str) -> tuple[Claim, ...]:
    """The claims of a grokking run, fixed before any run; `matrices` says which weight
    matrices the mean rank runs over. They read `summarize`'s numbers of the summary's
    `weight_decay_run` and `control_run`, rank as `claim_rank` defines it."""
    rank = f"{RANK_TEXT}; the weight matrices: {matrices}"
    return (
        Claim(
            "grokked_with_weight_decay", SOURCE,
            "With weight decay the model generalizes: test accuracy reaches 99%.",
            f"whether the run with the largest weight decay has a grokking step; {GROKKING_STEP}",
            Criterion("true"),
            lambda s: _run(s, "weight_decay_run")["test99_step"] is not None,
        ),
        Claim(
            "no_grokking_without_weight_decay", SOURCE,
            "Without weight decay the model memorizes and does not generalize.",
            "whether the control run (weight decay 0) never reaches 99% test accuracy in its "
            "steps",
            Criterion("true"),
            lambda s: _run(s, "control_run")["test99_step"] is None,
        ),
        Claim(
            "rank_drop_coincides_with_grokking", SOURCE,
            "The weights fall to low rank when test accuracy jumps: the steepest rank drop lies "
            "within +-20% of the grokking step.",
            "steepest rank-drop step / grokking step in the weight-decay run. The steepest drop: "
            "of the checkpoints every checkpoint_every steps (the config's), the interval "
            "between consecutive ones, from the curve's peak on, where the mean rank over the "
            "weight matrices falls most per optimizer step (not per log-step); its midpoint "
            f"step. {rank}; {GROKKING_STEP}",
            Criterion("between", (0.8, 1.2)),
            _coincidence,
        ),
        Claim(
            "rank_falls_with_weight_decay", SOURCE,
            "With weight decay the rank of the weights falls by at least 20%.",
            "mean over the weight matrices of the relative rank drop (peak - final) / peak in the "
            f"weight-decay run, from the rank's peak to the last checkpoint; {rank}",
            Criterion(">=", RANK_COLLAPSE),
            lambda s: _run(s, "weight_decay_run")["rank"][s["claim_rank"]]["mean_drop"],
        ),
        Claim(
            "no_rank_collapse_without_weight_decay", SOURCE,
            "Without weight decay the rank does not collapse: it falls by less than 20%.",
            "the measure of rank_falls_with_weight_decay (mean over the weight matrices of "
            "(peak - final) / peak) in the control run (weight decay 0), below the same 20%; "
            f"{rank}",
            Criterion("<", RANK_COLLAPSE),
            lambda s: _run(s, "control_run")["rank"][s["claim_rank"]]["mean_drop"],
        ),
    )  # fmt: skip


CLAIMS = grokking_claims("every weight matrix (embed.weight, fc1.weight, fc2.weight)")


def deviations(cfg: Config) -> list[str]:
    """How an MLP config differs from the source's setting (Nanda et al. 2023's one-layer
    transformer, a + b mod 113, 30% of pairs, AdamW lr 1e-3, weight decay 1, to 99% test
    accuracy or 40k steps)."""
    out = [
        f"An MLP (one embedding of width {cfg.d_embed} shared by both operands, concatenated, "
        f"one ReLU hidden layer of {cfg.d_hidden}), not the one-layer transformer (d_model 128, "
        "4 heads, d_mlp 512): the source's setting is the grokking-transformer experiment.",
        f"Trains a fixed {cfg.steps} steps, not until test accuracy reaches 99% or 40k steps.",
        "No learning-rate warm-up (Nanda et al. warm up over 10 steps); cross-entropy in float32.",
    ]
    if cfg.p != 113:
        out.append(f"a + b mod {cfg.p}, not mod 113.")
    if cfg.train_fraction != 0.3:
        out.append(f"{cfg.train_fraction:.0%} of the pairs for training, not 30%.")
    if cfg.lr != 1e-3 or cfg.beta2 != 0.98:
        out.append(f"AdamW lr {cfg.lr:g}, betas (0.9, {cfg.beta2:g}), not lr 1e-3, (0.9, 0.98).")
    if max(cfg.weight_decays) != 1.0:
        out.append(f"Weight decay {max(cfg.weight_decays):g}, not 1.")
    return out


def draw_seeds(runs: list[Path], figures: Path) -> list[str]:
    """Accuracy and effective rank against step, every seed drawn."""
    tracked = over_seeds(runs)
    title = f"Grokking: a + b, {len(runs)} seeds (one line each)"
    return [draw_curves(tracked, {}, figures / "curves.png", title)]


GROKKING = Setting(
    name="grokking",
    about="Grokking on modular addition (an MLP): does the rank of the weights fall when test "
    "accuracy jumps, with weight decay, and not without?",
    presets=PRESETS,
    engine=Experiment,
    run=run,
    claims=CLAIMS,
    deviations=deviations,
    draw_seeds=draw_seeds,
)
