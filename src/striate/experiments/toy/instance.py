"""One model of a sweep, its random streams, and how instances are packed into batched groups.

Every instance draws its initial weights, its data and its test set from its own generators,
seeded by `(run seed, instance index)`. So an instance trains the same whether it trains alone
or stacked with a hundred others, and adding instances to a sweep does not change the old ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from striate.errors import StriateError

#: the models of `striate.experiments.toy.models`, and the loss each trains with
MODEL_KINDS = ("relu-output", "linear", "relu-hidden", "mlp", "mlp-ce", "unembed")
#: the models that train with cross-entropy on class labels (the rest: importance-weighted MSE)
CE_MODELS = ("mlp-ce", "unembed")
DATA_KINDS = ("sparse", "one-hot", "antipodal")
TARGETS = ("input", "embedded", "reprojected")
LABELS = ("hard", "soft")


@dataclass(frozen=True)
class Instance:
    """Everything that decides one model's data, shape and optimizer (a row of lab.parquet)."""

    index: int  # position in the sweep; with the run's seed it names the random streams
    model: str  # one of MODEL_KINDS
    n_features: int  # n: features in the data
    n_hidden: int  # m: width of the bottleneck (or of the MLP's hidden layer)
    sparsity: float = 0.0  # S: each feature is zero with this probability
    importance: str = "uniform"  # "uniform", "decay" (100 ** -linspace(0, 1, n)) or r: r ** i
    dataset_size: int = 0  # T: a fixed training set of T points; 0 = fresh samples every step
    unit_norm: bool = False  # scale every input to unit length (Henighan et al. 2023)
    noise: float = 0.0  # std of Gaussian noise added to the inputs (the target stays clean)
    data: str = "sparse"  # "sparse", or the fixed set of "one-hot" / "antipodal" vectors
    n_embed: int = 0  # mlp: a fixed random E (n_embed x n) in front of the model; 0 = none
    target: str = "input"  # with E: reconstruct x ("input"), E x ("embedded") or E' x
    labels: str = "hard"  # CE_MODELS: class = argmax of x ("hard"), or the target x / sum(x)
    tied: bool = True  # unembed: logits = W^T W x + b; False: W2 W1 x + b
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 1e-2  # AdamW's decoupled weight decay (on weights and biases)
    replicate: int = 0  # which seed of otherwise identical instances

    @property
    def cross_entropy(self) -> bool:
        """Whether the model trains with cross-entropy on class labels (`CE_MODELS`)."""
        return self.model in CE_MODELS

    @property
    def n_in(self) -> int:
        """Width of the model's input: n, or the bottleneck of E."""
        return self.n_embed or self.n_features

    @property
    def n_out(self) -> int:
        return self.n_embed if self.n_embed and self.target != "input" else self.n_features

    @property
    def rows(self) -> int:
        """Rows of the training set (0 when every step draws a fresh batch)."""
        if self.data == "one-hot":
            return self.n_features
        if self.data == "antipodal":
            return 2 * self.n_features
        return self.dataset_size

    @property
    def shape_key(self) -> tuple[str, int, int, int, int, bool]:
        """Instances with equal keys have parameters of one shape and can share tensors."""
        return (self.model, self.n_in, self.n_hidden, self.n_out, self.n_features, self.tied)


def instance_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(Instance)]


@dataclass(frozen=True)
class Streams:
    """An instance's three independent generators."""

    init: torch.Generator  # initial weights
    data: torch.Generator  # the embedding E, the fixed training set, fresh batches
    test: torch.Generator  # the held-out test set


def streams(seed: int, index: int) -> Streams:
    """Generators seeded from (seed, index) by NumPy's SeedSequence (independent streams)."""
    states = np.random.SeedSequence([seed, index]).generate_state(3, dtype=np.uint64)
    gens = [torch.Generator().manual_seed(int(s)) for s in states]
    return Streams(init=gens[0], data=gens[1], test=gens[2])


def pack(instances: list[Instance], pad_elements: int) -> list[list[Instance]]:
    """Groups that train as one batched tensor, in sweep order of their first member.

    Instances share a group when their parameters have one shape and their training sets
    have one size. Small fixed sets of different sizes also share one, padded with rows of
    weight zero, while the group's K x T_max x (n_in + n_out) stays within `pad_elements`:
    below that a step costs about the same whatever its size, so padding is free and saves
    the fixed cost of a step per group. Fresh-batch instances of one shape share a group.
    """
    by_shape: dict[tuple[object, ...], list[Instance]] = {}
    for inst in instances:
        by_shape.setdefault((*inst.shape_key, inst.rows == 0), []).append(inst)
    groups: list[list[Instance]] = []
    for members in by_shape.values():
        current: list[Instance] = []
        for inst in sorted(members, key=lambda i: (i.rows, i.index)):
            width = inst.n_in + inst.n_out
            same = bool(current) and inst.rows == current[-1].rows
            fits = (len(current) + 1) * inst.rows * width <= pad_elements
            if current and not (same or fits):
                groups.append(current)
                current = []
            current.append(inst)
        groups.append(current)
    groups.sort(key=lambda g: min(i.index for i in g))
    return [sorted(g, key=lambda i: i.index) for g in groups]


def check(inst: Instance) -> None:
    """Refuse an instance that no model or data source can make, saying what would work."""
    choices = {"model": MODEL_KINDS, "data": DATA_KINDS, "target": TARGETS, "labels": LABELS}
    for name, allowed in choices.items():
        if getattr(inst, name) not in allowed:
            value = getattr(inst, name)
            raise StriateError(f"unknown {name} {value!r}", hint=f"one of {', '.join(allowed)}")
    if inst.n_features < 1 or inst.n_hidden < 1:
        raise StriateError(f"n_features and n_hidden must be >= 1, got {inst}")
    if not 0.0 <= inst.sparsity < 1.0:
        raise StriateError(f"sparsity must be in [0, 1), got {inst.sparsity}")
    if inst.data == "sparse" and inst.dataset_size < 0:
        raise StriateError(f"dataset_size must be >= 0, got {inst.dataset_size}")
    if inst.n_embed and inst.model != "mlp":
        raise StriateError("a fixed embedding E (n_embed > 0) goes with model mlp only")
    if inst.target != "input" and not inst.n_embed:
        raise StriateError(f"target {inst.target!r} needs an embedding", hint="set n_embed > 0")
    if inst.model == "unembed" and inst.data == "antipodal":
        raise StriateError("antipodal inputs have no argmax class", hint="use model mlp")
