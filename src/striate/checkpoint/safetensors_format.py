"""safetensors files: header first, values memory-mapped one tensor at a time.

Values are read through `safetensors`' PyTorch view because numpy has no bfloat16 or float8:
torch widens BF16/F8 to float32 exactly (every bf16/f8 value is a float32 value).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, cast

import numpy.typing as npt

from striate.checkpoint.base import Checkpoint, TensorInfo

# bytes per element of each safetensors dtype
_ITEMSIZE = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}  # fmt: skip


class SafetensorsCheckpoint(Checkpoint):
    """One `.safetensors` file. Folders and sharded indexes are combined by `open_checkpoint`."""

    format = "safetensors"
    suffixes = (".safetensors",)

    @classmethod
    def sniff(cls, path: Path, head: bytes) -> bool:
        # 8-byte little-endian header length, then a JSON object
        if len(head) < 9:
            return False
        (n,) = struct.unpack("<Q", head[:8])
        return 2 <= n < (1 << 32) and head[8:9] == b"{"

    def __init__(self, path: Path) -> None:
        from safetensors import safe_open

        super().__init__(path)
        self._handle = cast("Any", safe_open(str(path), framework="pt", device="cpu"))
        self._names: list[str] = list(self._handle.keys())
        self.metadata = dict(self._handle.metadata() or {})

    def names(self) -> list[str]:
        return list(self._names)

    def info(self, name: str) -> TensorInfo:
        if name not in self._infos:
            if name not in self._names:
                raise self._unknown(name)
            view = self._handle.get_slice(name)
            shape = tuple(int(d) for d in view.get_shape())
            dtype = str(view.get_dtype())
            numel = 1
            for d in shape:
                numel *= d
            self._infos[name] = TensorInfo(
                name, shape, dtype, numel * _ITEMSIZE.get(dtype, 0), self.path
            )
        return self._infos[name]

    def _read(self, name: str) -> npt.NDArray[Any]:
        import torch

        tensor = self._handle.get_tensor(name)
        if tensor.dtype == torch.bool or tensor.is_floating_point():
            tensor = tensor.to(torch.float32)
        values: npt.NDArray[Any] = tensor.numpy()
        return values

    def close(self) -> None:
        self._handle = None
