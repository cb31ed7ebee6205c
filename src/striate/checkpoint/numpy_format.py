"""NumPy `.npy` (memory-mapped) and `.npz` (one member read at a time), pickles refused."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from striate.checkpoint.base import Checkpoint, TensorInfo, zip_members
from striate.errors import StriateError

_NPY_MAGIC = b"\x93NUMPY"


def _array_header(fh: Any, path: Path, name: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Shape and dtype from a .npy header without reading the values."""
    version = np.lib.format.read_magic(fh)
    read_header = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, _fortran_order, dtype = read_header(fh)
    if dtype.hasobject:
        raise StriateError("holds Python objects (a pickle); refused", path=path, tensor=name)
    return tuple(int(d) for d in shape), dtype


class NpyCheckpoint(Checkpoint):
    """One `.npy` array; its tensor is named after the file stem."""

    format = "numpy"
    suffixes = (".npy",)

    @classmethod
    def sniff(cls, path: Path, head: bytes) -> bool:
        return head.startswith(_NPY_MAGIC)

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._name = path.stem
        with path.open("rb") as fh:
            self._shape, self._dtype = _array_header(fh, path, self._name)

    def names(self) -> list[str]:
        return [self._name]

    def info(self, name: str) -> TensorInfo:
        if name != self._name:
            raise self._unknown(name)
        nbytes = int(np.prod(self._shape, dtype=np.int64)) * self._dtype.itemsize
        return TensorInfo(name, self._shape, self._dtype.name, nbytes, self.path)

    def _read(self, name: str) -> npt.NDArray[Any]:
        values: npt.NDArray[Any] = np.load(self.path, mmap_mode="r", allow_pickle=False)
        return values


class NpzCheckpoint(Checkpoint):
    """A `.npz` archive (`np.savez`/`savez_compressed`); tensor names are the member names."""

    format = "npz"
    suffixes = (".npz",)

    @classmethod
    def sniff(cls, path: Path, head: bytes) -> bool:
        members = zip_members(path, head)
        return bool(members) and all(m.endswith(".npy") for m in members)

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._zip = zipfile.ZipFile(path)
        for member in self._zip.infolist():
            if not member.filename.endswith(".npy"):
                self.skipped[member.filename] = "not a .npy member"
                continue
            name = member.filename.removesuffix(".npy")
            with self._zip.open(member) as fh:
                shape, dtype = _array_header(fh, path, name)
            self._infos[name] = TensorInfo(name, shape, dtype.name, member.compress_size, path)

    def _read(self, name: str) -> npt.NDArray[Any]:
        with self._zip.open(name + ".npy") as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)

    def close(self) -> None:
        self._zip.close()
