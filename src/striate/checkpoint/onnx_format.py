"""ONNX models (`.onnx`): the weights of the main graph and of every subgraph.

What is listed, depth first in graph order:

- every initializer of the main graph, under its own name;
- every initializer of a subgraph (the `then_branch`/`else_branch` of `If`, the `body` of `Loop`
  and `Scan`, at any depth);
- the tensor of a `Constant` node (attribute `value`) when it looks like a weight: it carries a
  name (what an exporter or inliner leaves when it turns an initializer into a Constant, as
  Silero VAD's `silero_vad.onnx` does for all its weights, one-element biases included), or it
  has more than one element and is not an index type (INT64, INT32, BOOL). Shape, axis and pad
  constants and unnamed scalars (epsilons, scales) are not weights; they are counted in
  `metadata["constants_left_out"]`.

Names: a tensor of the main graph keeps its name. A subgraph tensor keeps its name too, unless
that name occurs more than once in the model (the two branches of an `If` often hold weights of
the same name); then it is prefixed with the path of graphs that holds it, one
`{node name}.{attribute}` per level (`{op_type}_{index}` for an unnamed node), joined by "/":
`If_0.then_branch/encoder.0.reparam_conv.weight`.

Shapes are the ONNX dims as stored, never transposed (a `MatMul` weight exported from a torch
`Linear` is stored `[in, out]`; the anatomy records such layouts). `dtype` is the TensorProto type
name (`"FLOAT"`, `"FLOAT16"`, `"BFLOAT16"`, `"INT64"`, ...).

Memory: the model protobuf is parsed whole, so data stored inside the `.onnx` file is held in
memory for as long as the checkpoint is open (a protobuf file is under 2 GB). Data stored outside
it (`save_as_external_data=True`, required past 2 GB) is read one tensor at a time from its file,
at the offset and length the model gives.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy.typing as npt

from striate.checkpoint.base import Checkpoint, TensorInfo
from striate.errors import StriateError, require

# TensorProto.DataType values ONNX uses for shapes, axes, pads, indices and masks
_INDEX_TYPES = {6, 7, 9}  # INT32, INT64, BOOL
_NOT_NUMBERS = {0: "UNDEFINED element type", 8: "strings, not numbers"}
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


@dataclass(frozen=True)
class _Found:
    """One weight as found in the model, before names are made unique."""

    where: str  # path of graphs holding it; "" for the main graph
    name: str
    tensor: Any  # onnx.TensorProto


class ONNXCheckpoint(Checkpoint):
    """One `.onnx` model. Found by suffix: ONNX files have no signature of their own.

    >>> with striate.open("silero_vad.onnx") as ckpt:                # doctest: +SKIP
    ...     ckpt.info("If_0.then_branch/encoder.0.reparam_conv.weight").shape
    (128, 129, 3)
    """

    format = "onnx"
    suffixes = (".onnx",)

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        onnx: Any = require("onnx", "onnx", path=path)
        self._onnx = onnx
        model = onnx.load_model(str(path), load_external_data=False)
        if not model.HasField("graph"):
            raise StriateError(
                "not an ONNX model: the file parses but holds no graph",
                path=path,
                hint="the file may be truncated or not ONNX at all",
            )
        self._model = model  # keeps the internal data alive; the protos below point into it
        found = list(self._walk(model.graph))
        self._tensors: dict[str, Any] = _unique_names(found)
        # taken now, so info() works after close()
        self._infos = {name: self._info(name, t) for name, t in self._tensors.items()}
        self.metadata.update(_model_metadata(model))

    def _walk(self, main: Any) -> Iterator[_Found]:
        left_out = 0
        for where, graph in _graphs(main, ""):
            for tensor in graph.initializer:
                yield from self._keep(_Found(where, tensor.name, tensor))
            for sparse in graph.sparse_initializer:
                self.skipped[_join(where, sparse.values.name)] = "sparse initializer, not read"
            for node in graph.node:
                value = _constant_value(node)
                if value is None:
                    continue
                if value.name or (_numel(value) > 1 and value.data_type not in _INDEX_TYPES):
                    yield from self._keep(_Found(where, value.name or node.output[0], value))
                else:
                    left_out += 1
        self.metadata["constants_left_out"] = left_out

    def _keep(self, found: _Found) -> Iterator[_Found]:
        tensor = found.tensor
        if tensor.data_type in _NOT_NUMBERS:
            self.skipped[_join(found.where, found.name)] = _NOT_NUMBERS[tensor.data_type]
        elif tensor.data_type not in self._onnx.TensorProto.DataType.values():
            self.skipped[_join(found.where, found.name)] = (
                f"element type {tensor.data_type}, unknown to the installed onnx package"
            )
        elif tensor.HasField("segment"):
            self.skipped[_join(found.where, found.name)] = "segmented tensor, not read"
        else:
            yield found

    def _read(self, name: str) -> npt.NDArray[Any]:
        if self._model is None:
            raise StriateError("the checkpoint is closed", path=self.path, tensor=name)
        # reads external data at its offset/length, leaving the proto unchanged
        values: npt.NDArray[Any] = self._onnx.numpy_helper.to_array(
            self._tensors[name], base_dir=str(self.path.parent)
        )
        return values

    @property
    def files(self) -> list[Path]:
        return list(dict.fromkeys([self.path, *(i.file for i in self._infos.values())]))

    def close(self) -> None:
        self._tensors = {}
        self._model = None  # frees the data held inside the protobuf

    def _info(self, name: str, tensor: Any) -> TensorInfo:
        return TensorInfo(
            name=name,
            shape=tuple(int(d) for d in tensor.dims),
            dtype=self._onnx.TensorProto.DataType.Name(tensor.data_type),
            nbytes=self._stored_bytes(tensor),
            file=self._external_file(tensor) or self.path,
        )

    def _external_file(self, tensor: Any) -> Path | None:
        if tensor.data_location != _EXTERNAL:
            return None
        entries = {e.key: e.value for e in tensor.external_data}
        return self.path.parent / entries["location"] if "location" in entries else None

    def _stored_bytes(self, tensor: Any) -> int:
        if tensor.data_location == _EXTERNAL:
            entries = {e.key: e.value for e in tensor.external_data}
            if "length" in entries:
                return int(entries["length"])
        elif tensor.raw_data:
            return len(tensor.raw_data)
        itemsize = self._onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        return _numel(tensor) * int(itemsize)


def _graphs(graph: Any, where: str) -> Iterator[tuple[str, Any]]:
    """`(path, graph)` for `graph` and every graph nested in its nodes' attributes, depth first."""
    yield where, graph
    for index, node in enumerate(graph.node):
        label = node.name or f"{node.op_type}_{index}"
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _graphs(attr.g, _join(where, f"{label}.{attr.name}"))
            for k, sub in enumerate(attr.graphs):
                yield from _graphs(sub, _join(where, f"{label}.{attr.name}[{k}]"))


