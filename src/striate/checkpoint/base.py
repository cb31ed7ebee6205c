"""The Checkpoint protocol: a lazy, read-only view of the tensors in one or more files."""

from __future__ import annotations

import json
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from striate.errors import StriateError

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class TensorInfo:
    """What is known about a tensor without reading its values.

    `shape` is in PyTorch order (the order `torch` would show for the same weight); where the
    file stores dimensions in another order (GGUF lists them reversed) `file_shape` gives the
    file's own order. `dtype` is the type as stored (`"BF16"`, `"Q4_1"`, `"float32"`, ...);
    `nbytes` the bytes it takes in the file.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    file: Path
    file_shape: tuple[int, ...] | None = None

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


class Checkpoint(ABC):
    """A lazy view of a checkpoint. Nothing is read until asked; `read` returns float32.

    Use as a context manager to release file handles:

        >>> with striate.open("model.safetensors") as ckpt:       # doctest: +SKIP
        ...     for name in ckpt:
        ...         w = ckpt.read(name)          # numpy float32, dequantized
    """

    #: short format name shown to users ("safetensors", "gguf", ...); set by each reader
    format: str = ""
    #: file suffixes this reader takes when no signature matched (lower case, with the dot)
    suffixes: tuple[str, ...] = ()

    @classmethod
    def sniff(cls, path: Path, head: bytes) -> bool:
        """True when `head`, the file's first bytes, carries this format's signature."""
        return False

    def __init__(self, path: Path) -> None:
        self.path = path
        # format-level metadata (GGUF key-values, safetensors __metadata__, ONNX producer, ...)
        self.metadata: dict[str, Any] = {}
        # entries that are not tensors (optimizer step counts, strings, ...): name -> why skipped
        self.skipped: dict[str, str] = {}
        # readers that index every header at open fill this; the others override names/info
        self._infos: dict[str, TensorInfo] = {}

    def names(self) -> list[str]:
        """Tensor names in file order."""
        return list(self._infos)

    def info(self, name: str) -> TensorInfo:
        """Shape, stored dtype, bytes and source file of one tensor, from headers only."""
        try:
            return self._infos[name]
        except KeyError:
            raise self._unknown(name) from None

    @abstractmethod
    def _read(self, name: str) -> npt.NDArray[Any]:
        """Values of one tensor in PyTorch order, any numeric dtype (float32 preferred)."""

    @property
    def files(self) -> list[Path]:
        """The files this checkpoint reads from."""
        return [self.path]

    @property
    def config(self) -> dict[str, Any] | None:
        """The model's config.json (Hugging Face style) when one lies beside the weights."""
        return _find_config(self.path)

    def read(self, name: str) -> FloatArray:
        """Read one tensor as a float32 numpy array of shape `info(name).shape` (dequantized)."""
        info = self.info(name)  # raises a StriateError for unknown names
        try:
            values = self._read(name)
        except StriateError:
            raise
        except Exception as exc:  # a reader library failing on a broken file
            raise StriateError(
                f"cannot read tensor: {library_error(exc)}", path=info.file, tensor=name
            ) from exc
        out = np.asarray(values)
        if out.dtype != np.float32:
            out = out.astype(np.float32)
        if out.shape != info.shape:
            raise StriateError(
                f"read shape {out.shape} but the header says {info.shape}",
                path=info.file,
                tensor=name,
            )
        return out

    def items(self) -> Iterator[tuple[str, FloatArray]]:
        """Stream `(name, values)` pairs, one tensor in memory at a time."""
        for name in self.names():
            yield name, self.read(name)

    def close(self) -> None:  # noqa: B027 - most readers hold nothing to release
        """Release file handles. Reading after close is an error of the reader."""

    def _unknown(self, name: str) -> StriateError:
        return StriateError(
            "no such tensor", path=self.path, tensor=name, hint="see names() or `striate info`"
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.format} {str(self.path)!r}: {len(self)} tensors>"


def zip_members(path: Path, head: bytes) -> list[str]:
    """Member names of a zip archive, for signature checks; [] when `path` is not a zip."""
    if not head.startswith(b"PK\x03\x04"):
        return []
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except Exception:  # a damaged directory: BadZipFile, UnicodeDecodeError, EOFError, ...
        return []


def library_error(exc: BaseException, limit: int = 240) -> str:
    """`"Type: message"` of a library's exception, on one line and at most `limit` characters.

    Libraries quote the bytes they choke on (zipfile puts a whole local header in its message).
    """
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _find_config(path: Path) -> dict[str, Any] | None:
    folder = path if path.is_dir() else path.parent
    candidate = folder / "config.json"
    if not candidate.is_file():
        return None
    try:
        data = json.loads(candidate.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class MultiFileCheckpoint(Checkpoint):
    """Several checkpoints seen as one (sharded models): names are the union, in shard order."""

    def __init__(self, path: Path, parts: list[Checkpoint]) -> None:
        super().__init__(path)
        self.format = parts[0].format if parts else ""
        self.parts = parts
        self._where: dict[str, Checkpoint] = {}
        for part in parts:
            self.metadata.update(part.metadata)
            self.skipped.update(part.skipped)
            for name in part.names():
                if name in self._where:
                    raise StriateError(
                        f"tensor appears in two shards ({self._where[name].path.name} and "
                        f"{part.path.name})",
                        path=path,
                        tensor=name,
                    )
                self._where[name] = part

    def names(self) -> list[str]:
        return list(self._where)

    def _part(self, name: str) -> Checkpoint:
        try:
            return self._where[name]
        except KeyError:
            raise self._unknown(name) from None

    def info(self, name: str) -> TensorInfo:
        return self._part(name).info(name)

    def _read(self, name: str) -> npt.NDArray[Any]:
        return self._part(name).read(name)

    @property
    def files(self) -> list[Path]:
        return [f for part in self.parts for f in part.files]

    def close(self) -> None:
        for part in self.parts:
            part.close()


def as_mapping(ckpt: Checkpoint) -> Mapping[str, TensorInfo]:
    """All tensor infos by name (headers only)."""
    return {name: ckpt.info(name) for name in ckpt.names()}
