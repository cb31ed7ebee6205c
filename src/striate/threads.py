"""Thread pools for the small models that `striate lab` and `striate experiment` train.

Their matrices are small (hundreds of rows), so a step is a few short kernels: torch's
intra-op thread pool adds synchronisation without speed, and on cores shared with other work
its spinning threads make training up to 10x slower (measured: the quick superposition lab
takes 8 s on one thread and 85 s on torch's default two while another job runs). numpy's BLAS
threads (the SVDs of the tracking) get the same limit. Runs that want more speed run several
experiments side by side instead.

Their batched groups can be large (the geometry lab: 28 instances x 1024 points x 400 features,
46 MB a tensor), and `big_buffers` keeps such buffers in the heap from one step to the next.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
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


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_GLIBC_DEFAULT = 128 * 1024  # glibc's default of both
_held = [0]  # blocks under way (several seeds train in threads of one process)
_lock = threading.Lock()


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
    except (OSError, AttributeError):  # not glibc
        return None
    return libc


@contextmanager
def big_buffers(threshold: int = 1 << 30) -> Iterator[None]:
    """Run the block with freed buffers of up to `threshold` bytes kept in the heap, for the
    next training step to reuse.

    glibc serves blocks above its mmap threshold (at most 32 MB, however it adapts) with fresh
    mmaps and unmaps them when freed, so a step whose tensors are larger page-faults all of
    their memory in again: the geometry lab's steps took 1.0 s, and 0.4 s in this block
    (measured on one thread). On leaving the last block the thresholds go back to glibc's
    defaults and the free pages back to the system. Without glibc it does nothing.
    """
    if not 0 < threshold < 1 << 31:
        raise ValueError(f"threshold must be in (0, 2**31): mallopt takes a C int, got {threshold}")
    libc = _glibc()
    with _lock:
        _held[0] += 1
        if libc is not None and _held[0] == 1:
            libc.mallopt(_M_MMAP_THRESHOLD, threshold)
            libc.mallopt(_M_TRIM_THRESHOLD, threshold)  # the heap's free top stays too
    try:
        yield
    finally:
        with _lock:
            _held[0] -= 1
            if libc is not None and _held[0] == 0:
                libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT)
                libc.mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT)
                libc.malloc_trim(0)
