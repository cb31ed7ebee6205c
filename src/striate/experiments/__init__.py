"""Settings that reproduce published findings, trained here on a CPU: one framework, two kinds.

    >>> from striate.experiments import run_experiment, run_lab
    >>> run_lab("superposition", "runs/sup", preset="quick")  # doctest: +SKIP
    PosixPath('runs/sup')
    >>> run_experiment("grokking", "runs/grok", preset="quick")  # doctest: +SKIP
    PosixPath('runs/grok')

Labs (`striate lab NAME`, `LABS`) sweep toy models of superposition, memorization and double
descent, many instances trained as one batched model (`toy/`; docs/lab.md). Experiments
(`striate experiment NAME`, `EXPERIMENTS`) train one model per condition, save checkpoints and
track their spectra with `striate track` (`harness.py`; README).

    setting.py      what a setting is (`Setting`), its config from preset, --set and --seed
                    (`resolve_config`), the manifest every run writes (`manifest`)
    registry.py     every setting, in one place (`SETTINGS`, `find`)
    data.py         synthetic sparse features (labs), image data sets (experiments)
    figures.py      the figures both kinds draw
    toy/            the lab's engine: instances, toy models, batched training, `Lab`
    harness.py      the experiments' engine: conditions, checkpoints, tracking, `Experiment`
    claims.py, mlp.py   what several experiments share: claim numbers, an MLP and its SGD loop
    superposition.py, double_descent.py, reconstruction.py                      the labs
    grokking.py, weight_decay.py, memorization.py, lmc.py, lottery.py, banding.py  the experiments
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from striate.executor import Executor
from striate.experiments.registry import EXPERIMENTS, LABS, SETTINGS, find
from striate.experiments.setting import Kind, Request, Setting, resolve_config
from striate.threads import torch_threads


def run_lab(
    name: str,
    out: str | Path,
    *,
    preset: str = "quick",
    overrides: Sequence[str] = (),
    seed: int | None = None,
    progress: bool = False,
    executor: Executor | None = None,
) -> Path:
    """Train lab `name` with a preset and `key=value` overrides; write and return its run dir.

    Unknown names, presets or settings raise `StriateError` listing the known ones. The run
    directory holds lab.parquet, features.parquet, points.parquet, weights.npz, figures/,
    summary.json, manifest.json and index.html. `seed` (default 0) seeds every instance's
    generators together with the instance's index. `executor` (`striate.executor`) runs each
    group of the sweep as one task, e.g. on a Ray cluster; the default trains here, in turn.
    """
    return run_setting("lab", name, out, preset=preset, overrides=overrides, seed=seed,
                       progress=progress, executor=executor)  # fmt: skip


def run_experiment(
    name: str,
    out: str | Path,
    *,
    preset: str = "quick",
    overrides: Sequence[str] = (),
    seed: int | None = None,
    progress: bool = False,
) -> Path:
    """Train, save checkpoints, track them and summarize; returns the run directory.

    `seed` sets the config's `seed` field. Unknown names, presets or settings raise
    `StriateError` listing the known ones.
    """
    return run_setting("experiment", name, out, preset=preset, overrides=overrides, seed=seed,
                       progress=progress)  # fmt: skip


def run_setting(
    kind: Kind,
    name: str,
    out: str | Path,
    *,
    preset: str = "quick",
    overrides: Sequence[str] = (),
    seed: int | None = None,
    progress: bool = False,
    executor: Executor | None = None,
) -> Path:
    """What `striate lab` and `striate experiment` run: find the setting, resolve its config,
    train it with its engine, on one torch thread (`striate.threads`)."""
    setting = find(kind, name)
    config = resolve_config(setting, preset, overrides, seed)
    request = Request(setting, config, Path(out), preset, tuple(overrides), seed, progress,
                      executor)  # fmt: skip
    with torch_threads(1):
        return setting.run(config, setting.engine(request))


__all__ = [
    "EXPERIMENTS",
    "LABS",
    "SETTINGS",
    "Setting",
    "resolve_config",
    "run_experiment",
    "run_lab",
    "run_setting",
]
