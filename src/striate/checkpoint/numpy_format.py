"""NumPy `.npy` (memory-mapped) and `.npz` (one member read at a time), pickles refused."""

from __future__ import annotations

import io
import math
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from striate.checkpoint.base import Checkpoint, TensorInfo, zip_members
from striate.errors import StriateError

_NPY_MAGIC = b"\x93NUMPY"
# the header length field of each .npy format version
_LENGTH_FIELD = {
    (1, 0): struct.Struct("<H"),
    (2, 0): struct.Struct("<I"),
    (3, 0): struct.Struct("<I"),
}
_MAX_HEADER = 1 << 16  # numpy itself refuses headers past 10,000 bytes


def _array_header(
    fh: Any, path: Path, name: str, stored: int
) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Shape and dtype from a .npy header without reading the values.

    `stored` is the byte count of the whole .npy (file or zip member): the header's length and
    the shape it gives are checked against it before numpy allocates anything from them.
    """
    version = np.lib.format.read_magic(fh)
    if version not in _LENGTH_FIELD:
        raise StriateError(f"unknown .npy format version {version}", path=path, tensor=name)
    field = _LENGTH_FIELD[version]
    raw = fh.read(field.size)
    length = field.unpack(raw)[0] if len(raw) == field.size else -1
    header = fh.read(length) if 0 <= length <= _MAX_HEADER else b""
    if len(header) != length:
        raise StriateError(
            f"the .npy header is cut short or its length ({length}) is a lie",
            path=path,
            tensor=name,
        )
    # numpy parses its own header again from these bytes alone
    start = io.BytesIO(np.lib.format.magic(*version) + raw + header)
    np.lib.format.read_magic(start)
    read_header = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, _fortran_order, dtype = read_header(start)
    if dtype.hasobject:
        raise StriateError("holds Python objects (a pickle); refused", path=path, tensor=name)
    shape = tuple(int(d) for d in shape)
    values = stored - len(start.getvalue())
    if any(d < 0 for d in shape) or math.prod(shape) * dtype.itemsize > values:
        raise StriateError(
            f"shape {shape} of {dtype.name} does not fit the {values} bytes after the header",
            path=path,
            tensor=name,
            hint="the file is truncated or corrupt",
        )
    return shape, dtype


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
            self._shape, self._dtype = _array_header(fh, path, self._name, path.stat().st_size)

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
                shape, dtype = _array_header(fh, path, name, member.file_size)
            self._infos[name] = TensorInfo(name, shape, dtype.name, member.compress_size, path)

    def _read(self, name: str) -> npt.NDArray[Any]:
        with self._zip.open(name + ".npy") as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)

    def close(self) -> None:
        self._zip.close()
