"""What the anatomy says about a model: plain frozen records, no logic beyond counting."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

#: every role a tensor can have; anything the family tables do not know is "other"
ROLES = (
    "embedding",
    "position_embedding",
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_qkv",
    "attn_out",
    "ffn_in",
    "ffn_gate",
    "ffn_out",
    "norm",
    "norm_bias",
    "bias",
    "conv",
    "classifier",
    "lm_head",
    "other",
)

#: ways a tensor's axes can be laid out in storage
LAYOUTS = ("linear", "conv1d", "oihw", "hwio", "vector", "embedding")

#: roles whose matrix reads the residual stream (its input axis is the hidden axis)
READS = frozenset(
    {"attn_q", "attn_k", "attn_v", "attn_qkv", "ffn_in", "ffn_gate", "classifier", "lm_head"}
)
#: roles whose matrix writes into the residual stream (its output axis is the hidden axis)
WRITES = frozenset({"attn_out", "ffn_out"})
#: roles whose last axis runs along the residual stream (gains, embedding rows)
ALONG = frozenset({"embedding", "position_embedding", "norm", "norm_bias"})


@dataclass(frozen=True)
class TensorAnatomy:
    """The role of one tensor and which of its stored axes is the residual stream.

    `residual_axis` indexes the tensor as stored (GPT-2's Conv1D `c_fc.weight` of shape
    (d, 4d) has residual_axis 0; nanoGPT's nn.Linear one of shape (4d, d) has 1). It is None
    when no axis has the model's hidden size or the role does not touch the stream.

        >>> TensorAnatomy("h.0.mlp.c_fc.weight", "ffn_in", 0, 0, "conv1d").role
        'ffn_in'
    """

    name: str
    role: str
    layer: int | None
    residual_axis: int | None
    layout: str | None
    parent: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(
                f"unknown role {self.role!r} for {self.name!r}; expected one of {ROLES}"
            )
        if self.layout is not None and self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r} for {self.name!r}")


@dataclass(frozen=True)
class FFNTriple:
    """The weights (and biases) of one layer's feed-forward block, by tensor name.

    Neuron i of the layer is row i of `ffn_in` (and `ffn_gate`) and column i of `ffn_out`
    in nn.Linear layout; in GPT-2's Conv1D layout the axes swap (see each tensor's layout).
    """

    layer: int
    ffn_in: str
    ffn_out: str
    ffn_gate: str | None = None
    in_bias: str | None = None
    out_bias: str | None = None


@dataclass(frozen=True)
class Anatomy:
    """Roles of all tensors of one model, in input order, plus per-layer FFN groups.

    >>> a = describe({"wte.weight": (50, 8), "h.0.ln_1.weight": (8,)})  # doctest: +SKIP
    >>> a["h.0.ln_1.weight"].residual_axis                              # doctest: +SKIP
    0
    """

    family: str
    n_layers: int | None
    hidden_size: int | None
    tensors: dict[str, TensorAnatomy]
    ffn: list[FFNTriple] = field(default_factory=list)

    def __getitem__(self, name: str) -> TensorAnatomy:
        try:
            return self.tensors[name]
        except KeyError:
            raise KeyError(
                f"no tensor {name!r} in this anatomy ({len(self.tensors)} tensors)"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.tensors

    def role_counts(self) -> dict[str, int]:
        """Number of tensors per role, in ROLES order, roles with no tensor left out."""
        counts = Counter(t.role for t in self.tensors.values())
        return {role: counts[role] for role in ROLES if counts[role]}
