"""The small MLP and the minibatch SGD loop that memorization, lmc and lottery share.

The MLP reads flattened images: fc.0 (d1, d0), fc.1 (d2, d1), ... in nn.Linear layout, ReLU
between, so `striate track` chains consecutive layers for its alignment table. Minibatches are
drawn with replacement by an explicit torch.Generator: the generator *is* the data order, so
two runs with the same weights and different generators differ only in SGD noise (lmc's split).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from striate.analyses.dynamics import subspace_overlap, top_singular
from striate.experiments.data import Dataset
from striate.experiments.harness import Condition

Tensors = dict[str, torch.Tensor]  # parameter name -> tensor: a state dict, the weights
Masks = dict[str, torch.Tensor]  # parameter name -> 0/1 tensor of its shape (lottery)


class MLP(nn.Module):
    def __init__(self, sizes: Sequence[int]) -> None:  # sizes: (d_in, d_hidden..., n_classes)
        super().__init__()
        self.fc = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (B, 1, H, W) -> logits (B, C)
        h = x.flatten(1)  # (B, d_in)
        for fc in self.fc[:-1]:
            h = F.relu(fc(h))  # (B, d_hidden)
        return self.fc[-1](h)  # type: ignore[no-any-return]


def make_mlp(sizes: Sequence[int], seed: int) -> MLP:
    """The MLP with PyTorch's default init drawn from `seed` (the global RNG is left alone)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return MLP(sizes)


def sgd(model: nn.Module, lr: float, momentum: float, weight_decay: float = 0.0) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


def linear_decay(lr: float, steps: int) -> Callable[[int], float]:
    """The learning rate at each step: `lr` at step 0, falling linearly to 0 at `steps`."""
    return lambda step: lr * (1.0 - step / steps)


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, batch: int = 4096) -> dict[str, float]:
    """Mean cross-entropy and accuracy on the whole train and test sets."""
    out = {}
    for split in ("train", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        loss = correct = 0.0
        for i in range(0, len(y), batch):
            logits = model(x[i : i + batch])  # (b, C)
            loss += F.cross_entropy(logits, y[i : i + batch], reduction="sum").item()
            correct += (logits.argmax(1) == y[i : i + batch]).sum().item()
        out[f"{split}_loss"], out[f"{split}_acc"] = loss / len(y), correct / len(y)
    return out


def train(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    data: Dataset,
    start: int,
    stop: int,
    *,
    batch_size: int,
    order: torch.Generator,
    cond: Condition | None = None,
    eval_every: int = 0,
    masks: Masks | None = None,
    lr: Callable[[int], float] | None = None,
) -> None:
    """SGD from global step `start` to `stop`: at every step the condition's checkpoint (if
    due) and metrics (at checkpoints and every `eval_every` steps) of the weights *before* that
    step's update. `masks` zero the pruned weights after every update (they stay zero);
    `lr(step)`, when given, sets the learning rate of every step."""
    params = dict(model.named_parameters())
    n = len(data.y_train)
    for step in range(start, stop + 1):
        if cond is not None and (cond.due(step) or (eval_every and step % eval_every == 0)):
            cond.log(step, **evaluate(model, data))
        if cond is not None and cond.due(step):
            cond.save(step, model)
        if step == stop:
            break
        if lr is not None:
            for group in opt.param_groups:
                group["lr"] = lr(step)
        i = torch.randint(n, (batch_size,), generator=order)  # (B,) with replacement
        loss = F.cross_entropy(model(data.x_train[i]), data.y_train[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        if masks:
            with torch.no_grad():
                for name, m in masks.items():
                    params[name].mul_(m)


def weights(model: nn.Module) -> Tensors:
    """The weight matrices (not biases) by parameter name, detached copies."""
    return {k: v.detach().clone() for k, v in model.named_parameters() if v.ndim == 2}


def top_overlaps(a: Tensors, b: Tensors, k: int) -> dict[str, Any]:
    """Per matrix of `a` (and `b`, same names and shapes): how much the top-k singular
    subspaces of the two agree, left (output space) and right (input space), each beside
    chance, k / (that side's width), the overlap of two random subspaces."""
    out: dict[str, Any] = {}
    for name, wa in a.items():
        ua, _, vha = top_singular(wa.double().numpy(), k)  # (rows, k), _, (k, cols)
        ub, _, vhb = top_singular(b[name].double().numpy(), k)
        used, (rows, cols) = ua.shape[1], wa.shape  # k clipped to the smaller side
        out[name] = {
            "left": subspace_overlap(ua, ub),
            "right": subspace_overlap(vha.T, vhb.T),
            "chance_left": used / rows,
            "chance_right": used / cols,
        }
    return out


def mean_overlap(overlaps: dict[str, Any]) -> float:
    """The mean over matrices and both sides of `top_overlaps`."""
    return float(np.mean([[o["left"], o["right"]] for o in overlaps.values()]))


def seed_of(*keys: int) -> int:
    """A seed for a torch.Generator from a tuple of integers (seed, split, child, ...)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])
