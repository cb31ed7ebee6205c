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
    claims.py       the claims contract: `Claim`, `Criterion`, verdicts over seeds, claims.json
    seeds.py        a setting over several seeds (`--seeds`), each seed a task of an executor
    pages.py        docs/reproductions pages generated from claims.json and summary.json
    registry.py     every setting, in one place (`SETTINGS`, `find`)
    data.py         synthetic sparse features (labs), image data sets (experiments)
    figures.py      the figures both kinds draw
    toy/            the lab's engine: instances, toy models, batched training, `Lab`
    harness.py      the experiments' engine: conditions, checkpoints, tracking, `Experiment`
    measures.py, mlp.py  what several experiments share: claim numbers, an MLP and its SGD loop
    superposition.py, double_descent.py, reconstruction.py                      the labs
    grokking.py, weight_decay.py, memorization.py, lmc.py, lottery.py, banding.py  the experiments
    gpt_specimen.py  a GPT-2 trained here and read as seed 000 reads GPT-2 (gpt_model.py: the
                    model; gpt_measures.py, gpt_figures.py: what is measured and drawn)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from striate.errors import StriateError
from striate.executor import Executor
from striate.experiments.registry import EXPERIMENTS, LABS, SETTINGS, find
from striate.experiments.seeds import parse_seeds, run_seeds
from striate.experiments.setting import Kind, Request, Setting, resolve_config
from striate.threads import big_buffers, torch_threads


def run_lab(
    name: str,
    out: str | Path,
    *,
    preset: str = "quick",
    overrides: Sequence[str] = (),
    seed: int | None = None,
    seeds: Sequence[int] | None = None,
    progress: bool = False,
    executor: Executor | None = None,
) -> Path:
    """Train lab `name` with a preset and `key=value` overrides; write and return its run dir.

    Unknown names, presets or settings raise `StriateError` listing the known ones. The run
    directory holds lab.parquet, features.parquet, points.parquet, weights.npz, figures/,
    summary.json, claims.json, manifest.json and index.html. `seed` (default 0) seeds every
    instance's generators together with the instance's index; `seeds` runs the lab once per
    seed and decides its claims over them (`seeds.run_seeds`). `executor`
    (`striate.executor`) runs each group of the sweep as one task, e.g. on a Ray cluster; the
    default trains here, in turn.
    """
    return run_setting("lab", name, out, preset=preset, overrides=overrides, seed=seed,
                       seeds=seeds, progress=progress, executor=executor)  # fmt: skip


def run_experiment(
    name: str,
    out: str | Path,
    *,
    preset: str = "quick",
    overrides: Sequence[str] = (),
    seed: int | None = None,
    seeds: Sequence[int] | None = None,
    progress: bool = False,
    executor: Executor | None = None,
    device: str | None = None,
) -> Path:
    """Train, save checkpoints, track them, summarize and decide the claims (claims.json);
    returns the run directory.

    `seed` sets the config's `seed` field; `seeds` runs every seed as its own run, each a task
    of `executor`, and decides the claims over them (`seeds.run_seeds`). `device` ("cuda",
    "cuda:1", "cpu") sets the config's `device` field, for the experiments that have one.
    Unknown names, presets or settings raise `StriateError` listing the known ones.
    """
    return run_setting("experiment", name, out, preset=preset, overrides=overrides, seed=seed,
                       seeds=seeds, progress=progress, executor=executor,
                       device=device)  # fmt: skip


def run_setting(
    kind: Kind,
    name: str,
    out: str | Path,
    *,
    preset: str = "quick",
    overrides: Sequence[str] = (),
    seed: int | None = None,
    seeds: Sequence[int] | None = None,
    progress: bool = False,
    executor: Executor | None = None,
    device: str | None = None,
    resume: bool = False,
) -> Path:
    """What `striate lab` and `striate experiment` run: find the setting, resolve its config,
    train it with its engine, on one torch thread (`striate.threads`); or, given `seeds`, do
    that once per seed (`seeds.run_seeds`, which `resume`s seeds already run)."""
    if seeds is not None:
        if seed is not None:
            raise StriateError("give --seed or --seeds, not both")
        return run_seeds(kind, name, out, seeds, preset=preset, overrides=overrides,
                         progress=progress, executor=executor, device=device,
                         resume=resume)  # fmt: skip
    setting = find(kind, name)
    config = resolve_config(setting, preset, overrides, seed, device)
    request = Request(setting, config, Path(out), preset, tuple(overrides), seed, progress,
                      executor if kind == "lab" else None)  # fmt: skip
    with torch_threads(1), big_buffers():
        return setting.run(config, setting.engine(request))


__all__ = [
    "EXPERIMENTS",
    "LABS",
    "SETTINGS",
    "Setting",
    "parse_seeds",
    "resolve_config",
    "run_experiment",
    "run_lab",
    "run_setting",
]