def _constant_value(node: Any) -> Any | None:
    """The TensorProto of a `Constant` node's `value` attribute, or None."""
    if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
        return None
    for attr in node.attribute:
        if attr.name == "value" and attr.HasField("t"):
            return attr.t
    return None


def _unique_names(found: list[_Found]) -> dict[str, Any]:
    """Name -> tensor; subgraph tensors whose name repeats get their graph path as prefix."""
    counts = Counter(f.name for f in found)
    tensors: dict[str, Any] = {}
    for f in found:
        name = _join(f.where, f.name) if counts[f.name] > 1 else f.name
        base, n = name, 1
        while name in tensors:  # only for models that break ONNX's own uniqueness rules
            n += 1
            name = f"{base}#{n}"
        tensors[name] = f.tensor
    return tensors


def _model_metadata(model: Any) -> dict[str, Any]:
    return {
        "producer_name": model.producer_name,
        "producer_version": model.producer_version,
        "ir_version": int(model.ir_version),
        "opset": {op.domain or "ai.onnx": int(op.version) for op in model.opset_import},
        "graph_name": model.graph.name,
        "metadata_props": {p.key: p.value for p in model.metadata_props},
    }


def _join(where: str, name: str) -> str:
    return f"{where}/{name}" if where else name


def _numel(tensor: Any) -> int:
    n = 1
    for d in tensor.dims:
        n *= int(d)
    return n
