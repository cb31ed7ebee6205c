"""What `striate info` shows: a checkpoint's tensors with their anatomy, from headers only."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from striate.anatomy import anatomy_of
from striate.checkpoint import Checkpoint


@dataclass(frozen=True)
class TensorRow:
    name: str
    shape: list[int]
    dtype: str
    role: str
    layer: int | None
    residual_axis: int | None


@dataclass(frozen=True)
class ModelSummary:
    """A checkpoint at a glance. `n_params` counts every tensor's elements (buffers included)."""

    path: str
    format: str
    family: str
    files: list[str]
    n_params: int
    bytes: int
    n_layers: int | None
    hidden_size: int | None
    n_ffn: int
    skipped: dict[str, str]
    tensors: list[TensorRow]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(ckpt: Checkpoint) -> ModelSummary:
    """Summarize `ckpt` without reading any tensor values."""
    anat = anatomy_of(ckpt)
    rows: list[TensorRow] = []
    n_params = n_bytes = 0
    for name in ckpt.names():
        info = ckpt.info(name)
        part = anat[name]
        n_params += info.numel
        n_bytes += info.nbytes
        rows.append(
            TensorRow(name, list(info.shape), info.dtype, part.role, part.layer, part.residual_axis)
        )
    return ModelSummary(
        path=str(ckpt.path),
        format=ckpt.format,
        family=anat.family,
        files=[str(f) for f in ckpt.files],
        n_params=n_params,
        bytes=n_bytes,
        n_layers=anat.n_layers,
        hidden_size=anat.hidden_size,
        n_ffn=len(anat.ffn),
        skipped=dict(ckpt.skipped),
        tensors=rows,
    )
