"""Weight banding: does global average pooling make the last conv layer encode vertical position?

Petrov et al. ("Weight Banding", Distill 2021) trained a simplified vision network (6 groups of
convolutions separated by L2 pooling, batch norm, global average pooling, one fully connected
layer) on ImageNet and varied one thing at a time. Their results, our claims
(`banding_claims.py`, decided on the banding index B_h of a layer at the end minus at init):

1. baseline: the last conv layer bands horizontally;
2. images rotated 90 degrees: the bands turn vertical;
3. no global pooling (the fully connected layer sees every position): no banding;
4. pooling along x only (each row of the last layer's output averaged, so the fully connected
   layer sees the rows): banding leaves the last layer (5b) and appears in the one before (5a).

Here the network is scaled to a CPU and to Fashion-MNIST (28x28 grey clothes, the real image
set available; shared/ASSETS.md): one 3x3 conv + batch norm + ReLU per group, L2 pooling after
the first two groups so that the last four groups run at 7x7, the size of the article's last
layers (there only 5a and 5b are at 7x7, after a fifth pooling, with 5x5 kernels: see
`banding_claims.deviations`; putting the last pooling before 5a and giving every layer 5x5
kernels left the x-pool result as it is, on 12,000 images for 6 epochs, seed 0). Training uses
random horizontal flips and shifts (as ImageNet training does); the rotated condition rotates
the augmented images, so it is exactly the baseline's data turned by 90 degrees. Each
condition's final checkpoint goes through `striate banding` as a user's would; every
checkpoint, the initialization (step 0) included, gets the banding score and B_h of each conv
layer. The conditions of one seed train in parallel processes (`workers`, one thread each);
`--seeds` runs the seeds one after another, so a run never asks for more than `workers` cores.

    striate experiment banding --out runs/banding --preset full --seeds 3
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from striate import store
from striate.analyses.banding import banding_score, nmf_view
from striate.checkpoint import open_checkpoint
from striate.experiments.banding_claims import CLAIMS, deviations, draw_seeds
from striate.experiments.data import Dataset, load
from striate.experiments.harness import Condition, Experiment, log_schedule
from striate.experiments.setting import Setting
from striate.render.banding_figures import BANDED, nmf_grid, pick_neurons
from striate.render.png import save_figure
from striate.render.style import canvas, style
from striate.scan.banding import run_banding  # `striate banding`, as a user runs it

#: condition -> what changes: the input rotation and the head after the last conv layer
CONDITIONS: dict[str, dict[str, Any]] = {
    "baseline": {"rotate": False, "head": "gap"},
    "rotated": {"rotate": True, "head": "gap"},
    "no-gap": {"rotate": False, "head": "flatten"},
    "x-pool": {"rotate": False, "head": "xpool"},
}


@dataclass(frozen=True)
class Config:
    dataset: str = "fashion-mnist"  # "fashion-mnist" or "digits" (data.py)
    n_train: int = 0  # training examples (0: all 60,000)
    n_test: int = 0  # test examples (0: all 10,000)
    upsample: int = 1  # nearest-neighbour upsampling of the images (digits: 8x8 -> 16x16)
    widths: tuple[int, ...] = (16, 32, 32, 48, 64, 64)  # channels of the 6 conv groups
    pool_after: tuple[int, ...] = (0, 1)  # L2 pooling (2x2) after these groups: 28 -> 14 -> 7
    epochs: int = 20  # passes over the training set (at 6 the scores are still rising)
    batch_size: int = 128  # minibatch size
    lr: float = 0.05  # peak SGD learning rate (momentum 0.9), cosine to 0 after 1 warmup epoch
    weight_decay: float = 5e-4  # SGD weight decay
    flip: bool = True  # random horizontal flips (before any rotation)
    shift: int = 2  # random shifts by up to this many pixels (zero padded)
    conditions: tuple[str, ...] = tuple(CONDITIONS)  # which conditions to train
    checkpoints: int = 10  # per condition, log-spaced over the steps (banding against step)
    workers: int = 2  # conditions trained at once, one process and one thread each
    seed: int = 0  # init, data order and augmentation (the same for every condition)


PRESETS: dict[str, Config] = {
    "full": Config(),  # ~35 minutes a seed on 2 free CPU cores
    "quick": Config(
        dataset="digits",
        upsample=2,
        widths=(8, 16, 16, 16, 24, 24),
        epochs=30,
        batch_size=64,
        lr=0.05,
        shift=1,
        checkpoints=4,
    ),
}


class L2Pool(nn.Module):
    """sqrt(mean of squares) over 2x2 windows, stride 2 (the article's L2 pooling)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H/2, W/2)
        return torch.sqrt(F.avg_pool2d(x * x, 2) + 1e-6)


class Group(nn.Module):
    """3x3 conv (no bias) + batch norm + ReLU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class Net(nn.Module):
    """Conv groups, then the head: global average pool, flatten, or average over x only."""

    def __init__(self, cfg: Config, head: str, side: int, n_classes: int) -> None:
        super().__init__()
        widths = (1, *cfg.widths)
        self.groups = nn.ModuleList(Group(a, b) for a, b in itertools.pairwise(widths))
        self.pool_after = set(cfg.pool_after)
        self.pool = L2Pool()
        self.head = head
        end = side // 2 ** len(cfg.pool_after)  # side of the last conv layer's output
        features = {"gap": 1, "flatten": end * end, "xpool": end}[head] * cfg.widths[-1]
        self.fc = nn.Linear(features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, H, W) -> (B, n_classes)
        for i, group in enumerate(self.groups):
            x = group(x)
            if i in self.pool_after:
                x = self.pool(x)
        if self.head == "gap":
            x = x.mean(dim=(2, 3))  # (B, C)
        elif self.head == "xpool":
            x = x.mean(dim=3).flatten(1)  # (B, C * H): rows kept, columns averaged
        else:
            x = x.flatten(1)  # (B, C * H * W)
        return self.fc(x)  # type: ignore[no-any-return]


def prepare(x: torch.Tensor, cfg: Config, rotate: bool) -> torch.Tensor:
    """Upsample, then rotate by 90 degrees (counter-clockwise) when asked."""
    if cfg.upsample > 1:
        x = x.repeat_interleave(cfg.upsample, dim=2).repeat_interleave(cfg.upsample, dim=3)
    return torch.rot90(x, 1, dims=(2, 3)) if rotate else x


def augment(x: torch.Tensor, cfg: Config, g: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and shifts (each image its own) of unrotated images (B, C, H, W)."""
    b, _, h, w = x.shape
    if cfg.flip:
        flip = torch.rand(b, generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if cfg.shift:
        s = cfg.shift
        padded = F.pad(x, (s, s, s, s))  # zeros around: the background of these images
        dy, dx = torch.randint(0, 2 * s + 1, (2, b, 1), generator=g)
        rows, cols = dy + torch.arange(h), dx + torch.arange(w)  # (B, H), (B, W)
        x = padded[torch.arange(b)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
        x = x.permute(0, 3, 1, 2)  # advanced indexing put the channel axis last
    return x


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    model.eval()
    correct = sum(int((model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
                  for i in range(0, len(y), batch))  # fmt: skip
    model.train()
    return correct / len(y)


def train_condition(cfg: Config, cond: Condition, progress: bool = False) -> list[dict[str, Any]]:
    """Train one condition from the shared seed; save its checkpoints; return its curve rows.

    Runs in a worker process (one torch thread); the data are loaded there. A worker whose
    parent has died (killed, not interrupted) stops instead of training on for nobody.
    """
    torch.set_num_threads(1)
    parent = os.getppid()
    data: Dataset = load(cfg.dataset, n_train=cfg.n_train, n_test=cfg.n_test, seed=cfg.seed)
    rotate, head = CONDITIONS[cond.name]["rotate"], CONDITIONS[cond.name]["head"]
    x_train = prepare(data.x_train, cfg, rotate=False)  # rotated after augmentation
    x_test = prepare(data.x_test, cfg, rotate=rotate)
    torch.manual_seed(cfg.seed)
    model = Net(cfg, head, x_train.shape[2], data.n_classes)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9,
                          weight_decay=cfg.weight_decay)  # fmt: skip
    per_epoch = math.ceil(len(x_train) / cfg.batch_size)
    steps = cfg.epochs * per_epoch
    warmup = per_epoch
    g = torch.Generator().manual_seed(cfg.seed)
    started, step = time.perf_counter(), 0
    cond.save(0, model)
    for epoch in range(cfg.epochs):
        if progress:
            print(f"striate experiment banding: {cond.name} epoch {epoch + 1}/{cfg.epochs} "
                  f"[{time.perf_counter() - started:6.1f} s]", flush=True)  # fmt: skip
        order = torch.randperm(len(x_train), generator=g)
        for i in range(0, len(order), cfg.batch_size):
            lr = cfg.lr * min((step + 1) / warmup, 0.5 * (1 + math.cos(math.pi * step / steps)))
            for group in opt.param_groups:
                group["lr"] = lr
            idx = order[i : i + cfg.batch_size]
            x = augment(x_train[idx], cfg, g)
            x = torch.rot90(x, 1, dims=(2, 3)) if rotate else x
            loss = F.cross_entropy(model(x), data.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            step += 1
            if step % 50 == 0 and os.getppid() != parent:  # orphaned: leave now, quietly
                os._exit(1)
            if cond.due(step):
                cond.save(step, model)
                cond.log(step, train_loss=loss.item(), test_accuracy=accuracy(model, x_test,
                         data.y_test), seconds=time.perf_counter() - started)  # fmt: skip
    return cond.rows


def _steps(cfg: Config) -> int:
    n = cfg.n_train or {"digits": 1297, "fashion-mnist": 60000}.get(cfg.dataset, 0)
    return cfg.epochs * math.ceil(n / cfg.batch_size)


def run(cfg: Config, ex: Experiment) -> Path:
    schedule = log_schedule(_steps(cfg), cfg.checkpoints)
    conds = [ex.condition(name, schedule, **CONDITIONS[name]) for name in cfg.conditions]
    if cfg.workers > 1 and len(conds) > 1:
        context = multiprocessing.get_context("spawn")  # a clean interpreter, not a forked torch
        with ProcessPoolExecutor(min(cfg.workers, len(conds)), mp_context=context) as pool:
            n = len(conds)
            results = list(pool.map(train_condition, [cfg] * n, conds, [ex.progress] * n))
    else:
        results = [train_condition(cfg, c, ex.progress) for c in conds]
    for cond, rows in zip(conds, results, strict=True):
        cond.rows = rows
    ex.say("scoring banding at every checkpoint")
    layers, curves = [], []
    for cond in conds:
        final = cond.folder / f"step_{max(schedule):07d}.safetensors"
        table = run_banding(final, ex.out / "banding" / cond.name)
        layers.append(table.assign(condition=cond.name, step=max(schedule)))
        for step in schedule:  # step 0, the initialization, is every claim's reference
            checkpoint = cond.folder / f"step_{step:07d}.safetensors"
            curves.append(_last_layers(checkpoint, cfg).assign(condition=cond.name, step=step))
    by_layer = pd.concat(layers, ignore_index=True)
    metrics = pd.concat([c.metrics().assign(condition=c.name) for c in conds], ignore_index=True)
    over_steps = pd.concat(curves, ignore_index=True).merge(metrics, on=["condition", "step"],
                                                            how="left")  # fmt: skip
    store.write_table(ex.out / "banding.parquet", by_layer)
    store.write_table(ex.out / "banding_steps.parquet", over_steps)
    store.write_table(ex.out / "metrics.parquet", metrics)
    summary = summarize(by_layer, metrics, over_steps)
    figures = [
        draw_conditions(ex.out, conds, summary, cfg),
        draw_score_curves(ex.out, over_steps),
    ]
    return ex.finish(summary, figures)


def _last_layers(checkpoint: Path, cfg: Config) -> pd.DataFrame:
    """Banding score and B_h of every conv layer of one checkpoint (no images)."""
    rows = []
    with open_checkpoint(checkpoint) as ckpt:
        for i in range(len(cfg.widths)):
            b = banding_score(ckpt.read(f"groups.{i}.conv.weight"))
            rows.append({"group": i, **b.row()})
    table: pd.DataFrame = pd.DataFrame(rows)
    return table


def summarize(
    by_layer: pd.DataFrame, metrics: pd.DataFrame, over_steps: pd.DataFrame
) -> dict[str, Any]:
    """Per condition: test accuracy, and per conv group (first to last) at the end of training
    the banding score, its z and direction (`striate banding`) and B_h, and at initialization
    (step 0) the score and B_h. The claims (`banding_claims.CLAIMS`) read these lists."""
    scored = by_layer[by_layer["banding_score"].notna()]
    per: dict[str, Any] = {}
    for name, table in scored.groupby("condition", sort=False):
        final = metrics[metrics["condition"] == name].sort_values("step").iloc[-1]
        init = over_steps[(over_steps["condition"] == name) & (over_steps["step"] == 0)]
        init = init.sort_values("group")
        per[str(name)] = {
            "test_accuracy": float(final["test_accuracy"]),
            "score": [float(s) for s in table["banding_score"]],
            "z": [float(z) for z in table["banding_z"]],
            "direction": list(table["banding_direction"]),
            "bh": [float(b) for b in table["banding_bh"]],
            "score_init": [float(s) for s in init["banding_score"]],
            "bh_init": [float(b) for b in init["banding_bh"]],
        }
    return {"conditions": per}


# --- figures: the article's NMF panels per condition, and banding against training step ----

DIRECTION_COLORS = {"horizontal": BANDED, "vertical": "#1f77b4", "none": "0.6"}


def draw_conditions(out: Path, conds: list[Condition], summary: dict[str, Any], cfg: Config) -> str:
    """One row per condition: NMF tiles of the last two conv layers (the article's 5a and 5b)
    and B_h of every conv group at the end (bars, coloured by the score's direction) and at
    initialization (black ticks)."""
    groups = len(cfg.widths)
    fig = canvas(10, 2.9 * len(conds) + 0.5, dpi=110)
    fig.suptitle("Weight banding: NMF of the last two conv layers, and B_h per layer",
                 fontsize=11, x=0.01, ha="left")  # fmt: skip
    for r, cond in enumerate(conds):
        info = summary["conditions"].get(cond.name)
        final = sorted(cond.folder.glob("step_*.safetensors"))[-1]
        with open_checkpoint(final) as ckpt:
            kernels = [ckpt.read(f"groups.{g}.conv.weight") for g in (groups - 2, groups - 1)]
        for c, w in enumerate(kernels):
            ax = fig.add_subplot(len(conds), 3, 3 * r + c + 1)
            view = nmf_view(w, seed=cfg.seed)
            ax.imshow(nmf_grid(view, pick_neurons(view, 36)), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            label = ("5a", "5b")[c]
            direction = info["direction"][groups - 2 + c] if info else "none"
            score = info["score"][groups - 2 + c] if info else float("nan")
            bh = info["bh"][groups - 2 + c] if info else float("nan")
            for spine in ax.spines.values():
                spine.set_edgecolor(DIRECTION_COLORS[direction])
                spine.set_linewidth(2.5 if direction != "none" else 0.8)
            ax.set_title(f"{cond.name}, layer {label} (group {groups - 1 + c})", fontsize=9,
                         loc="left")  # fmt: skip
            ax.set_xlabel(f"{direction}, score {score:+.2f}, B_h {bh:.2f}", fontsize=8,
                          color=DIRECTION_COLORS[direction])  # fmt: skip
        ax = fig.add_subplot(len(conds), 3, 3 * r + 3)
        if info:
            colors = [DIRECTION_COLORS[d] for d in info["direction"]]
            x = np.arange(1, groups + 1)
            ax.bar(x, np.asarray(info["bh"]) - 0.5, bottom=0.5, color=colors)
            ax.scatter(x, info["bh_init"], marker="_", s=120, color="black", zorder=3)
            ax.set_title(f"test accuracy {info['test_accuracy']:.1%}", fontsize=9, loc="left")
        ax.axhline(0.5, color="0.3", lw=0.8)
        ax.set_ylim(0, 1)
        ax.set_xticks(np.arange(1, groups + 1))
        ax.set_xlabel("conv group", fontsize=8)
        ax.set_ylabel("B_h (bars; init: ticks)", fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    with style():
        save_figure(fig, out / "banding.png")
    return "banding.png"


def draw_score_curves(out: Path, over_steps: pd.DataFrame) -> str:
    """B_h of the last two conv layers and test accuracy against training step."""
    last = int(over_steps["group"].max())
    fig = canvas(11, 3.4, dpi=110)
    axes = [fig.add_subplot(1, 3, i + 1) for i in range(3)]
    for color, (name, table) in enumerate(over_steps.groupby("condition", sort=False)):
        for ax, group in zip(axes[:2], (last - 1, last), strict=True):
            t = table[table["group"] == group].sort_values("step")
            ax.plot(t["step"], t["banding_bh"], marker=".", color=f"C{color}", label=str(name))
        t = table[(table["group"] == last) & table["test_accuracy"].notna()].sort_values("step")
        axes[2].plot(t["step"], t["test_accuracy"], marker=".", color=f"C{color}", label=str(name))
    for ax, title in zip(axes, ("B_h, layer 5a", "B_h, layer 5b",
                                "test accuracy"), strict=True):  # fmt: skip
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(left=0)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[:2]:
        ax.axhline(0.5, color="0.3", lw=0.8)
        ax.set_ylim(0, 1)
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    with style():
        save_figure(fig, out / "banding_steps.png")
    return "banding_steps.png"


BANDING = Setting(
    name="banding",
    about="Weight banding (Petrov et al. 2021): global average pooling makes the last conv "
    "layer band horizontally; rotation, no pooling and x-pooling move or remove the bands",
    presets=PRESETS,
    engine=Experiment,
    run=run,
    claims=CLAIMS,
    deviations=deviations,
    draw_seeds=draw_seeds,
)

__all__ = ["BANDING", "CONDITIONS", "PRESETS", "Config", "Net", "run", "summarize",
           "train_condition"]  # fmt: skip
