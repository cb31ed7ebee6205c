"""Experiments that reproduce published findings about weights, one readable module each.

Every module holds a `Config` dataclass (commented defaults: the `full` preset), `PRESETS`
(field overrides per preset name) and `run(config, experiment) -> Path`. `run_experiment` is
what `striate experiment NAME` calls.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from striate.config import apply_overrides
from striate.errors import StriateError
from striate.threads import torch_threads

__all__ = ["EXPERIMENTS", "run_experiment"]

#: name -> module: one line per experiment
EXPERIMENTS = {
    "grokking": "striate.experiments.grokking",
    "weight-decay": "striate.experiments.weight_decay",
    "memorization": "striate.experiments.memorization",
    "lmc": "striate.experiments.lmc",
    "lottery": "striate.experiments.lottery",
    "banding": "striate.experiments.banding",
}


def run_experiment(
    name: str,
    out: str | Path,
    *,
    preset: str = "quick",
    overrides: Sequence[str] = (),
    seed: int | None = None,
    progress: bool = False,
) -> Path:
    """Train, save checkpoints, track them and summarize; returns the run directory."""
    from striate.experiments.harness import Experiment

    if name not in EXPERIMENTS:
        raise StriateError(f"unknown experiment {name!r}", hint=f"one of: {', '.join(EXPERIMENTS)}")
    module = importlib.import_module(EXPERIMENTS[name])
    if preset not in module.PRESETS:
        raise StriateError(
            f"unknown preset {preset!r} for {name}", hint=f"one of: {', '.join(module.PRESETS)}"
        )
    config = replace(module.Config(), **module.PRESETS[preset])
    config = apply_overrides(config, overrides)
    if seed is not None:
        config = replace(config, seed=seed)
    experiment = Experiment(name, Path(out), config, preset, progress=progress)
    with torch_threads(1):
        result: Path = module.run(config, experiment)
    return result
