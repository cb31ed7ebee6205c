"""`Experiment`: the engine of the experiments. A run directory, conditions that save
checkpoints on a log-spaced schedule, and the hand-off to `striate track`.

An experiment trains one model per condition (`wd=1`, `shuffled labels`, ...). Each condition
writes plain safetensors checkpoints into `checkpoints/<condition>/step_0001000.safetensors` and
its curves into `checkpoints/<condition>/metrics.parquet`; `Experiment.track` then runs
`striate.track.track` on each folder exactly as a user would on their own checkpoints, and joins
the tables with a `condition` column. `Experiment.finish` writes `summary.json`, the manifest and
`index.html`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file

from striate import store
from striate.experiments.setting import Kind, Request, decide_claims, json_ready, manifest
from striate.report.experiment_html import write_experiment_report
from striate.track import track


def log_schedule(steps: int, n: int) -> list[int]:
    """`n` distinct steps from 0 to `steps` (all of them if there are fewer), spaced evenly in
    log(1 + step) except near 0, where the integers crowd and the first steps are all taken.

    >>> log_schedule(1000, 6)
    [0, 3, 15, 62, 250, 1000]
    """
    if steps + 1 <= n:
        return list(range(steps + 1))
    for m in range(max(n, 2), steps + 2):
        grid = np.expm1(np.linspace(0.0, math.log1p(steps), m))
        chosen = sorted({round(float(x)) for x in grid} | {0, steps})
        if len(chosen) >= n:
            return chosen
    return list(range(steps + 1))


def slug(name: str) -> str:
    """A folder name for a condition: `wd=0.1` -> `wd_0.1` (never `..` or empty)."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", name).strip("._") or "condition"


@dataclass
class Condition:
    """One trained model of an experiment: its checkpoints and its curves."""

    name: str
    params: dict[str, Any]
    folder: Path
    schedule: set[int]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def due(self, step: int) -> bool:
        return step in self.schedule

    def save(self, step: int, model: torch.nn.Module) -> None:
        """Write the model's state dict (float32, as trained) as a safetensors checkpoint."""
        tensors = {
            k: v.detach().to(torch.float32).contiguous().clone()
            for k, v in model.state_dict().items()
        }
        meta = {"step": str(step), "condition": self.name, "params": json.dumps(self.params)}
        self.folder.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(self.folder / f"step_{step:07d}.safetensors"), metadata=meta)

    def log(self, step: int, **metrics: float) -> None:
        self.rows.append({"step": step, **metrics})

    def metrics(self) -> pd.DataFrame:
        table = pd.DataFrame(self.rows).drop_duplicates("step", keep="last")
        ordered: pd.DataFrame = table.sort_values("step", ignore_index=True)
        return ordered


@dataclass
class Tracked:
    """The `striate track` tables of every condition, with a `condition` column."""

    metrics: pd.DataFrame
    trajectories: pd.DataFrame
    dynamics: pd.DataFrame
    alignment: pd.DataFrame


TABLES = ("metrics", "trajectories", "dynamics", "alignment")


def read_tracked(run: Path) -> Tracked:
    """The joined tables an experiment's run directory holds (`Experiment.track` wrote them)."""
    return Tracked(*(pd.read_parquet(run / f"{name}.parquet") for name in TABLES))


def over_seeds(runs: list[Path], seeds: list[int] | None = None) -> Tracked:
    """The tables of several seeds' runs, stacked, with a `seed` column (default: the number in
    each folder's name, `seeds/seed_002` -> 2)."""
    if seeds is None:
        seeds = [int(m.group(1)) if (m := re.search(r"(\d+)$", r.name)) else i
                 for i, r in enumerate(runs)]  # fmt: skip
    parts = [[getattr(t, f.name) for f in dataclasses.fields(t)] for t in map(read_tracked, runs)]
    stacked = [
        pd.concat([p[i].assign(seed=s) for p, s in zip(parts, seeds, strict=True)],
                  ignore_index=True)
        for i in range(len(TABLES))
    ]  # fmt: skip
    return Tracked(*stacked)


class Experiment:
    """The run directory of one experiment and its conditions."""

    kind: ClassVar[Kind] = "experiment"

    def __init__(self, request: Request) -> None:
        self.request = request
        self.name, self.out, self.preset = request.setting.name, request.out, request.preset
        self.progress = request.progress
        self.conditions: list[Condition] = []
        self.started = time.perf_counter()
        self.started_at = time.time()  # the manifest's wall time counts from here
        self.out.mkdir(parents=True, exist_ok=True)

    def say(self, message: str) -> None:
        if self.progress:
            elapsed = time.perf_counter() - self.started
            print(f"striate experiment {self.name} [{elapsed:6.1f} s]: {message}", flush=True)

    def condition(self, name: str, schedule: list[int], **params: Any) -> Condition:
        folder = self.out / "checkpoints" / slug(name)
        if any(c.folder == folder for c in self.conditions):
            raise ValueError(f"two conditions share the folder {folder}")
        cond = Condition(name, params, folder, set(schedule))
        self.conditions.append(cond)
        self.say(f"training {name}")
        return cond

    def track(self) -> Tracked:
        """Run `striate track` on each condition's checkpoints; write the joined tables."""
        parts: dict[str, list[pd.DataFrame]] = {k: [] for k in ("m", "t", "d", "a")}
        for cond in self.conditions:
            self.say(f"tracking {cond.name} ({len(cond.schedule)} checkpoints)")
            metrics = cond.metrics()
            store.write_table(cond.folder / "metrics.parquet", metrics)
            run = track(
                [str(cond.folder)],
                self.out / "track" / slug(cond.name),
                metrics=cond.folder / "metrics.parquet",
            )
            for key, table in zip(
                "mtda", (metrics, run.trajectories, run.dynamics, run.alignment), strict=True
            ):
                parts[key].append(table.assign(condition=cond.name, **_scalars(cond.params)))
        tables = {k: pd.concat(v, ignore_index=True) for k, v in parts.items()}
        for key, file in zip("mtda", TABLES, strict=True):
            store.write_table(self.out / f"{file}.parquet", tables[key])
        return Tracked(tables["m"], tables["t"], tables["d"], tables["a"])

    def finish(self, summary: dict[str, Any], figures: list[str]) -> Path:
        """Write summary.json, manifest.json and index.html; return the run directory."""
        wall = round(time.perf_counter() - self.started, 1)
        summary = {"experiment": self.name, "preset": self.preset, "wall_time_s": wall,
                   **summary}  # fmt: skip
        summary = json_ready(summary)
        store.write_json(self.out / "summary.json", summary)
        decide_claims(self.request, summary)
        conditions = [{"name": c.name, "params": c.params,
                       "checkpoints": str(c.folder.relative_to(self.out))}
                      for c in self.conditions]  # fmt: skip
        record = manifest(self.request, self.started_at, figures,
                          torch_version=torch.__version__, conditions=conditions)  # fmt: skip
        write_experiment_report(self.out, store.write_manifest(self.out, record), summary)
        return self.out


def _scalars(params: dict[str, Any]) -> dict[str, Any]:
    """The condition parameters that fit in a table column."""
    return {k: v for k, v in params.items() if isinstance(v, (int, float, str, bool))}
