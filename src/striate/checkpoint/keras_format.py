"""Keras 3 `.keras` archives: a zip holding `model.weights.h5`, `config.json`, `metadata.json`.

The weights are the HDF5 member, walked exactly as `HDF5Checkpoint` walks an `.h5` file (names
like `layers/dense/vars/0`, shapes as stored). `config.json` becomes `metadata["model_config"]`
and the keys of `metadata.json` (`keras_version`, `date_saved`) join `metadata`.

Keras writes the archive uncompressed (ZIP_STORED): the member's bytes then lie as-is inside
the zip, and h5py reads them in place through a file-like window, nothing extracted. A
compressed member is copied once into an anonymous temporary file instead, because HDF5 reads
by random access and seeking backwards in a deflate stream restarts decompression from the
start of the member at every seek. The temporary file is removed on `close()`.

Both are read through `_Window`, which reads with `pread` and so never moves a file offset: the
forked child that walks the metadata first (see `hdf5_format`) shares this process's file
descriptors, and buffered reads relying on a shared offset would read the wrong bytes.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any

from striate.checkpoint.base import zip_members
from striate.checkpoint.hdf5_format import HDF5Checkpoint
from striate.errors import StriateError

WEIGHTS_MEMBER = "model.weights.h5"
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., file name length, extra length


class KerasCheckpoint(HDF5Checkpoint):
    """One `.keras` archive (Keras 3 `model.save`).

    >>> with striate.open("model.keras") as ckpt:                    # doctest: +SKIP
    ...     ckpt.info("layers/conv2d/vars/0").shape                  # (kh, kw, in, out)
    (3, 3, 3, 32)
    """

    format = "keras"
    suffixes = (".keras",)

    @classmethod
    def sniff(cls, path: Path, head: bytes) -> bool:
        return WEIGHTS_MEMBER in zip_members(path, head)

    def __init__(self, path: Path) -> None:
        self._member: _Window | None = None
        super().__init__(path)  # calls _open_h5 below
        with zipfile.ZipFile(path) as zf:
            members = set(zf.namelist())
            if "config.json" in members:
                self.metadata["model_config"] = _json_member(zf, "config.json", path)
            if "metadata.json" in members:
                extra = _json_member(zf, "metadata.json", path)
                if isinstance(extra, dict):
                    self.metadata.update(extra)

    def _open_h5(self) -> Any:
        with zipfile.ZipFile(self.path) as zf:
            try:
                info = zf.getinfo(WEIGHTS_MEMBER)
            except KeyError:
                raise StriateError(
                    f"no {WEIGHTS_MEMBER} in this zip (members: {', '.join(zf.namelist()[:5])})",
                    path=self.path,
                    hint="a .keras file is written by Keras 3 `model.save`",
                ) from None
            if info.flag_bits & 0x1:
                raise StriateError(f"{WEIGHTS_MEMBER} is encrypted", path=self.path)
            archive = self.path.open("rb")
            if info.compress_type == zipfile.ZIP_STORED:
                self._member = _Window(
                    archive, _member_start(archive, info, self.path), info.file_size
                )
            else:
                archive.close()
                # held open until close(); the file has no name and vanishes with it
                copy = tempfile.TemporaryFile(prefix="striate-", suffix=".h5")  # noqa: SIM115
                with zf.open(info) as src:
                    shutil.copyfileobj(src, copy, 1 << 20)
                self._member = _Window(copy, 0, info.file_size)
        try:
            return self._h5py.File(self._member, "r")
        except Exception:
            self._member.close()
            raise

    def close(self) -> None:
        super().close()
        if self._member is not None:
            self._member.close()
            self._member = None


def _member_start(archive: IO[bytes], info: zipfile.ZipInfo, path: Path) -> int:
    """Where an uncompressed member's bytes begin inside the archive."""
    archive.seek(info.header_offset)
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(archive.read(_LOCAL_HEADER.size))
    if signature != b"PK\x03\x04":
        archive.close()
        raise StriateError(f"bad zip local header for {info.filename}", path=path)
    return info.header_offset + _LOCAL_HEADER.size + int(name_length) + int(extra_length)


class _Window(io.RawIOBase):
    """Read-only, seekable view of `size` bytes of an open file from `start`, read with
    `pread` (no shared file offset is used or moved). Closing it closes the file."""

    def __init__(self, fh: IO[bytes], start: int, size: int) -> None:
        super().__init__()
        self._fh = fh
        self._start = start
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self._size - self._pos))
        data = _pread(self._fh, n, self._start + self._pos)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        self._fh.close()
        super().close()


def _pread(fh: IO[bytes], n: int, at: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fh.fileno(), n, at)
    fh.seek(at)  # Windows: no fork either, so no offset is shared
    return fh.read(n)


def _json_member(zf: zipfile.ZipFile, member: str, path: Path) -> Any:
    try:
        return json.loads(zf.read(member).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise StriateError(f"{member} in the archive is not JSON: {exc}", path=path) from exc
