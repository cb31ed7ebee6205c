"""striate: a microscope for neural-network weights.

>>> import striate
>>> with striate.open("sample:minilm") as ckpt:            # doctest: +SKIP
...     anat = striate.anatomy_of(ckpt)
...     w = ckpt.read("encoder.layer.0.intermediate.dense.weight")   # float32 (1536, 384)
>>> run = striate.diff("sample:minilm", "minilm-Q4_0.gguf", "runs/diff")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from striate._version import __version__

if TYPE_CHECKING:  # imported on first use (below): `striate spectra` starts without the rest
    from striate.anatomy import Anatomy, FFNTriple, TensorAnatomy, anatomy_of
    from striate.checkpoint import Checkpoint, TensorInfo
    from striate.checkpoint import open_checkpoint as open
    from striate.diff import DiffRun, diff
    from striate.display import show
    from striate.errors import StriateError
    from striate.run import Run
    from striate.scan import ScanConfig, scan

# public name -> (module, attribute)
_LAZY = {
    "Anatomy": ("striate.anatomy", "Anatomy"),
    "FFNTriple": ("striate.anatomy", "FFNTriple"),
    "TensorAnatomy": ("striate.anatomy", "TensorAnatomy"),
    "anatomy_of": ("striate.anatomy", "anatomy_of"),
    "Checkpoint": ("striate.checkpoint", "Checkpoint"),
    "TensorInfo": ("striate.checkpoint", "TensorInfo"),
    "open": ("striate.checkpoint", "open_checkpoint"),
    "DiffRun": ("striate.diff", "DiffRun"),
    "diff": ("striate.diff", "diff"),
    "show": ("striate.display", "show"),
    "StriateError": ("striate.errors", "StriateError"),
    "Run": ("striate.run", "Run"),
    "ScanConfig": ("striate.scan", "ScanConfig"),
    "scan": ("striate.scan", "scan"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'striate' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later uses are plain lookups
    return value


__all__ = [
    "Anatomy",
    "Checkpoint",
    "DiffRun",
    "FFNTriple",
    "Run",
    "ScanConfig",
    "StriateError",
    "TensorAnatomy",
    "TensorInfo",
    "__version__",
    "anatomy_of",
    "diff",
    "open",
    "scan",
    "show",
]
