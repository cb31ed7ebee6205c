"""striate: a microscope for neural-network weights.

>>> import striate
>>> with striate.open("sample:minilm") as ckpt:            # doctest: +SKIP
...     anat = striate.anatomy_of(ckpt)
...     w = ckpt.read("encoder.layer.0.intermediate.dense.weight")   # float32 (1536, 384)
>>> run = striate.diff("sample:minilm", "minilm-Q4_0.gguf", "runs/diff")  # doctest: +SKIP
"""

from __future__ import annotations

from striate._version import __version__
from striate.anatomy import Anatomy, FFNTriple, TensorAnatomy, anatomy_of
from striate.checkpoint import Checkpoint, TensorInfo
from striate.checkpoint import open_checkpoint as open
from striate.diff import DiffRun, diff
from striate.display import show
from striate.errors import StriateError
from striate.run import Run
from striate.scan import ScanConfig, scan

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
