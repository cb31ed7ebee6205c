"""PyTorch `.pt/.pth/.bin/.ckpt`: zip and legacy formats, never executing pickled code.

`torch.load(weights_only=True)` unpickles with an allow-list of tensor types and plain
containers, so a malicious pickle is refused instead of run. Zip-format files are memory-mapped
(`mmap=True`): loading reads the pickle of names and shapes, values stay on disk until `read`.
Nested containers (`{"model": ..., "optimizer": ...}`, Lightning's `state_dict`) are flattened
to dotted names; a single wrapper key holding the weights (`state_dict`, `model`, ...) is dropped
so names read as the model's own. Non-tensor entries are listed in `skipped`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy.typing as npt

from striate.checkpoint.base import Checkpoint, TensorInfo, library_error, zip_members
from striate.checkpoint.pickle_scan import check_legacy_sizes
from striate.errors import StriateError

# pickle protocol 2 + torch's legacy magic number, as written by torch.save before the zip format
_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."
_WRAPPERS = ("state_dict", "model_state_dict", "model", "module", "model_state", "net")


class TorchCheckpoint(Checkpoint):
    """A file written by `torch.save`, loaded with `weights_only=True` and memory-mapped."""

    format = "pytorch"
    suffixes = (".pt", ".pth", ".bin", ".ckpt")

    @classmethod
    def sniff(cls, path: Path, head: bytes) -> bool:
        if head.startswith(_LEGACY_MAGIC):
            return True
        return any(n == "data.pkl" or n.endswith("/data.pkl") for n in zip_members(path, head))

    def __init__(self, path: Path) -> None:
        import torch

        super().__init__(path)
        obj = _load(path)
        self._tensors: dict[str, torch.Tensor] = {}
        for name, value in _flatten(_unwrap(obj)):
            if isinstance(value, torch.Tensor):
                self._tensors[name] = value
            else:
                self.skipped[name] = f"not a tensor ({type(value).__name__})"

    def names(self) -> list[str]:
        return list(self._tensors)

    def info(self, name: str) -> TensorInfo:
        try:
            t = self._tensors[name]
        except KeyError:
            raise self._unknown(name) from None
        dtype = str(t.dtype).removeprefix("torch.")
        return TensorInfo(name, tuple(t.shape), dtype, t.numel() * t.element_size(), self.path)

    def _read(self, name: str) -> npt.NDArray[Any]:
        import torch

        t = self._tensors[name]
        if t.is_quantized:
            t = t.dequantize()
        if t.layout != torch.strided:
            t = t.to_dense()
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            t = t.to(torch.float32)
        return t.detach().numpy()

    def close(self) -> None:
        self._tensors = {}


def _load(path: Path) -> Any:
    import pickle
    import tarfile

    import torch

    with path.open("rb") as fh:
        zipped = fh.read(4) == b"PK\x03\x04"
    try:
        if zipped:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        # legacy files cannot be memory-mapped: they are read whole, the pickled ones once
        # their pickles are known to fit the file (torch < 0.4 wrote tar archives)
        if not tarfile.is_tarfile(path):
            check_legacy_sizes(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise StriateError(
                f"damaged pickle: {library_error(exc)}",
                path=path,
                hint="the file may be truncated or corrupt",
            ) from None
        # torch's message says to retry with weights_only=False; we keep only the reason
        lines = [ln.strip() for ln in str(exc).splitlines()]
        reason = next((ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln), "refused")
        raise StriateError(
            f"refused to unpickle: it holds objects beyond plain tensors and containers "
            f"({reason.rstrip('.')})",
            path=path,
            hint="striate never runs code from a checkpoint; re-save the state_dict alone or "
            "convert it to safetensors",
        ) from None


def _unwrap(obj: Any) -> Any:
    """`{"model": state_dict, "optimizer": ...}` -> state_dict names stay the model's own."""
    if isinstance(obj, Mapping):
        for key in _WRAPPERS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and _holds_tensors(inner):
                rest = {k: v for k, v in obj.items() if k != key}
                return {**inner, **{k: v for k, v in rest.items() if k not in inner}}
    return obj


def _holds_tensors(obj: Mapping[Any, Any]) -> bool:
    import torch

    return any(isinstance(v, torch.Tensor) for v in obj.values())


def _flatten(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from _flatten(value, f"{prefix}{key}.")
    elif isinstance(obj, (list, tuple)) and prefix:
        for i, value in enumerate(obj):
            yield from _flatten(value, f"{prefix}{i}.")
    else:
        yield prefix.removesuffix(".") or "<root>", obj
