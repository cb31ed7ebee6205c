"""Batched training: a group of K instances is one model with a leading instance axis.

The loss is the sum of the K instances' own losses, so each instance's gradient is exactly the
gradient it would get alone; AdamW's update is elementwise, with a learning rate and weight
decay per instance. Together: an instance trains the same in a group as alone (to float
rounding), which `tests/test_lab.py` checks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from striate.experiments.data import Batch, Task
from striate.experiments.toy import metrics
from striate.experiments.toy.instance import Instance, streams
from striate.experiments.toy.models import ToyModel, build, init_


@dataclass(frozen=True)
class TrainConfig:
    """Optimizer, schedule and logging, shared by every instance of a run."""

    steps: int = 10_000  # optimizer steps; a fixed training set is used whole at every step
    batch_size: int = 1024  # fresh points per step, for instances without a fixed set
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 1e-2  # AdamW's decoupled weight decay, on weights and biases
    schedule: str = "cosine"  # "cosine": linear warmup, then cosine decay to 0; "constant"
    warmup: float = 0.05  # share of steps in warmup (Henighan et al. 2023: 2,500 of 50,000)
    beta1: float = 0.9  # AdamW's first-moment decay
    beta2: float = 0.999  # AdamW's second-moment decay
    eps: float = 1e-8  # AdamW's denominator guard
    weight_init: str = "xavier-normal"  # or "xavier-uniform"
    bias_init: str = "zero"  # or "uniform": nn.Linear's U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    test_size: int = 1000  # held-out points per instance (sparse data)
    log_every: int = 1000  # metrics every this many steps, and at step 0 and the last
    pad_elements: int = 1 << 18  # small fixed sets of unequal sizes share a group, padded,
    # while K x T_max x (n_in + n_out) stays within this (see `instance.pack`)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of the peak learning rate for update `step` (1-based)."""
    if cfg.schedule == "constant":
        return 1.0
    warm = round(cfg.warmup * cfg.steps)
    if step <= warm:
        return step / warm
    t = (step - warm) / max(1, cfg.steps - warm)
    return 0.5 * (1.0 + math.cos(math.pi * t))


class AdamW:
    """torch.optim.AdamW's update, with a learning rate and weight decay per instance (K,)."""

    def __init__(self, params: list[Tensor], lr: Tensor, weight_decay: Tensor, cfg: TrainConfig):
        self.params, self.lr, self.wd = params, lr, weight_decay
        self.b1, self.b2, self.eps = cfg.beta1, cfg.beta2, cfg.eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self, factor: float) -> None:
        self.t += 1
        c1, c2 = 1 - self.b1**self.t, 1 - self.b2**self.t  # bias corrections
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            assert p.grad is not None
            shape = (-1,) + (1,) * (p.ndim - 1)
            lr = (self.lr * factor).view(shape)  # (K, 1, ...)
            p.mul_(1 - lr * self.wd.view(shape))  # decoupled weight decay
            m.lerp_(p.grad, 1 - self.b1)
            v.mul_(self.b2).addcmul_(p.grad, p.grad, value=1 - self.b2)
            denom = (v.sqrt() / math.sqrt(c2)).add_(self.eps)
            p.sub_(lr / c1 * m / denom)


def stack(batches: list[Batch], rows: int | None = None) -> Batch:
    """K batches -> one of shape (K, rows, ...); shorter ones padded with weight-0 rows."""
    rows = rows or max(b.x.shape[0] for b in batches)

    def pad(t: Tensor) -> Tensor:
        extra = rows - t.shape[0]
        return torch.cat([t, t.new_zeros((extra, *t.shape[1:]))]) if extra else t

    return Batch(*(torch.stack([pad(getattr(b, f)) for b in batches]) for f in ("x", "y", "w")))


def row_loss(model: ToyModel, out: Tensor, batch: Batch, importance: Tensor) -> Tensor:
    """Per-row loss (K, B): importance-weighted squared error, or cross-entropy."""
    if model.loss == "ce":
        return metrics.cross_entropy(out, batch.y)
    return metrics.mse(out, batch.y, importance)


@dataclass
class GroupResult:
    """A trained group: its model (parameters (K, ...)), tasks, and logged metric rows."""

    instances: list[Instance]
    model: ToyModel
    tasks: list[Task]
    train: Batch | None  # the stacked fixed training sets (K, T_max, ...), if any
    rows: list[dict[str, Any]] = field(default_factory=list)


