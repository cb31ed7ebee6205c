"""Open any checkpoint as a lazy, read-only `Checkpoint`."""

from __future__ import annotations

from striate.checkpoint.base import Checkpoint, MultiFileCheckpoint, TensorInfo
from striate.checkpoint.opening import open_checkpoint

__all__ = ["Checkpoint", "MultiFileCheckpoint", "TensorInfo", "open_checkpoint"]
