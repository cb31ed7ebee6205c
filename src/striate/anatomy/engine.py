"""From names and shapes to an Anatomy: pick the family, resolve biases, find residual axes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from striate.anatomy import evidence
from striate.anatomy.families import choose
from striate.anatomy.family import Direction, Family
from striate.anatomy.records import Anatomy, FFNTriple, TensorAnatomy
from striate.anatomy.specimen import Specimen, View

if TYPE_CHECKING:
    from striate.checkpoint.base import Checkpoint

# (direction, layout) -> the stored axis that indexes the residual stream
_AXIS = {
    ("reads", "linear"): 1,  # nn.Linear [out, in]
    ("writes", "linear"): 0,
    ("reads", "conv1d"): 0,  # GPT-2 Conv1D / Keras Dense [in, out]
    ("writes", "conv1d"): 1,
    ("reads", "oihw"): 1,
    ("writes", "oihw"): 0,
    ("reads", "hwio"): 2,
    ("writes", "hwio"): 3,
}


def residual_axis(
    direction: Direction, layout: str | None, shape: tuple[int, ...], hidden: int | None
) -> int | None:
    """Which stored axis runs along the residual stream, checked against the hidden size.

    >>> residual_axis("reads", "conv1d", (40, 160), 40)   # GPT-2 c_fc
    0
    >>> residual_axis("reads", "linear", (160, 40), 40)   # nanoGPT c_fc
    1
    >>> residual_axis("along", "embedding", (1, 17, 40), 40)  # ViT position embeddings
    2
    """
    if hidden is None or direction is None or not shape:
        return None
    axis = len(shape) - 1 if direction == "along" else _AXIS.get((direction, layout or ""))
    if axis is None or shape[axis] != hidden:
        return None
    return axis


def _resolve(view: View, name: str) -> tuple[str, Direction, str | None]:
    """Role, direction and parent weight of one tensor; biases take them from their module."""
    verdict = view.verdicts[name]
    if verdict is None:
        return "other", None, None
    role, direction = verdict
    param = view.params[name]
    if param.kind != "bias" or role in ("other", "bias", "norm_bias"):
        return role, direction, None
    if role == "norm":
        return "norm_bias", "along", None
    # a bias lies along the module's output: the stream for writers, a private space for readers
    return "bias", "along" if direction == "writes" else None, view.sibling(param, "weight")


def assemble(family: Family, view: View) -> Anatomy:
    """Turn one family's reading of the specimen into an Anatomy."""
    shapes = view.spec.shapes
    resolved = {name: _resolve(view, name) for name in shapes}
    roles = {name: r[0] for name, r in resolved.items()}
    layouts = family.layouts(view, roles)
    layers = family.layers(view)
    hidden = family.hidden_size(view, roles)
    tensors = {
        name: TensorAnatomy(
            name=name,
            role=role,
            layer=layers[name],
            residual_axis=residual_axis(direction, layouts[name], shapes[name], hidden),
            layout=layouts[name],
            parent=parent,
        )
        for name, (role, direction, parent) in resolved.items()
    }
    indices = {t.layer for t in tensors.values() if t.layer is not None}
    n_layers = len(indices) or evidence.n_layers(view.spec.config, view.spec.metadata)
    return Anatomy(family.name, n_layers, hidden, tensors, ffn_triples(tensors))


def ffn_triples(tensors: Mapping[str, TensorAnatomy]) -> list[FFNTriple]:
    """Group each layer's FFN matrices and their biases; layers without exactly one 2-D in and
    one 2-D out weight (mixtures of experts, stacked 3-D expert tensors) are left out."""
    weights: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    biases: dict[str, str] = {}
    for t in tensors.values():
        if t.layer is not None and t.role in ("ffn_in", "ffn_gate", "ffn_out"):
            # a stacked expert tensor (no 2-D layout) makes the layer's group ambiguous
            weights[t.layer][t.role if t.layout in ("linear", "conv1d") else "stacked"].append(
                t.name
            )
        elif t.role == "bias" and t.parent is not None:
            biases[t.parent] = t.name
    triples = []
    for layer in sorted(weights):
        group = weights[layer]
        ins, outs, gates = group["ffn_in"], group["ffn_out"], group["ffn_gate"]
        if len(ins) != 1 or len(outs) != 1 or len(gates) > 1 or group["stacked"]:
            continue
        gate = gates[0] if gates else None
        triples.append(
            FFNTriple(layer, ins[0], outs[0], gate, biases.get(ins[0]), biases.get(outs[0]))
        )
    return triples


def describe(
    shapes: Mapping[str, tuple[int, ...]],
    config: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Anatomy:
    """The anatomy of a model from tensor names and shapes (PyTorch order), a pure function.

    `config` is the model's config.json (Hugging Face), `metadata` the format's key-values
    (GGUF `general.architecture`, `<arch>.embedding_length`, ...). Every name given appears in
    the result, in input order; tensors no family table knows get role "other".

        >>> a = describe({"wte.weight": (50257, 768), "h.0.mlp.c_fc.weight": (768, 3072)})
        >>> a.family, a["h.0.mlp.c_fc.weight"].residual_axis
        ('gpt2', 0)
    """
    family, view = choose(Specimen.of(shapes, config, metadata))
    return assemble(family, view)


def anatomy_of(ckpt: Checkpoint) -> Anatomy:
    """The anatomy of an open checkpoint, from its headers, config.json and metadata."""
    shapes = {name: ckpt.info(name).shape for name in ckpt.names()}
    return describe(shapes, ckpt.config, ckpt.metadata)
