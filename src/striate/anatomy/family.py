"""A model family: a table from name patterns to roles, plus the few facts tables cannot hold.

A family module declares its rules as data and overrides a hook only where names alone do not
decide (GPT-2's Conv1D layout is read from shapes; a convnet's BatchNorm is recognised by its
running statistics). Adding a family is one small module and one line in `families.py`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from striate.anatomy import evidence
from striate.anatomy.records import ALONG, READS, ROLES, WRITES
from striate.anatomy.specimen import Param, Specimen, View, split_name

#: how a role meets the residual stream: its matrix reads from it, writes to it, or its last
#: axis runs along it (gains, embedding rows); None when it does not touch the stream
Direction = str | None
_AUTO = "auto"
#: a rule matches at most this many trailing components of a module path
RULE_SPAN = 4


def default_direction(role: str) -> Direction:
    """reads / writes / along for the roles that touch the residual stream, else None."""
    if role in READS:
        return "reads"
    if role in WRITES:
        return "writes"
    return "along" if role in ALONG else None


@dataclass(frozen=True)
class Rule:
    """Module paths ending in `pattern` (at a `.` or `/` boundary) have `role`. The pattern
    sees only the last `RULE_SPAN` components of the path.

    `direction` defaults to the role's usual relation to the residual stream.

    >>> Rule(r"mlp\\.c_fc", "ffn_in").matches("transformer.h.0.mlp.c_fc")
    True
    """

    pattern: str
    role: str
    direction: Direction = _AUTO
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"rule {self.pattern!r}: unknown role {self.role!r}")
        object.__setattr__(self, "regex", re.compile(rf"(?:^|[./])(?:{self.pattern})$"))
        if self.direction == _AUTO:
            object.__setattr__(self, "direction", default_direction(self.role))

    def matches(self, module: str) -> bool:
        return self.regex.search(module) is not None


def module_tail(module: str) -> str:
    """The last `RULE_SPAN` components of a module path: all a rule may look at, so that the
    verdict for `layers.7.mlp.experts.5.w1` is worked out once for every layer and expert.

    >>> module_tail("model.layers.7.block_sparse_moe.experts.5.w1")
    'block_sparse_moe.experts.5.w1'
    """
    sep = "/" if "/" in module else "."
    return sep.join(module.rsplit(sep, RULE_SPAN)[-RULE_SPAN:])


def patterns(*sources: str) -> tuple[re.Pattern[str], ...]:
    """Compile full-name patterns, anchored at a path boundary and at the end of the name."""
    return tuple(re.compile(rf"(?:^|[./])(?:{s})$") for s in sources)


def layer_patterns(*sources: str) -> tuple[re.Pattern[str], ...]:
    """Compile block-index patterns; group 1 is the block index, searched anywhere in a name."""
    return tuple(re.compile(rf"(?:^|[./])(?:{s})[./]") for s in sources)


class Family:
    """Base of all families: table lookup, layer indices, layouts, hidden size."""

    name: ClassVar[str] = "generic"
    #: lower-case prefixes of config model_type / architectures / GGUF architecture
    model_types: ClassVar[tuple[str, ...]] = ()
    #: module-path rules, first match wins (order specific before general)
    rules: ClassVar[tuple[Rule, ...]] = ()
    #: full names that are known non-weights (causal masks, position ids): role "other"
    known_other: ClassVar[tuple[re.Pattern[str], ...]] = ()
    #: patterns whose group 1 is the block index
    layer_patterns: ClassVar[tuple[re.Pattern[str], ...]] = ()

    def split(self, name: str, shape: tuple[int, ...], spec: Specimen) -> Param:
        """Module path and leaf of a name (families with odd leaves override)."""
        return split_name(name)

    def read(self, spec: Specimen) -> View:
        """Split every name and look it up in the table."""
        params = {name: self.split(name, shape, spec) for name, shape in spec.shapes.items()}
        view = View(spec, params)
        for name, param in params.items():
            verdict = self.classify(name, param, spec.shapes[name], view)
            if verdict is None:
                verdict = self.fallback(param, spec.shapes[name], view)
                if verdict is not None:
                    view.guessed.add(name)
            view.verdicts[name] = verdict
        return view

    def classify(
        self, name: str, param: Param, shape: tuple[int, ...], view: View
    ) -> tuple[str, Direction] | None:
        """`(role, direction)` of the module this tensor belongs to, or None if unknown.

        For a bias the role is that of its module (the engine turns it into "bias" or
        "norm_bias"); buffers and known non-weights are "other".
        """
        if param.kind == "buffer" or any(p.search(name) for p in self.known_other):
            return "other", None
        tail = module_tail(param.module)
        if tail not in view.rule_cache:
            found = next((r for r in self.rules if r.matches(tail)), None)
            view.rule_cache[tail] = None if found is None else (found.role, found.direction)
        return view.rule_cache[tail]

    def fallback(
        self, param: Param, shape: tuple[int, ...], view: View
    ) -> tuple[str, Direction] | None:
        """A structural guess for a tensor `classify` did not know; None leaves it "other"."""
        return None

    def detect(self, view: View) -> float:
        """How well this family fits: the recognised fraction, x1.5 when the files name it."""
        names = evidence.declared(view.spec.config, view.spec.metadata)
        named = any(n.startswith(self.model_types) for n in names) if self.model_types else False
        return view.recognised() * (1.5 if named else 1.0)

    def layers(self, view: View) -> dict[str, int | None]:
        """Block index of each tensor from the first layer pattern that matches, else None."""
        out: dict[str, int | None] = {}
        for name in view.params:
            out[name] = None
            for pattern in self.layer_patterns:
                if match := pattern.search(name):
                    out[name] = int(match[1])
                    break
        return out

    def layout(self, param: Param, role: str, shape: tuple[int, ...], view: View) -> str | None:
        """Storage layout of one tensor, from its role, rank and the leaf's framework."""
        if not shape:
            return None
        if role in ("embedding", "position_embedding"):
            return "embedding"
        if len(shape) == 1:
            return "vector"
        if len(shape) == 2 and (role in READS or role in WRITES):
            return "conv1d" if param.tf_order else "linear"
        if len(shape) == 4 and role == "conv":
            return "hwio" if param.tf_order else "oihw"
        return None

    def layouts(self, view: View, roles: Mapping[str, str]) -> dict[str, str | None]:
        """Layouts of all tensors (a family that decides per model overrides this)."""
        shapes = view.spec.shapes
        return {n: self.layout(p, roles[n], shapes[n], view) for n, p in view.params.items()}

    def hidden_size(self, view: View, roles: Mapping[str, str]) -> int | None:
        """Residual width: config / GGUF metadata, else the last axis of the first embedding,
        else the most common length of the norm gains (a shard without embeddings)."""
        spec = view.spec
        if (hidden := evidence.hidden_size(spec.config, spec.metadata)) is not None:
            return hidden
        for name, role in roles.items():
            if role in ("embedding", "position_embedding") and spec.shapes[name]:
                return spec.shapes[name][-1]
        gains = Counter(s[0] for n, s in spec.shapes.items() if roles[n] == "norm" and len(s) == 1)
        # ties go to the wider: Qwen3 has as many head-wide q/k norms as hidden-wide ones
        return max(gains, key=lambda width: (gains[width], width)) if gains else None
