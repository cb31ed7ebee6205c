"""A sweep of instances: packed into groups, each group trained batched, results as tables."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch

from striate.executor import Executor
from striate.experiments.toy import metrics
from striate.experiments.toy.instance import Instance, pack
from striate.experiments.toy.train import GroupResult, TrainConfig, train_group
from striate.threads import big_buffers, torch_threads


@dataclass
class Final:
    """One instance at the end of training, as arrays (for figures and weights.npz)."""

    params: dict[str, np.ndarray]  # the model's parameters, instance axis removed
    features: np.ndarray  # (n_in, m): row i is feature i's direction W_i
    bias: np.ndarray  # (n_out,): the output bias
    hidden: np.ndarray | None  # (T, m): hidden vectors of the training points, if a fixed set
    importance: np.ndarray  # (n_out,)


@dataclass
class LabResult:
    """What a sweep produced; `Lab.train` writes it as the run directory's tables."""

    instances: list[Instance]
    log: pd.DataFrame  # lab.parquet: one row per instance and logged step
    features: pd.DataFrame  # features.parquet: one row per instance and input feature
    points: pd.DataFrame  # points.parquet: one row per instance and training point
    final: dict[int, Final]  # by instance index

    def last(self) -> pd.DataFrame:
        """The log's last step of every instance."""
        last: pd.DataFrame = self.log[self.log["step"] == self.log["step"].max()]
        out: pd.DataFrame = last.reset_index(drop=True)
        return out


@dataclass
class GroupTables:
    """One trained group as results (arrays and tables, no torch model): one task's return."""

    rows: list[dict[str, Any]]  # lab.parquet rows
    final: dict[int, Final] = field(default_factory=dict)  # by instance index
    features: list[pd.DataFrame] = field(default_factory=list)
    points: list[pd.DataFrame] = field(default_factory=list)


def group_tables(
    group: list[Instance],
    seed: int,
    cfg: TrainConfig,
    on_steps: Callable[[int], None] | None = None,
) -> GroupTables:
    """Train one group (batched, on one thread: see `striate.threads`) and tabulate it."""
    with torch_threads(1), big_buffers():
        result = train_group(group, seed, cfg, on_steps or _no_steps)
        tables = GroupTables(result.rows)
        with torch.no_grad():
            H = None if result.train is None else result.model.hidden(result.train.x)  # (K, T, m)
        for k, inst in enumerate(group):
            final = _final(result, k, H)
            tables.final[inst.index] = final
            tables.features.append(_feature_rows(inst, final))
            if final.hidden is not None:
                tables.points.append(_point_rows(inst, final))
    return tables


def _no_steps(n: int) -> None:
    pass


def run_sweep(
    instances: list[Instance],
    seed: int,
    cfg: TrainConfig,
    on_steps: Callable[[int], None] = _no_steps,
    *,
    executor: Executor | None = None,
    progress: bool = False,
) -> LabResult:
    """Train every instance (grouped by shape, batched) and collect its tables.

    Each group is one task of `executor` (default: here, in turn). `on_steps` hears of every
    optimizer step when the tasks run in this process; `progress` shows a bar of groups done
    when they do not.
    """
    executor = executor or Executor()
    steps = on_steps if executor.in_process else None
    task = partial(group_tables, seed=seed, cfg=cfg, on_steps=steps)
    groups = pack(instances, cfg.pad_elements)
    logs: list[dict[str, Any]] = []
    features: list[pd.DataFrame] = []
    points: list[pd.DataFrame] = []
    final: dict[int, Final] = {}
    for tables in executor.map(task, groups, label="lab: groups", progress=progress):
        logs += tables.rows
        final |= tables.final
        features += tables.features
        points += tables.points
    params = pd.DataFrame([dataclasses.asdict(i) for i in instances]).rename(
        columns={"index": "instance"}
    )
    log = pd.DataFrame(logs).merge(params, on="instance").sort_values(["instance", "step"])
    return LabResult(
        instances=instances,
        log=log.reset_index(drop=True),
        features=_concat(features, FEATURE_COLUMNS),
        points=_concat(points, POINT_COLUMNS),
        final=final,
    )


FEATURE_COLUMNS = ["instance", "feature", "norm", "superposition", "dimensionality", "bias",
                   "importance"]  # fmt: skip
POINT_COLUMNS = ["instance", "point", "norm", "dimensionality"]


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


@torch.no_grad()
def _final(result: GroupResult, k: int, H: torch.Tensor | None) -> Final:
    model, train = result.model, result.train
    hidden = None
    if H is not None and train is not None:
        hidden = H[k][train.w[k] > 0].numpy()  # padding and unlabeled rows left out
    return Final(
        params={name: p[k].detach().numpy().copy() for name, p in model.named_parameters()},
        features=model.features()[k].detach().numpy().copy(),
        bias=model.output_bias()[k].detach().numpy().copy(),
        hidden=hidden,
        importance=result.tasks[k].importance.numpy(),
    )


def _feature_rows(inst: Instance, f: Final) -> pd.DataFrame:
    W = torch.from_numpy(f.features)
    n = W.shape[0]
    same = f.bias.shape[0] == n  # the output bias is per feature unless E re-maps the output
    table: pd.DataFrame = pd.DataFrame(
        {
            "instance": inst.index,
            "feature": np.arange(n),
            "norm": metrics.norms(W).numpy(),
            "superposition": metrics.superposition(W).numpy(),
            "dimensionality": metrics.dimensionality(W).numpy(),
            "bias": f.bias if same else np.full(n, np.nan),
            "importance": f.importance if same else np.full(n, np.nan),
        }
    )
    return table


def _point_rows(inst: Instance, f: Final) -> pd.DataFrame:
    assert f.hidden is not None
    H = torch.from_numpy(f.hidden)
    table: pd.DataFrame = pd.DataFrame(
        {
            "instance": inst.index,
            "point": np.arange(H.shape[0]),
            "norm": metrics.norms(H).numpy(),
            "dimensionality": metrics.dimensionality(H).numpy(),
        }
    )
    return table
