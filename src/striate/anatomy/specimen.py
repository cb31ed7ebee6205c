"""The input to the anatomy (names, shapes, config, metadata) and how a tensor name splits.

A name splits into the module path and the parameter leaf: `h.0.mlp.c_fc.weight` is module
`h.0.mlp.c_fc`, leaf `weight`; Keras `model_weights/conv2d/conv2d/kernel:0` is module
`model_weights/conv2d/conv2d`, leaf `kernel:0`. Family tables match module paths; the leaf says
whether the tensor is the module's weight, its bias or a buffer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["weight", "bias", "buffer"]

_LEAF = re.compile(
    r"^(?P<module>.+?)[./](?P<leaf>"
    r"weight|bias|gamma|beta|scale|running_mean|running_var|num_batches_tracked"
    r"|(?:kernel|depthwise_kernel|pointwise_kernel|filters|embeddings|bias|gamma|beta"
    r"|moving_mean|moving_variance)(?::0)?)$"
)
#: optimizer state saved beside the weights (Adam moments, step counts): never model weights
_OPTIMIZER = re.compile(r"^(?:optimizer_weights|optimizer|optimizer_states|opt_state)[./]")
_BIAS_LEAVES = frozenset({"bias", "beta"})
_BUFFER_LEAVES = frozenset({"running_mean", "running_var", "num_batches_tracked"})
_BUFFER_LEAVES |= frozenset({"moving_mean", "moving_variance"})
#: leaves written by Keras / TensorFlow, whose kernels are stored [..., in, out]
_TF_LEAVES = frozenset({"kernel", "depthwise_kernel", "pointwise_kernel", "filters"})  # TF.js


@dataclass(frozen=True)
class Param:
    """One tensor name split into module path and leaf, with what the leaf means."""

    module: str
    leaf: str
    kind: Kind
    tf_order: bool = False  # stored the TensorFlow way: kernels [kh, kw, in, out], dense [in, out]


def split_name(name: str) -> Param:
    """Split a tensor name at its parameter leaf; a name without a known leaf is all module.

    >>> split_name("h.0.ln_1.bias")
    Param(module='h.0.ln_1', leaf='bias', kind='bias', tf_order=False)
    >>> split_name("vit.embeddings.cls_token").kind
    'weight'
    >>> split_name("optimizer_weights/Adam/dense_2/bias/v:0").kind
    'buffer'
    """
    if _OPTIMIZER.match(name):
        return Param(name, "", "buffer")
    match = _LEAF.match(name)
    if match is None:
        return Param(name, "", "weight")
    leaf = match["leaf"]
    base = leaf.removesuffix(":0")
    kind: Kind = (
        "bias" if base in _BIAS_LEAVES else "buffer" if base in _BUFFER_LEAVES else "weight"
    )
    return Param(match["module"], leaf, kind, base in _TF_LEAVES or leaf != base)


@dataclass(frozen=True)
class Specimen:
    """Names and PyTorch-order shapes of one model, with its config.json and format metadata."""

    shapes: dict[str, tuple[int, ...]]
    config: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        shapes: Mapping[str, tuple[int, ...]],
        config: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
    ) -> Specimen:
        return cls(
            {name: tuple(int(d) for d in shape) for name, shape in shapes.items()},
            config or {},
            metadata or {},
        )


@dataclass
class View:
    """One family's reading of a specimen: the split of every name and its verdict.

    `verdicts[name]` is `(role, direction)` from the family's table, or None when nothing in
    the table recognised the tensor; names in `guessed` got theirs from a structural fallback,
    which does not count as evidence for the family. `modules` groups names by module path and
    leaf kind, so a bias can find its weight; `rule_cache` remembers table lookups by module tail.
    """

    spec: Specimen
    params: dict[str, Param]
    verdicts: dict[str, tuple[str, str | None] | None] = field(default_factory=dict)
    guessed: set[str] = field(default_factory=set)
    rule_cache: dict[str, tuple[str, str | None] | None] = field(default_factory=dict)
    modules: dict[str, dict[Kind, list[str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, param in self.params.items():
            self.modules.setdefault(param.module, {}).setdefault(param.kind, []).append(name)

    def sibling(self, param: Param, kind: Kind) -> str | None:
        """The one tensor of `kind` in the same module (a bias's weight), or None."""
        names = self.modules.get(param.module, {}).get(kind, [])
        return names[0] if len(names) == 1 else None

    def has_running_stats(self, param: Param) -> bool:
        """True for BatchNorm-like modules: they carry running (moving) mean and variance."""
        return bool(self.modules.get(param.module, {}).get("buffer"))

    def recognised(self) -> float:
        """Fraction of tensors the family's table recognised, buffers (running statistics, which
        every family calls "other") left out of the count; 0.0 when there is nothing to count."""
        counted = [n for n, p in self.params.items() if p.kind != "buffer"]
        if not counted:
            return 0.0
        known = sum(self.verdicts[n] is not None and n not in self.guessed for n in counted)
        return known / len(counted)