def train_group(
    instances: list[Instance],
    seed: int,
    cfg: TrainConfig,
    on_steps: Callable[[int], None] = lambda n: None,
) -> GroupResult:
    """Train instances of one shape together; log metrics every `cfg.log_every` steps."""
    gens = [streams(seed, inst.index) for inst in instances]
    tasks = [Task(i, g.data, g.test, cfg.test_size) for i, g in zip(instances, gens, strict=True)]
    first = instances[0]
    model = build(first.model, len(instances), first.n_in, first.n_hidden, first.n_out, first.tied)
    init_(model, [g.init for g in gens], cfg.weight_init, cfg.bias_init)
    importance = torch.stack([t.importance for t in tasks])  # (K, n_out)
    fixed = [t.train_set for t in tasks]
    train = stack([b for b in fixed if b is not None]) if fixed[0] is not None else None
    test = stack([t.test_set for t in tasks])
    probes = stack([t.probes() for t in tasks])
    lr = torch.tensor([i.lr for i in instances])
    wd = torch.tensor([i.weight_decay for i in instances])
    opt = AdamW(list(model.parameters()), lr, wd, cfg)
    result = GroupResult(instances, model, tasks, train)
    seen = torch.zeros(len(instances))  # summed batch losses since the last log (fresh data)
    n_seen = 0
    for step in range(cfg.steps + 1):
        if step % cfg.log_every == 0 or step == cfg.steps:
            batch_loss = seen / n_seen if n_seen else torch.full_like(seen, math.nan)
            scores = evaluate(model, train, test, probes, importance, batch_loss)
            result.rows += _rows(instances, step, cfg, scores)
            seen, n_seen = torch.zeros_like(seen), 0
        if step == cfg.steps:
            break
        batch = train
        if batch is None:
            batch = stack(
                [t.sample(cfg.batch_size, g.data) for t, g in zip(tasks, gens, strict=True)]
            )
        out = model(batch.x)
        loss = metrics.weighted_mean(row_loss(model, out, batch, importance), batch.w)  # (K,)
        model.zero_grad(set_to_none=True)
        loss.sum().backward()  # type: ignore[no-untyped-call]
        opt.step(lr_factor(step + 1, cfg))
        seen += loss.detach()
        n_seen += 1
        on_steps(1)
    return result


@torch.no_grad()
def evaluate(
    model: ToyModel,
    train: Batch | None,
    test: Batch,
    probes: Batch,
    importance: Tensor,
    batch_loss: Tensor,
) -> dict[str, Tensor]:
    """Every logged metric, each of shape (K,)."""
    W = model.features()  # (K, n_in, m)
    represented = metrics.norms(W) > metrics.REPRESENTED_NORM  # (K, n_in)
    n_rep = represented.sum(-1)
    dims = (metrics.dimensionality(W) * represented).sum(-1) / n_rep.clamp_min(1)
    test_loss, test_accuracy = _scores(model, test, importance)
    scores = {
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
        "probe_accuracy": _scores(model, probes, importance)[1],
        "represented": represented.float().mean(-1),
        "dims_per_feature": metrics.dims_per_feature(W),
        "feature_dimensionality": torch.where(n_rep > 0, dims, math.nan),
    }
    if train is None:  # fresh batches: the loss is the mean batch loss since the last log
        nan = torch.full_like(batch_loss, math.nan)
        scores |= {"train_loss": batch_loss, "train_accuracy": nan, "data_dimensionality": nan}
    else:
        scores["train_loss"], scores["train_accuracy"] = _scores(model, train, importance)
        D = metrics.dimensionality(model.hidden(train.x), train.w)  # (K, T)
        scores["data_dimensionality"] = metrics.weighted_mean(D, (train.w > 0).float())
    return scores


def _scores(model: ToyModel, batch: Batch, importance: Tensor) -> tuple[Tensor, Tensor]:
    """(loss, argmax accuracy) of every instance on a stacked batch, each (K,)."""
    out = model(batch.x)
    loss = metrics.weighted_mean(row_loss(model, out, batch, importance), batch.w)
    return loss, metrics.argmax_accuracy(out, batch.y, batch.w)


def _rows(
    instances: list[Instance], step: int, cfg: TrainConfig, scores: dict[str, Tensor]
) -> list[dict[str, Any]]:
    """One lab.parquet row per instance."""
    factor = lr_factor(step, cfg) if step else 0.0
    values = {name: v.double().tolist() for name, v in scores.items()}
    return [
        {"instance": inst.index, "step": step, "scheduled_lr": inst.lr * factor}
        | {name: v[k] for name, v in values.items()}
        for k, inst in enumerate(instances)
    ]
