"""The small MLP and the minibatch SGD loop that memorization, lmc and lottery share.

The MLP reads flattened images: fc.0 (d1, d0), fc.1 (d2, d1), ... in nn.Linear layout, ReLU
between, so `striate track` chains consecutive layers for its alignment table. Minibatches are
drawn with replacement by an explicit torch.Generator: the generator *is* the data order, so
two runs with the same weights and different generators differ only in SGD noise (lmc's split).

The measures of the source on singular vectors (Yunis et al. 2024, "Approaching deep learning
through the spectral dynamics of weights"), which lmc and lottery decide claims on: how far the
top singular vectors have settled at a step (`vector_settling`: mean_i |<u_i(t), u_i(T)>|) and
how far consecutive layers align (`layer_alignment`: mean_i |<u_i^l, v_i^(l+1)>|), each beside
its chance level.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from striate import store
from striate.analyses.dynamics import subspace_overlap, top_singular
from striate.experiments.claims import Claim, Criterion
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


def seed_summaries(runs: list[Path]) -> list[tuple[int, dict[str, Any]]]:
    """(seed, summary.json) of each seed's run directory; the seed is the number that ends the
    folder's name (`seeds/seed_002` -> 2), as in `harness.over_seeds`."""
    out = []
    for i, run in enumerate(runs):
        m = re.search(r"(\d+)$", run.name)
        out.append((int(m.group(1)) if m else i, store.read_json(run / "summary.json")))
    return out


