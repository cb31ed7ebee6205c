"""striate: a microscope for neural-network weights.

>>> import striate
>>> with striate.open("sample:minilm") as ckpt:            # doctest: +SKIP
...     anat = striate.anatomy_of(ckpt)
...     w = ckpt.read("encoder.layer.0.intermediate.dense.weight")   # float32 (1536, 384)
>>> run = striate.diff("sample:minilm", "minilm-Q4_0.gguf", "runs/diff")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from striate._lazy import exports
from striate._version import __version__

if TYPE_CHECKING:  # imported on first use (below): a command loads only the modules it runs
    from striate.anatomy import Anatomy, FFNTriple, TensorAnatomy, anatomy_of
    from striate.checkpoint import Checkpoint, TensorInfo
    from striate.checkpoint import open_checkpoint as open
    from striate.diff import DiffRun, diff
    from striate.display import show
    from striate.errors import StriateError
    from striate.run import Run
    from striate.scan.config import ScanConfig
    from striate.scan.pipeline import scan

__getattr__ = exports(
    __name__,
    {
        "Anatomy": "striate.anatomy:Anatomy",
        "FFNTriple": "striate.anatomy:FFNTriple",
        "TensorAnatomy": "striate.anatomy:TensorAnatomy",
        "anatomy_of": "striate.anatomy:anatomy_of",
        "Checkpoint": "striate.checkpoint:Checkpoint",
        "TensorInfo": "striate.checkpoint:TensorInfo",
        "open": "striate.checkpoint:open_checkpoint",
        "DiffRun": "striate.diff.run:DiffRun",
        "diff": "striate.diff",
        "show": "striate.display:show",
        "StriateError": "striate.errors:StriateError",
        "Run": "striate.run:Run",
        "ScanConfig": "striate.scan.config:ScanConfig",
        "scan": "striate.scan",
    },
)

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
