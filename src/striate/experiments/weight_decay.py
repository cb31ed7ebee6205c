"""Weight decay drives weight matrices to low rank: the grokking model at several decays.

The task, model and optimizer are `grokking`'s (modular addition, full-batch AdamW); only the
decoupled weight decay changes between runs, over the sweep of issue 22 (0, 1e-4, 1e-3, 1e-2,
1e-1) in the full preset. The claim under test (`CLAIMS`): the final effective rank of every
weight matrix falls as the weight decay grows, Spearman's rho <= -0.8, at comparable train
loss: every run has fit its training set (train loss below 0.01 nats) where the ranks are read.

Where the ranks are read: at the end of training, as the source reads trained networks. Every
run of this task fits its training set within a few hundred steps, long before the decay has
acted (AdamW shrinks a weight by exp(-lr wd t) by step t); a rank read where each run first
reaches a common train loss would be read during memorization and test nothing. So the runs
are compared at the end, and a claim of its own (`runs_fit`) says their train losses are all
below 0.01 nats there: a lower rank is not a worse fit.

    striate experiment weight-decay --out runs/wd --preset full --seeds 3  # ~20 min a seed
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from striate import store
from striate.experiments import grokking
from striate.experiments.claims import Claim, Criterion, Summary
from striate.experiments.figures import draw_curves, draw_sweep
from striate.experiments.harness import Experiment, over_seeds
from striate.experiments.measures import spearman
from striate.experiments.setting import Setting


@dataclass(frozen=True)
class Config(grokking.Config):
    weight_decays: tuple[float, ...] = (0.0, 1e-4, 1e-3, 1e-2, 1e-1)  # one run each
    steps: int = 8000  # full-batch optimizer steps per run


_QUICK = grokking.PRESETS["quick"]  # the task and model of grokking's quick preset
PRESETS: dict[str, Config] = {
    "full": Config(),  # ~20 minutes a seed on 2 CPU cores
    "quick": Config(
        p=_QUICK.p,
        train_fraction=_QUICK.train_fraction,
        d_embed=_QUICK.d_embed,
        d_hidden=_QUICK.d_hidden,
        lr=_QUICK.lr,
        weight_decays=(0.0, 0.3, 1.0, 3.0),  # strong decays: they act within 2,000 steps
        steps=2000,
        checkpoints=16,
    ),
}


def matrix_table(conditions: dict[str, Any], weight_decays: list[float]) -> pd.DataFrame:
    """One row per weight decay and matrix: its final effective rank, and the run's final test
    accuracy. `conditions`: `grokking.condition_summary` by condition name (`wd=0.1`)."""
    rows = [
        {
            "weight_decay": wd,
            "matrix": matrix,
            "final_effective_rank": r["final"],
            "final_test_acc": conditions[f"wd={wd:g}"]["final_test_acc"],
        }
        for wd in weight_decays
        for matrix, r in conditions[f"wd={wd:g}"]["effective_rank"].items()
    ]
    table: pd.DataFrame = pd.DataFrame(rows)
    return table


def per_matrix(table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per matrix: its final rank at each weight decay, Spearman's rho of rank against weight
    decay, and whether the largest decay gives the lowest rank of all (strictly)."""
    out: dict[str, dict[str, Any]] = {}
    for matrix, g in table.groupby("matrix", sort=False):
        wds, ranks = list(g["weight_decay"]), list(g["final_effective_rank"])
        top = wds.index(max(wds))
        out[str(matrix)] = {
            "final_effective_rank": {f"{wd:g}": r for wd, r in zip(wds, ranks, strict=True)},
            # rho is a ratio of integers: rounding drops the float noise that would put an
            # exact -0.8 on the wrong side of the claim's threshold
            "spearman_rank_vs_weight_decay": round(spearman(wds, ranks), 12),
            "largest_decay_lowest_rank": all(
                ranks[top] < r for i, r in enumerate(ranks) if i != top
            ),
        }
    return out


def run(cfg: Config, ex: Experiment) -> Path:
    tracked, conditions = grokking.train_all(cfg, ex)
    metrics = tracked.metrics.sort_values("step")
    final_loss = {n: float(m["train_loss"].iloc[-1]) for n, m in metrics.groupby("condition")}
    table = matrix_table(conditions, list(cfg.weight_decays))
    summary = {
        "weight_decays": list(cfg.weight_decays),
        "conditions": conditions,
        "final_train_loss": final_loss,
        "matrices": per_matrix(table),
    }
    markers = {
        n: {"train 99%": s["train99_step"], "test 99%": s["test99_step"]}
        for n, s in conditions.items()
    }
    folder = ex.out / "figures"
    figures = [
        *sweeps(table, folder, ""),
        draw_curves(tracked, markers, folder / "curves.png",
                    f"a + b mod {cfg.p} at {len(cfg.weight_decays)} weight decays"),
    ]  # fmt: skip
    return ex.finish(summary, figures)


def sweeps(table: pd.DataFrame, folder: Path, note: str) -> list[str]:
    """Final rank (per matrix) and final test accuracy against weight decay."""
    return [
        draw_sweep(table, "weight_decay", ["final_effective_rank"],
                   folder / "rank_vs_weight_decay.png",
                   f"Final effective rank against weight decay{note}", hue="matrix",
                   log_x=True),
        draw_sweep(table.drop_duplicates(["weight_decay", *(["seed"] if "seed" in table
                                                             else [])]),
                   "weight_decay", ["final_test_acc"], folder / "test_acc_vs_weight_decay.png",
                   f"Final test accuracy against weight decay{note}", log_x=True),
    ]  # fmt: skip


