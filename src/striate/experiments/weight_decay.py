"""Weight decay drives weight matrices to low rank: the grokking model at several decays.

The task, model and optimizer are `grokking`'s (modular addition, full-batch AdamW); only the
decoupled weight decay changes between runs. The claim under test: the final effective rank of
every weight matrix falls as the weight decay grows.

    striate experiment weight-decay --out runs/wd --preset full
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from striate.experiments import grokking
from striate.experiments.figures import draw_curves, draw_sweep
from striate.experiments.harness import Experiment
from striate.experiments.measures import spearman
from striate.experiments.setting import Setting


@dataclass(frozen=True)
class Config(grokking.Config):
    weight_decays: tuple[float, ...] = (0.0, 0.1, 0.3, 1.0, 3.0)  # one run each
    steps: int = 8000  # full-batch optimizer steps per run


_QUICK = grokking.PRESETS["quick"]  # the task and model of grokking's quick preset
PRESETS: dict[str, Config] = {
    "full": Config(),  # ~20 minutes on 2 CPU cores
    "quick": Config(
        p=_QUICK.p,
        train_fraction=_QUICK.train_fraction,
        d_embed=_QUICK.d_embed,
        d_hidden=_QUICK.d_hidden,
        lr=_QUICK.lr,
        weight_decays=(0.0, 0.3, 1.0, 3.0),
        steps=2000,
        checkpoints=16,
    ),
}


def run(cfg: Config, ex: Experiment) -> Path:
    tracked, conditions = grokking.train_all(cfg, ex)
    rows = [
        {
            "weight_decay": wd,
            "matrix": matrix,
            "final_effective_rank": r["final"],
            "final_test_acc": conditions[f"wd={wd:g}"]["final_test_acc"],
        }
        for wd in cfg.weight_decays
        for matrix, r in conditions[f"wd={wd:g}"]["effective_rank"].items()
    ]
    table = pd.DataFrame(rows)
    per_matrix: dict[str, dict[str, Any]] = {
        str(m): {
            "final_effective_rank": {
                f"{wd:g}": r
                for wd, r in zip(g["weight_decay"], g["final_effective_rank"], strict=True)
            },
            "spearman_rank_vs_weight_decay": spearman(
                list(g["weight_decay"]), list(g["final_effective_rank"])
            ),
        }
        for m, g in table.groupby("matrix", sort=False)
    }
    lo, hi = min(cfg.weight_decays), max(cfg.weight_decays)
    summary = {
        "conditions": conditions,
        "matrices": per_matrix,
        "claims": {
            # (1) more weight decay, lower final effective rank: for every matrix, a falling
            # trend (Spearman rho <= -0.7) and the largest decay below no decay
            "rank_falls_with_weight_decay": all(
                v["spearman_rank_vs_weight_decay"] <= -0.7 for v in per_matrix.values()
            ),
            "largest_decay_lowest_rank": all(
                v["final_effective_rank"][f"{hi:g}"] < v["final_effective_rank"][f"{lo:g}"]
                for v in per_matrix.values()
            ),
        },
    }
    markers = {
        n: {"train 99%": s["train99_step"], "test 99%": s["test99_step"]}
        for n, s in conditions.items()
    }
    figures = [
        draw_sweep(
            table,
            "weight_decay",
            ["final_effective_rank"],
            ex.out / "figures" / "rank_vs_weight_decay.png",
            "Final effective rank against weight decay",
            hue="matrix",
            log_x=True,
        ),
        draw_sweep(
            table.drop_duplicates("weight_decay"),
            "weight_decay",
            ["final_test_acc"],
            ex.out / "figures" / "test_acc_vs_weight_decay.png",
            "Final test accuracy against weight decay",
            log_x=True,
        ),
        draw_curves(
            tracked,
            markers,
            ex.out / "figures" / "curves.png",
            f"a + b mod {cfg.p} at {len(cfg.weight_decays)} weight decays",
        ),
    ]
    return ex.finish(summary, figures)


WEIGHT_DECAY = Setting(
    name="weight-decay",
    about="Weight decay drives weight matrices to low rank: the grokking model at several decays",
    presets=PRESETS,
    engine=Experiment,
    run=run,
)
