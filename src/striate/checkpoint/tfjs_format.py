"""TensorFlow.js weights: a `*weights_manifest.json` or a `model.json` with `weightsManifest`.

A manifest is a list of groups `{"paths": [shard files], "weights": [specs]}`; each group's
tensors lie one after another in its shard files read as one concatenated stream. A spec may
carry `quantization`: `{"dtype": "uint8"|"uint16", "min", "scale"}` (value = q * scale + min)
or `{"dtype": "float16"}`. Give the manifest itself: `.json` files in a folder are not opened.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from striate.checkpoint.base import Checkpoint, TensorInfo
from striate.errors import StriateError

# stored element type -> numpy type (TF.js writes little-endian)
_DTYPES = {
    "float32": "<f4",
    "int32": "<i4",
    "bool": "u1",
    "uint8": "u1",
    "uint16": "<u2",
    "float16": "<f2",
}
# a model.json puts its (possibly large) modelTopology before the manifest: look at both ends
_SNIFF_BYTES = 256 * 1024
_MANIFEST_KEY = re.compile(rb'"weightsManifest"\s*:\s*\[')
_GROUP_START = re.compile(rb"^\s*\[\s*\{")


@dataclass(frozen=True)
class _Spec:
    files: tuple[Path, ...]  # the group's shard files, in stream order
    offset: int  # first byte in the group's concatenated stream
    nbytes: int
    stored: str  # element type in the file
    dtype: str  # type the tensor has in TF.js
    scale: float | None
    minimum: float | None


class TFJSCheckpoint(Checkpoint):
    """A TF.js weights manifest; shapes keep TF order (conv kernels are [kh, kw, in, out])."""

    format = "tfjs"
    suffixes = (".json",)

    @classmethod
    def sniff(cls, path: Path, head: bytes) -> bool:
        if path.suffix.lower() != ".json":
            return False
        with path.open("rb") as fh:
            start = fh.read(_SNIFF_BYTES)
            size = fh.seek(0, 2)
            fh.seek(max(size - _SNIFF_BYTES, len(start)))
            end = fh.read()
        if _GROUP_START.match(start):
            return b'"paths"' in start and b'"weights"' in start
        return start.lstrip().startswith(b"{") and bool(
            _MANIFEST_KEY.search(start) or _MANIFEST_KEY.search(start[-64:] + end)
        )

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StriateError(f"unreadable JSON: {exc}", path=path) from exc
        if isinstance(data, dict):
            manifest = data.get("weightsManifest")
            self.metadata = {k: v for k, v in data.items() if isinstance(v, str)}
        else:
            manifest = data
        if not isinstance(manifest, list) or not all(isinstance(g, dict) for g in manifest):
            raise StriateError("no TF.js weights manifest (a list of groups) in it", path=path)
        self._specs: dict[str, _Spec] = {}
        for group in manifest:
            self._add_group(group)

    def _add_group(self, group: Any) -> None:
        try:
            files = tuple(self.path.parent / str(p) for p in group["paths"])
            weights = list(group["weights"])
        except (KeyError, TypeError) as exc:
            raise StriateError(f"malformed manifest group: {exc!r}", path=self.path) from exc
        missing = [f.name for f in files if not f.is_file()]
        if missing and weights:
            raise StriateError(
                f"missing shard file(s) {', '.join(missing)} beside the manifest",
                path=self.path,
                tensor=str(weights[0].get("name")),
                hint="download every file the manifest's `paths` lists",
            )
        offset = 0
        for w in weights:
            name = str(w["name"])
            shape = tuple(int(d) for d in w["shape"])
            quant = w.get("quantization") or {}
            stored = str(quant.get("dtype", w["dtype"]))
            if stored not in _DTYPES or str(w["dtype"]) not in _DTYPES:
                raise StriateError(
                    f"unsupported dtype {w['dtype']!r} (stored as {stored!r}); the offsets of "
                    "the tensors after it are unknown",
                    path=self.path,
                    tensor=name,
                    hint="striate reads float32, int32 and bool, quantized to uint8/uint16/float16",
                )
            if name in self._specs:
                raise StriateError("tensor appears twice", path=self.path, tensor=name)
            numel = int(np.prod(shape, dtype=np.int64))
            nbytes = numel * np.dtype(_DTYPES[stored]).itemsize
            scale, minimum = quant.get("scale"), quant.get("min")
            self._specs[name] = _Spec(
                files,
                offset,
                nbytes,
                stored,
                str(w["dtype"]),
                None if scale is None else float(scale),
                None if minimum is None else float(minimum),
            )
            first = self._first_file(files, offset)
            self._infos[name] = TensorInfo(name, shape, stored, nbytes, first)
            offset += nbytes

    @staticmethod
    def _first_file(files: tuple[Path, ...], offset: int) -> Path:
        for f in files:
            size = f.stat().st_size
            if offset < size:
                return f
            offset -= size
        return files[-1]

    @property
    def files(self) -> list[Path]:
        return [self.path, *dict.fromkeys(f for s in self._specs.values() for f in s.files)]

    def _read(self, name: str) -> npt.NDArray[Any]:
        spec = self._specs[name]
        raw = bytearray()
        start, end = spec.offset, spec.offset + spec.nbytes
        pos = 0  # where the current file starts in the group's stream
        for f in spec.files:
            size = f.stat().st_size
            if start < pos + size and end > pos:
                with f.open("rb") as fh:
                    fh.seek(max(start - pos, 0))
                    raw += fh.read(min(end, pos + size) - max(start, pos))
            pos += size
        if len(raw) != spec.nbytes:
            raise StriateError(
                f"bytes {start}..{end} of the shard stream but the shard files hold {pos}",
                path=spec.files[-1],
                tensor=name,
                hint="a shard file is truncated or the manifest belongs to other files",
            )
        q = np.frombuffer(bytes(raw), dtype=_DTYPES[spec.stored])
        if spec.scale is not None and spec.minimum is not None:
            # TF.js dequantizes in float64 (JS numbers) and stores float32
            values = q.astype(np.float64) * spec.scale + spec.minimum
            if spec.dtype == "int32":
                values = np.floor(values + 0.5)  # JS Math.round
            return values.astype(np.float32).reshape(self._infos[name].shape)
        return q.astype(np.float32).reshape(self._infos[name].shape)
