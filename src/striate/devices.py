"""Which device the linear algebra runs on: `"auto"`, `"cpu"`, or a torch device.

Asking torch costs ~2 s of import; on Linux without `/dev/nvidia*` "auto" is "cpu" without it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from striate.errors import StriateError

__all__ = ["resolve_device"]


def resolve_device(device: str) -> str:
    """`"auto"` becomes `"cuda"` when torch sees a GPU, else `"cpu"`; a named torch device is
    checked to exist. One-line StriateError otherwise."""
    if device == "cpu" or (device == "auto" and _certainly_no_gpu()):
        return "cpu"
    try:
        import torch
    except ImportError:
        if device == "auto":
            return "cpu"
        raise StriateError(
            f"spectrum.device {device!r} needs torch, which is not installed"
        ) from None
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError as exc:
        raise StriateError(
            f"unknown device {device!r}: {exc}", hint='use "auto", "cpu", "cuda" or "cuda:N"'
        ) from None
    available: dict[str, Callable[[], bool]] = {
        "cuda": torch.cuda.is_available,
        "mps": torch.backends.mps.is_available,
    }
    if kind in available and not available[kind]():
        raise StriateError(
            f"device {device!r} asked for, but torch sees no {kind.upper()} device",
            hint="use --device cpu or auto",
        )
    return device


def _certainly_no_gpu() -> bool:
    """Linux without /dev/nvidia*: "auto" is "cpu" without importing torch (~2 s) to ask it."""
    return (
        "torch" not in sys.modules
        and sys.platform.startswith("linux")
        and not any(Path("/dev").glob("nvidia[0-9]*"))
    )