def seed_of(*keys: int) -> int:
    """A seed for a torch.Generator from a tuple of integers (seed, split, child, ...)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


# --- the source's measures on singular vectors (Yunis et al. 2024) -----------------------------


def expected_abs_cosine(n: int) -> float:
    """E|<a, b>| for two independent uniformly random unit vectors of R^n: the chance level of
    a matched-vector overlap, Gamma(n/2) / (sqrt(pi) Gamma((n + 1)/2)) ~ sqrt(2 / (pi n)).

    >>> [round(expected_abs_cosine(n), 6) for n in (1, 2, 3)]  # 1, 2 / pi, 1 / 2
    [1.0, 0.63662, 0.5]
    """
    return math.exp(math.lgamma(n / 2) - math.lgamma((n + 1) / 2)) / math.sqrt(math.pi)


def matched_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """mean_i |<a_i, b_i>| over the columns of a and b (n, k), unit vectors: how far the i-th
    vector of one basis is the i-th of the other (1: the same vectors in the same order, up to
    sign). Unlike `subspace_overlap`, two vectors that trade places count as moved.

    >>> e = np.eye(3)
    >>> matched_overlap(e[:, :2], e[:, :2]), matched_overlap(e[:, :2], e[:, [1, 0]])
    (1.0, 0.0)
    """
    return float(np.mean(np.abs(np.sum(a * b, axis=0))))


def vector_settling(now: Tensors, final: Tensors, k: int) -> dict[str, dict[str, float]]:
    """Per matrix: how far its top-k singular vectors at some step t (`now`) are already the
    final ones: `left` mean_i |<u_i(t), u_i(T)>|, `right` the same for the right singular
    vectors v_i, i = 1..k (k clipped to the matrix's smaller side, `k`)."""
    out: dict[str, dict[str, float]] = {}
    for name, w in now.items():
        u, _, vh = top_singular(w.double().numpy(), k)  # (rows, k), _, (k, cols)
        u_end, _, vh_end = top_singular(final[name].double().numpy(), k)
        out[name] = {"left": matched_overlap(u, u_end), "right": matched_overlap(vh.T, vh_end.T),
                     "k": u.shape[1]}  # fmt: skip
    return out


def layer_alignment(w: Tensors, k: int) -> dict[str, dict[str, float]]:
    """Per pair of consecutive layers l -> l+1 (`w` in order, nn.Linear layout): how far
    the next layer reads what this one writes along the same top singular directions.

    `matched`: mean_i |<u_i^l, v_i^(l+1)>|, i = 1..k, the alignment of deep-linear theory
    (balanced layers have u_i^l = v_i^(l+1), i.e. 1); `matched_chance`: its value for random
    directions of R^n (`expected_abs_cosine`), n = out_l. `subspace`: the top-k subspace overlap
    of the two (`striate.analyses.dynamics.subspace_overlap`), beside `subspace_chance` k / n.
    """
    names = list(w)
    out: dict[str, dict[str, float]] = {}
    for a, b in pairwise(names):
        if w[a].shape[0] != w[b].shape[1]:
            continue
        u, _, _ = top_singular(w[a].double().numpy(), k)  # (out_l, k)
        _, _, vh = top_singular(w[b].double().numpy(), k)  # (k, out_l)
        used, n = min(u.shape[1], vh.shape[0]), u.shape[0]
        out[f"{a} -> {b}"] = {
            "matched": matched_overlap(u[:, :used], vh[:used].T),
            "matched_chance": expected_abs_cosine(n),
            "subspace": subspace_overlap(u[:, :used], vh[:used].T),
            "subspace_chance": used / n,
        }
    return out


SETTLED = 0.9  # the source's level: top singular vectors within 0.9 of their final ones
UNALIGNED = 0.5  # "little alignment": below halfway from none (0) to deep-linear theory's 1
PAPER = ("Yunis et al. 2024, 'Approaching Deep Learning through the Spectral Dynamics of "
         "Weights' (arXiv 2408.11804), the paper summarized in shared/seeds/"
         "002_7ce23dd3d668ff53.txt")  # fmt: skip


def singular_vectors(
    half: Tensors, final: Tensors, steps: tuple[int, int], k: int
) -> dict[str, Any]:
    """The summary of one run's singular vectors that `singular_vector_claims` reads: their
    settling from step t (`half`, the weights at steps[0]) to the end T (`final`, at steps[1])
    and the layers' alignment at T, per matrix or pair and the means the claims test."""
    settling = vector_settling(half, final, k)
    alignment = layer_alignment(final, k)
    return {
        "step": steps[0],
        "final_step": steps[1],
        "top_k": k,
        "settled": float(np.mean([s["left"] for s in settling.values()])),
        "settling": settling,
        "aligned": float(np.mean([a["matched"] for a in alignment.values()]))
        if alignment
        else None,
        "alignment": alignment,
    }


def singular_vector_claims(key: str, run: str) -> tuple[Claim, Claim]:
    """The source's claims on singular vectors, decided on `summary[key]` (`singular_vectors`
    of the run described by `run`): the top vectors settle by half of training, and
    neighbouring layers do not align."""
    return (
        Claim(
            "top_vectors_settle_by_half",
            f"{PAPER}, abstract: 'top singular vectors stabilize well before the end of "
            "training'; the issue's test: mean |<u_i(t), u_i(T)>| >= 0.9 by t = T/2",
            "By half of training the top singular vectors have settled: on average over the "
            "vectors and the weight matrices, |cos| >= 0.9 with their final directions.",
            f"In {run}, at step t = T/2 (T its last step): per weight matrix the mean over "
            "its top-k left singular vectors of |<u_i(t), u_i(T)>| (u_i the i-th left singular "
            "vector, k = top_k clipped to the matrix's smaller side; sign-free, and a vector "
            "that trades places with its neighbour counts as moved), then the mean over the "
            "weight matrices. Right singular vectors and each matrix's value: summary.json "
            f"'{key}.settling'.",
            Criterion(">=", SETTLED),
            lambda s: s[key]["settled"],
        ),
        Claim(
            "neighbouring_layers_do_not_align",
            f"{PAPER}, abstract: top singular vectors stabilize 'without displaying alignment "
            "between neighboring layers used in several theoretical results'",
            "At the end of training the top singular vectors of neighbouring layers do not "
            "line up (balanced deep-linear theory would have u_i of layer l equal to v_i of "
            "layer l+1).",
            f"In {run}, at its last step: per pair of consecutive layers the mean over i = "
            "1..k of |<u_i^l, v_i^(l+1)>| (u_i^l: the i-th left singular vector of layer l, "
            "its output space; v_i^(l+1): the i-th right singular vector of layer l+1, its "
            "input space; k = top_k), then the mean over the pairs. 1: the theory's alignment; "
            "random directions of R^n give ~sqrt(2 / (pi n)), 0.035 for n = 512, 0.08 for "
            f"n = 100 ('{key}.alignment.*.matched_chance'). The criterion is the midpoint 0.5. "
            "Beside it, not a criterion: the top-k subspace overlap of the pair and its chance "
            "k / n ('subspace', 'subspace_chance').",
            Criterion("<=", UNALIGNED),
            lambda s: s[key]["aligned"],
        ),
    )
