"""safetensors files: the header (checked by the `safetensors` library), then one tensor at a time.

A tensor's bytes are read with `pread` at the offsets the header gives, into memory of this
process that is freed with the tensor: a memory-mapped read would keep every page of the file
it touched resident in this process (RSS grew with the model: 378 MB of file pages after reading
a 256 MB model), and a scan must stay bounded by its largest tensor on models bigger than RAM.
BF16 and F8 values are widened through torch because numpy has neither type; the widening to
float32 is exact (every bf16/f8 value is a float32 value).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from striate.checkpoint.base import Checkpoint, TensorInfo

# bytes per element of each safetensors dtype
_ITEMSIZE = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}  # fmt: skip
# numpy types of the safetensors dtypes numpy has (little-endian, as stored)
_NUMPY = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
          "I16": "<i2", "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1",
          "BOOL": "?"}  # fmt: skip


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
        # numpy: no torch import (seconds) to list and slice; torch only for float8 and newer types
        self._handle = cast("Any", safe_open(str(path), framework="numpy"))
        self._names: list[str] = list(self._handle.keys())
        self.metadata = dict(self._handle.metadata() or {})
        with path.open("rb") as fh:  # the header safe_open has just checked: the offsets
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        self._start = 8 + n
        self._spans = {k: v for k, v in header.items() if k != "__metadata__"}

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
        span = self._spans[name]
        begin, end = (int(x) for x in span["data_offsets"])
        shape = tuple(int(d) for d in span["shape"])
        data = _pread(self.path, self._start + begin, end - begin)
        kind = span["dtype"]
        if kind in _NUMPY:
            values = np.frombuffer(data, dtype=_NUMPY[kind]).reshape(shape)
            if values.dtype.kind in "fb":
                return values.astype(np.float32)  # a copy: the bytes read are let go
            return values.astype(values.dtype.newbyteorder("="))
        if kind == "BF16":  # the top half of a float32: widened exactly by a shift
            bits = np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16
            return bits.view(np.float32).reshape(shape)
        import torch
        from safetensors import safe_open

        kinds = {"F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2}
        if kind not in kinds:  # a type added to safetensors since: its own reader
            tensor = cast("Any", safe_open(str(self.path), framework="pt")).get_tensor(name)
            if tensor.is_floating_point():
                tensor = tensor.to(torch.float32)
            return cast("npt.NDArray[Any]", tensor.numpy())
        raw = (
            torch.frombuffer(data, dtype=kinds[kind]) if data else torch.empty(0, dtype=kinds[kind])
        )
        return raw.reshape(shape).to(torch.float32).numpy()

    def close(self) -> None:
        self._handle = None


def _pread(path: Path, offset: int, size: int) -> bytearray:
    """`size` bytes of `path` from `offset`, read without memory-mapping the file."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    fd = os.open(path, os.O_RDONLY)
    try:
        got = 0
        while got < size:
            n = os.preadv(fd, [view[got:]], offset + got)
            if n == 0:
                raise OSError(f"{path}: file ended {size - got} bytes early")
            got += n
    finally:
        os.close(fd)
    return buffer
