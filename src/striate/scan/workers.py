"""The scan's timing and its workers: analysis threads and drawing processes (`--jobs`)."""

from __future__ import annotations

import multiprocessing
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from striate.scan.tensor import TensorResult

__all__ = ["Clock", "FigureCall", "Workers"]

_T = TypeVar("_T")

#: a figure not drawn yet: its function, positional and keyword arguments (picklable: another
#: process may draw it)
FigureCall = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class Clock:
    """`with clock("lines"):` adds the block's wall time to `seconds["lines"]` (if any)."""

    def __init__(self, seconds: dict[str, float] | None) -> None:
        self.seconds = seconds

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        if self.seconds is None:
            yield
            return
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


class Workers:
    """`jobs` analysis threads and, when the scan draws, `jobs` drawing processes; with one
    job, each analysis and figure runs at once in this thread.

    Figures drawn by matplotlib go to processes because it holds the GIL and its settings are
    global: threads would draw one at a time. Tensor images of the raster renderer (the
    default) are drawn in the analysis thread: PIL and numpy release the GIL, and pickling a
    large tensor to a process costs more than drawing it. On Linux the
    drawing processes are forked here, before any thread of the scan starts (they inherit the
    imports: no start-up cost, and a user's script is not run again, as `spawn` would); they
    ignore Ctrl-C, which this process handles."""

    def __init__(self, jobs: int, draws: bool) -> None:
        self.jobs = jobs
        self._pool = ThreadPoolExecutor(jobs, "striate-scan") if jobs > 1 else None
        self._drawers: ProcessPoolExecutor | None = None
        if jobs > 1 and draws:
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            self._drawers = ProcessPoolExecutor(
                jobs, mp_context=context, initializer=_ignore_interrupts
            )
            self._drawers.submit(int).result()  # forks every process now

    def submit(self, fn: Any, *args: Any) -> Future[TensorResult]:
        if self._pool is not None:
            return self._pool.submit(fn, *args)
        future: Future[TensorResult] = Future()
        future.set_result(fn(*args))  # the scan's compute returns failures, it never raises them
        return future

    def draw(self, matplotlib: bool, fn: Callable[..., _T], *args: Any) -> _T:
        """`fn(*args)`: in a drawing process when it uses `matplotlib` and there are several
        jobs; else here (PIL drawing releases the GIL, and a tensor is not copied to a process)."""
        if self._drawers is None or not matplotlib:
            return fn(*args)
        return self._drawers.submit(fn, *args).result()

    def draw_all(self, calls: list[FigureCall]) -> None:
        """Draw every figure of `calls`, spread over the drawing processes when there are
        several jobs; the first error is raised once all have finished."""
        if self._drawers is None:
            for fn, args, kwargs in calls:
                fn(*args, **kwargs)
            return
        futures = [self._drawers.submit(fn, *args, **kwargs) for fn, args, kwargs in calls]
        wait(futures)
        for future in futures:
            future.result()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:  # on an error or Ctrl-C, drop what has not started
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._drawers is not None:
            self._drawers.shutdown(wait=True, cancel_futures=True)


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
