"""Which reader opens which file: signatures first, suffixes second, most specific first.

Adding a format is one module with a `Checkpoint` subclass (class attributes `format`,
`suffixes`; classmethod `sniff(path, head)`) plus one line in `READERS` below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from striate.checkpoint.base import Checkpoint


@dataclass(frozen=True)
class ReaderEntry:
    """One registry line: where the reader class lives. Imported only when needed."""

    target: str  # "module:Class"

    def load(self) -> type[Checkpoint]:
        module, cls = self.target.split(":")
        return cast("type[Checkpoint]", getattr(importlib.import_module(module), cls))


_PKG = "striate.checkpoint"

# Most specific signature first: the zip-based formats look inside the archive to tell apart.
READERS: list[ReaderEntry] = [
    ReaderEntry(f"{_PKG}.safetensors_format:SafetensorsCheckpoint"),
    ReaderEntry(f"{_PKG}.gguf_format:GGUFCheckpoint"),
    ReaderEntry(f"{_PKG}.numpy_format:NpzCheckpoint"),
    ReaderEntry(f"{_PKG}.keras_format:KerasCheckpoint"),
    ReaderEntry(f"{_PKG}.torch_format:TorchCheckpoint"),
    ReaderEntry(f"{_PKG}.numpy_format:NpyCheckpoint"),
    ReaderEntry(f"{_PKG}.hdf5_format:HDF5Checkpoint"),
    ReaderEntry(f"{_PKG}.onnx_format:ONNXCheckpoint"),
    ReaderEntry(f"{_PKG}.tfjs_format:TFJSCheckpoint"),
]

HEAD_BYTES = 64


def reader_classes() -> list[type[Checkpoint]]:
    return [entry.load() for entry in READERS]


def read_head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(HEAD_BYTES)
