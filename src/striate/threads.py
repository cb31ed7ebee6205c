"""Thread pools for the small models that `striate lab` and `striate experiment` train.

Their matrices are small (hundreds of rows), so a step is a few short kernels: torch's
intra-op thread pool adds synchronisation without speed, and on cores shared with other work
its spinning threads make training up to 10x slower (measured: the quick superposition lab
takes 8 s on one thread and 85 s on torch's default two while another job runs). numpy's BLAS
threads (the SVDs of the tracking) get the same limit. Runs that want more speed run several
experiments side by side instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run the block with `n` torch intra-op threads and `n` BLAS threads for numpy (the SVDs
    of `striate track`); the previous numbers are restored."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # scikit-learn's

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(before)
