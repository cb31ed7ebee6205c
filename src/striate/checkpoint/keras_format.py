"""Keras 3 `.keras` archives: a zip holding `model.weights.h5`, `config.json`, `metadata.json`.

The weights are the HDF5 member, walked exactly as `HDF5Checkpoint` walks an `.h5` file (names
like `layers/dense/vars/0`, shapes as stored). `config.json` becomes `metadata["model_config"]`
and the keys of `metadata.json` (`keras_version`, `date_saved`) join `metadata`.

Keras writes the archive uncompressed (ZIP_STORED): the member's bytes then lie as-is inside
the zip, and h5py reads them in place through a file-like window, nothing extracted. A
compressed member is copied once into an anonymous temporary file instead, because HDF5 reads
by random access and seeking backwards in a deflate stream restarts decompression from the
start of the member at every seek. The temporary file is removed on `close()`.
"""

from __future__ import annotations

import io
import json
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
        self._member: io.RawIOBase | IO[bytes] | None = None
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
            if info.compress_type == zipfile.ZIP_STORED:
                self._member = _StoredMember(self.path, info)
            else:
                # held open until close(); the file has no name and vanishes with it
                self._member = tempfile.TemporaryFile(prefix="striate-", suffix=".h5")  # noqa: SIM115
                with zf.open(info) as src:
                    shutil.copyfileobj(src, self._member, 1 << 20)
                self._member.seek(0)
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


class _StoredMember(io.RawIOBase):
    """Read-only, seekable view of an uncompressed zip member's bytes inside the archive."""

    def __init__(self, path: Path, info: zipfile.ZipInfo) -> None:
        super().__init__()
        self._fh = path.open("rb")
        self._fh.seek(info.header_offset)
        signature, name_length, extra_length = _LOCAL_HEADER.unpack(
            self._fh.read(_LOCAL_HEADER.size)
        )
        if signature != b"PK\x03\x04":
            self._fh.close()
            raise StriateError(f"bad zip local header for {info.filename}", path=path)
        self._start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
        self._size = info.file_size
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
        self._fh.seek(self._start + self._pos)
        got = self._fh.readinto(view[:n])
        self._pos += got
        return got

    def close(self) -> None:
        self._fh.close()
        super().close()


def _json_member(zf: zipfile.ZipFile, member: str, path: Path) -> Any:
    try:
        return json.loads(zf.read(member).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise StriateError(f"{member} in the archive is not JSON: {exc}", path=path) from exc
