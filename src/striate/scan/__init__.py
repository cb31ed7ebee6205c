"""The scan pipeline: a checkpoint in, a run directory out.

config.py    ScanConfig: each analysis's settings (`--set section.field=value`)
tensor.py    analyse one tensor -> TensorResult (row, findings, status, spectrum); the
             failure policy and the loop the model-level passes share (`read_each`)
pipeline.py  `scan()`: read, cache, analyse on workers, collect in order, write the run
heap.py      giving freed memory back to the system during a long scan
cache.py     per-tensor results in `.striate-cache/` (resume, instant rescans)
workers.py   analysis threads and drawing processes (`--jobs`), stage timing
images.py    a tensor's pictures, and their file names
spectra.py   the singular-value table and depth figure
ffn.py       FFN neuron geometry as tensors stream past; `striate ffn`
banding.py   conv-layer banding pictures; `striate banding`
many.py      several models, each one task of an executor
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from striate._lazy import callable_package, exports

if TYPE_CHECKING:  # imported on first use (below): a command loads only the modules it runs
    from striate.scan.config import ImagesConfig, ScanConfig
    from striate.scan.many import scan_many
    from striate.scan.pipeline import ScanInterrupted, scan
    from striate.scan.tensor import TensorResult, analyse_tensor

__getattr__ = exports(
    __name__,
    {
        "ImagesConfig": "striate.scan.config:ImagesConfig",
        "ScanConfig": "striate.scan.config:ScanConfig",
        "scan_many": "striate.scan.many:scan_many",
        "ScanInterrupted": "striate.scan.pipeline:ScanInterrupted",
        "scan": "striate.scan.pipeline:scan",
        "TensorResult": "striate.scan.tensor:TensorResult",
        "analyse_tensor": "striate.scan.tensor:analyse_tensor",
    },
)
callable_package(__name__)  # striate.scan(model) is striate.scan.pipeline.scan(model)

__all__ = [
    "ImagesConfig",
    "ScanConfig",
    "ScanInterrupted",
    "TensorResult",
    "analyse_tensor",
    "scan",
    "scan_many",
]
