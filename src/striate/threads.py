"""Thread pools for the small models that `striate lab` and `striate experiment` train.

Their matrices are small (hundreds of rows), so a step is a few short kernels: torch's
intra-op thread pool adds synchronisation without speed, and on cores shared with other work
its spinning threads make training up to 10x slower (measured: the quick superposition lab
takes 8 s on one thread and 85 s on torch's default two while another job runs). numpy's BLAS
threads (the SVDs of the tracking) get the same limit. Runs that want more speed run several
experiments side by side instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

MAX_AUTO_JOBS = 8  # each job holds a tensor and a drawing process: memory grows with jobs


def auto_jobs(jobs: int) -> int:
    """`jobs`, or for 0 the cores this process may use (at most `MAX_AUTO_JOBS`)."""
    if jobs < 0:
        raise ValueError(f"jobs must be 0 (one per core) or more, got {jobs}")
    return jobs or max(1, min(MAX_AUTO_JOBS, len(os.sched_getaffinity(0))))


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run the block with `n` torch intra-op threads and `n` BLAS threads for numpy (the SVDs
    of `striate track`); the previous numbers are restored."""
    import torch
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # scikit-learn's

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(before)
