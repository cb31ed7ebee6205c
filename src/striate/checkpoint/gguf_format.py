"""GGUF (llama.cpp) files: header-only `info`, dequantized float32 `read`, key-values as metadata.

GGUF lists a tensor's dimensions fastest-varying first (`ne`), the reverse of PyTorch: the
SmolLM2 weight `blk.0.ffn_down.weight` has `file_shape` (1536, 576) and `shape` (576, 1536).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from striate.checkpoint.base import Checkpoint, TensorInfo, library_error
from striate.checkpoint.gguf_header import check_gguf_header
from striate.errors import StriateError, require

# Longer key-value arrays (tokenizer vocabularies, merges) become a short "<array of N str>".
MAX_ARRAY_ITEMS = 1024

# Types stored as plain numbers; gguf.quants.dequantize handles only F32 and F16 among these.
_PLAIN_TYPES = frozenset({"F32", "F16", "F64", "I8", "I16", "I32", "I64"})


class GGUFCheckpoint(Checkpoint):
    """A memory-mapped GGUF file; block-quantized tensors are dequantized on `read`.

    `metadata` holds the file's key-values under their own keys (`"general.architecture"`,
    `"llama.block_count"`, ...) plus `"GGUF.version"`.

        >>> ckpt = open_checkpoint("SmolLM2-135M-Instruct.Q4_1.gguf")  # doctest: +SKIP
        >>> w = ckpt.read("blk.0.ffn_down.weight")  # doctest: +SKIP
        >>> ckpt.info("blk.0.ffn_down.weight").dtype, w.shape  # doctest: +SKIP
        ('Q4_1', (576, 1536))
    """

    format = "gguf"
    suffixes = (".gguf",)

    @classmethod
    def sniff(cls, path: Path, head: bytes) -> bool:
        return head.startswith(b"GGUF")

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        gguf: Any = require("gguf", "gguf", path=path)
        check_gguf_header(path, {int(k): v for k, v in gguf.GGML_QUANT_SIZES.items()})
        try:
            self._reader: Any = gguf.GGUFReader(path)
            self.metadata = {
                name: _field_value(field, gguf.GGUFValueType)
                for name, field in self._reader.fields.items()
                if name not in ("GGUF.tensor_count", "GGUF.kv_count")
            }
        except Exception as exc:  # the gguf library refusing a truncated or unknown file
            raise StriateError(
                f"cannot open as gguf: {library_error(exc)}",
                path=path,
                hint="the file may be truncated or corrupt, or newer than the installed "
                "'gguf' package understands (pip install -U gguf)",
            ) from exc
        self._tensors = {t.name: t for t in self._reader.tensors}
        self._infos = {name: self._info(t) for name, t in self._tensors.items()}

    def _info(self, tensor: Any) -> TensorInfo:
        file_shape = tuple(int(n) for n in tensor.shape)  # ne: fastest-varying first
        return TensorInfo(
            name=tensor.name,
            shape=file_shape[::-1],
            dtype=tensor.tensor_type.name,
            nbytes=int(tensor.n_bytes),
            file=self.path,
            file_shape=file_shape,
        )

    def _read(self, name: str) -> npt.NDArray[Any]:
        """Float32 values of shape `info(name).shape`, a fresh array (not a view of the file)."""
        if self._reader is None:
            raise StriateError("read after close", path=self.path, tensor=name)
        tensor = self._tensors[name]
        info = self._infos[name]
        if info.dtype in _PLAIN_TYPES:
            return np.array(tensor.data, dtype=np.float32).reshape(info.shape)
        if self._reader.byte_order == "S":
            # the gguf dequantizers read block fields in host byte order
            raise StriateError(
                f"cannot dequantize {info.dtype} from a file of the other byte order",
                path=self.path,
                tensor=name,
            )
        gguf: Any = require("gguf", "gguf", path=self.path)
        try:
            values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        except NotImplementedError:
            raise StriateError(
                f"cannot dequantize type {info.dtype}: the installed 'gguf' package has no "
                "dequantizer for it",
                path=self.path,
                tensor=name,
                hint="try pip install -U gguf",
            ) from None
        return np.asarray(values, dtype=np.float32).reshape(info.shape)

    def close(self) -> None:
        # Dropping the reader lets the memory map go once no array refers to it.
        self._reader = None
        self._tensors = {}


def _field_value(field: Any, value_type: Any) -> Any:
    """One key-value as a plain Python value; long arrays as a string saying what they hold."""
    kind = field.types[0]
    if kind == value_type.STRING:
        return _text(field.parts[-1])
    if kind != value_type.ARRAY:
        return _scalar(field.parts[-1], kind, value_type)
    count = len(field.data)
    if count == 0:
        return []
    if len(field.types) > 2:  # the gguf reader flattens nested arrays: give the outer length
        outer = int(field.parts[4][0])  # parts: key length, key, type, item type, length, ...
        return f"<array of {outer} arrays>"
    item = field.types[1]
    if count > MAX_ARRAY_ITEMS:
        return f"<array of {count} {_python_name(item, value_type)}>"
    if item == value_type.STRING:
        return [_text(field.parts[i]) for i in field.data]
    return [_scalar(field.parts[i], item, value_type) for i in field.data]


def _text(raw: npt.NDArray[np.uint8]) -> str:
    return bytes(raw).decode("utf-8", errors="replace")


def _scalar(raw: npt.NDArray[Any], kind: Any, value_type: Any) -> Any:
    value = raw[0]
    if kind == value_type.FLOAT32:
        # the shortest decimal that is this float32: 1e-05, not 9.999999747378752e-06
        return float(str(value))
    return value.item()


def _python_name(kind: Any, value_type: Any) -> str:
    if kind == value_type.STRING:
        return "str"
    if kind == value_type.BOOL:
        return "bool"
    if kind in (value_type.FLOAT32, value_type.FLOAT64):
        return "float"
    if kind == value_type.ARRAY:
        return "list"
    return "int"