def draw_seeds(runs: list[Path], folder: Path) -> list[str]:
    """The figures over seeds: rank and test accuracy against weight decay (mean ± sd), and
    every seed's curves."""
    parts = []
    for i, run_dir in enumerate(runs):
        m = re.search(r"(\d+)$", run_dir.name)
        s = store.read_json(run_dir / "summary.json")
        parts.append(matrix_table(s["conditions"], s["weight_decays"]).assign(
            seed=int(m.group(1)) if m else i))  # fmt: skip
    table = pd.concat(parts, ignore_index=True)
    return [
        *sweeps(table, folder, " (mean ± sd over seeds)"),
        draw_curves(over_seeds(runs), {}, folder / "curves.png",
                    "a + b mod p at each weight decay, every seed"),
    ]  # fmt: skip


# --- the claims, fixed before any run ------------------------------------------------------------

FIT_LOSS = 0.01  # nats: a run has fit its training set (comparable train loss) below this
FALLS = -0.8  # Spearman's rho of final rank against weight decay, at most this (issue 22)


def _worst_spearman(s: Summary) -> float | None:
    rhos = [m["spearman_rank_vs_weight_decay"] for m in s["matrices"].values()]
    if not rhos or any(r is None or math.isnan(r) for r in rhos):
        return None  # fewer than 3 weight decays: no trend to test
    return float(max(rhos))


SOURCE = ("shared/seeds/002_7ce23dd3d668ff53.txt: 'weight decay ... actually influences how the "
          "weights evolve, pushing them towards simpler, more generalizable solutions' (lower "
          "rank); Yunis et al. 2024 (arXiv 2408.11804), abstract: 'weight decay enhances rank "
          "minimization beyond its role as a norm regularizer'")  # fmt: skip
CLAIMS = (
    Claim(
        "runs_fit",
        "Issue 22: the sweep compared 'at comparable train loss'",
        f"Every run of the sweep has fit its training set (train loss below {FIT_LOSS:g} nats) "
        "at the end of training, where the ranks are compared.",
        "The largest final train loss (cross-entropy on the training pairs, nats) over the "
        "runs of the sweep.",
        Criterion("<", FIT_LOSS),
        lambda s: max(s["final_train_loss"].values()),
    ),
    Claim(
        "rank_falls_with_weight_decay",
        SOURCE,
        "The more weight decay, the lower the final effective rank, in every weight matrix.",
        "Per weight matrix, Spearman's rho between the weight decay and the final effective "
        "rank (exp of the entropy of the normalized singular values) over the runs of the "
        "sweep; the largest (least negative) over the matrices. Spearman's rho is the same for "
        "the source's rank (the entropy itself, or normalized): a monotone function of ours.",
        Criterion("<=", FALLS),
        _worst_spearman,
    ),
    Claim(
        "largest_decay_lowest_rank",
        SOURCE,
        "The largest weight decay of the sweep ends with the lowest effective rank of all "
        "runs, in every weight matrix.",
        "Per weight matrix: is the final effective rank at the largest weight decay below the "
        "final effective rank at every other weight decay of the sweep (strictly)? True when "
        "it is for every matrix ('matrices.*.largest_decay_lowest_rank' in summary.json).",
        Criterion("true"),
        lambda s: all(m["largest_decay_lowest_rank"] for m in s["matrices"].values()),
    ),
)


def deviations(cfg: Config) -> list[str]:
    """How a config differs from the source's weight-decay experiments."""
    top = max(cfg.weight_decays)
    out = [
        f"The grokking task and model (a + b mod {cfg.p}, {cfg.train_fraction:.0%} of the pairs, "
        f"an MLP with embedding {cfg.d_embed} and hidden width {cfg.d_hidden}), not the "
        "source's image, speech and language models.",
        f"Full-batch AdamW, lr {cfg.lr:g}, {cfg.steps:,} steps: the decoupled decay shrinks a "
        f"weight by exp(-lr wd t), exp({-cfg.lr * top * cfg.steps:.2g}) over the whole run at "
        f"the largest decay {top:g}.",
        "Ranks read at the end of training, with every run's train loss below 0.01 nats there "
        "(not at one matched train loss: each run fits long before the decay acts).",
        "Effective rank as exp(entropy) of the normalized singular values; the source uses the "
        "entropy (the same Spearman's rho).",
    ]
    if tuple(cfg.weight_decays) != (0.0, 1e-4, 1e-3, 1e-2, 1e-1):
        out.append(f"Weight decays {', '.join(f'{w:g}' for w in cfg.weight_decays)} instead of "
                   "issue 22's 0, 1e-4, 1e-3, 1e-2, 1e-1.")  # fmt: skip
    return out


WEIGHT_DECAY = Setting(
    name="weight-decay",
    about="Weight decay drives weight matrices to low rank: the grokking model at several decays",
    presets=PRESETS,
    engine=Experiment,
    run=run,
    claims=CLAIMS,
    deviations=deviations,
    draw_seeds=draw_seeds,
)
