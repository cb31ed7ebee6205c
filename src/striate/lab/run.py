"""`run_lab`: resolve a lab's config, train its sweep, write the run directory.

Run directory: lab.parquet, features.parquet, points.parquet, weights.npz, figures/*.png,
summary.json, manifest.json and index.html (see docs/lab.md for every column and key).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from striate import store
from striate._version import __version__
from striate.config import apply_overrides, as_dict
from striate.errors import StriateError
from striate.executor import Executor, task_bar
from striate.lab.instance import check, pack
from striate.lab.models import BIAS_INITS, WEIGHT_INITS
from striate.lab.registry import Lab
from striate.lab.sweep import LabResult, run_sweep
from striate.lab.train import TrainConfig
from striate.report.lab_html import write_lab_report


def resolve(
    labs: Mapping[str, Lab], name: str, preset: str, overrides: Sequence[str]
) -> tuple[Lab, Any]:
    """The lab and its config: a preset with `key=value` overrides applied."""
    if name not in labs:
        raise StriateError(f"unknown lab {name!r}", hint=f"known labs: {', '.join(labs)}")
    lab = labs[name]
    if preset not in lab.presets:
        known = ", ".join(lab.presets)
        raise StriateError(f"lab {name!r} has no preset {preset!r}", hint=f"known: {known}")
    config = apply_overrides(lab.presets[preset], overrides)
    _check_train(config.train)
    return lab, config


def _check_train(cfg: TrainConfig) -> None:
    allowed = {"schedule": ("cosine", "constant"), "weight_init": WEIGHT_INITS,
               "bias_init": BIAS_INITS}  # fmt: skip
    for name, values in allowed.items():
        if getattr(cfg, name) not in values:
            value = getattr(cfg, name)
            raise StriateError(f"unknown train.{name} {value!r}", hint=f"one of {values}")
    if cfg.steps < 1 or cfg.log_every < 1 or cfg.batch_size < 1 or cfg.test_size < 1:
        raise StriateError("train.steps, log_every, batch_size and test_size must be >= 1")


def run_lab_in(
    labs: Mapping[str, Lab],
    name: str,
    out: str | Path,
    *,
    preset: str = "quick",
    overrides: Sequence[str] = (),
    seed: int | None = None,
    progress: bool = False,
    executor: Executor | None = None,
) -> Path:
    """Train lab `name` of `labs` and write its run directory under `out`; return it.

    `executor` runs each group of the sweep as one task (default: here, in turn).
    """
    lab, config = resolve(labs, name, preset, overrides)
    seed = 0 if seed is None else seed
    instances = lab.sweep(config)
    if not instances:
        raise StriateError(f"lab {name!r}: the sweep is empty", hint="check the sweep settings")
    for inst in instances:
        check(inst)
    train: TrainConfig = config.train
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    total = len(pack(instances, train.pad_elements)) * train.steps
    executor = executor or Executor()
    here = executor.in_process  # a bar of optimizer steps here, of finished groups elsewhere
    with task_bar(total, enabled=progress and here, label=f"lab {name}", every=100) as advance:
        result = run_sweep(instances, seed, train, advance, executor=executor,
                           progress=progress and not here)  # fmt: skip
    wall = time.time() - start
    _write_tables(out_dir, result)
    summary = finite(lab.summarize(config, result))
    store.write_json(out_dir / "summary.json", summary)
    figures = lab.draw(config, result, out_dir)
    manifest = {
        "kind": "lab",
        "name": name,
        "preset": preset,
        "overrides": list(overrides),
        "config": as_dict(config),
        "seed": seed,
        "instances": len(instances),
        "executor": executor.name,
        "wall_time_s": round(wall, 3),
        "striate_version": __version__,
        "figures": figures,
    }
    store.write_json(out_dir / "manifest.json", manifest)
    write_lab_report(out_dir, manifest, summary, lab.about)
    return out_dir


def finite(value: Any) -> Any:
    """`value` with every NaN or infinite float (and NumPy scalar) made JSON-safe: None."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_tables(out_dir: Path, result: LabResult) -> None:
    store.write_table(out_dir / "lab.parquet", result.log)
    store.write_table(out_dir / "features.parquet", result.features)
    store.write_table(out_dir / "points.parquet", result.points)
    arrays = {f"i{i}.{k}": v for i, f in result.final.items() for k, v in f.params.items()}
    with store.atomic_file(out_dir / "weights.npz") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
