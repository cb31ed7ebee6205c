"""`Lab`: the engine of the lab settings. It trains a sweep and writes the run directory.

Run directory: lab.parquet, features.parquet, points.parquet, weights.npz, figures/*.png,
summary.json, manifest.json and index.html (see docs/lab.md for every column and key).
A lab setting's run reads

    result = lab.train(sweep(config))
    return lab.finish(summarize(config, result), draw(config, result, lab.out))
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from striate import store
from striate.errors import StriateError
from striate.executor import Executor, task_bar
from striate.experiments.setting import Kind, Request, decide_claims, json_ready, manifest
from striate.experiments.toy.instance import Instance, check, pack
from striate.experiments.toy.models import BIAS_INITS, WEIGHT_INITS
from striate.experiments.toy.sweep import LabResult, run_sweep
from striate.experiments.toy.train import TrainConfig
from striate.report.lab_html import write_lab_report


class Lab:
    """The run directory of one lab setting; its config has a `train` section (TrainConfig)."""

    kind: ClassVar[Kind] = "lab"

    def __init__(self, request: Request) -> None:
        self.request = request
        self.name = request.setting.name
        self.out = request.out
        self.seed = 0 if request.seed is None else request.seed
        self.executor = request.executor or Executor()
        self.train_config: TrainConfig = request.config.train
        self.instances: list[Instance] = []
        self.started = time.time()

    def train(self, instances: list[Instance]) -> LabResult:
        """Train every instance (checked first) and write lab.parquet, features.parquet,
        points.parquet and weights.npz. `executor` runs each group of the sweep as one task."""
        check_train(self.train_config)
        if not instances:
            raise StriateError(f"lab {self.name!r}: the sweep is empty",
                               hint="check the sweep settings")  # fmt: skip
        for inst in instances:
            check(inst)
        self.instances = instances
        self.out.mkdir(parents=True, exist_ok=True)
        cfg, progress = self.train_config, self.request.progress
        total = len(pack(instances, cfg.pad_elements)) * cfg.steps
        here = self.executor.in_process  # a bar of optimizer steps here, of groups elsewhere
        bar = task_bar(total, enabled=progress and here, label=f"lab {self.name}", every=100)
        with bar as advance:
            result = run_sweep(instances, self.seed, cfg, advance, executor=self.executor,
                               progress=progress and not here)  # fmt: skip
        write_tables(self.out, result)
        return result

    def finish(self, summary: dict[str, Any], figures: list[str]) -> Path:
        """Write summary.json, manifest.json and index.html; return the run directory."""
        summary = json_ready(summary)
        store.write_json(self.out / "summary.json", summary)
        decide_claims(self.request, summary)
        facts = {"overrides": list(self.request.overrides), "seed": self.seed,
                 "instances": len(self.instances), "executor": self.executor.name}  # fmt: skip
        record = store.write_manifest(
            self.out, manifest(self.request, self.started, figures, **facts)
        )
        write_lab_report(self.out, record, summary, self.request.setting.about)
        return self.out


def check_train(cfg: TrainConfig) -> None:
    """Refuse a schedule, init or size no training can use, saying what would work."""
    allowed = {"schedule": ("cosine", "constant"), "weight_init": WEIGHT_INITS,
               "bias_init": BIAS_INITS}  # fmt: skip
    for name, values in allowed.items():
        if getattr(cfg, name) not in values:
            value = getattr(cfg, name)
            raise StriateError(f"unknown train.{name} {value!r}", hint=f"one of {values}")
    if cfg.steps < 1 or cfg.log_every < 1 or cfg.batch_size < 1 or cfg.test_size < 1:
        raise StriateError("train.steps, log_every, batch_size and test_size must be >= 1")


def write_tables(out_dir: Path, result: LabResult) -> None:
    store.write_table(out_dir / "lab.parquet", result.log)
    store.write_table(out_dir / "features.parquet", result.features)
    store.write_table(out_dir / "points.parquet", result.points)
    arrays = {f"i{i}.{k}": v for i, f in result.final.items() for k, v in f.params.items()}
    with store.atomic_file(out_dir / "weights.npz") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
