"""Where coarse tasks run: here, one after another (`local`), or on a Ray cluster (`ray`).

A task is one model of `striate scan`, one checkpoint of `striate track` or one group of a
`striate lab` sweep: a module-level function of picklable arguments (paths and settings) that
returns results (tables, small records), never a model's tensors. On a cluster the storage is
shared: every node reads the checkpoints and writes the run directories at the same paths.

    >>> with make_executor("local") as executor:
    ...     list(executor.map(abs, [-2, 1, -3]))
    [2, 1, 3]
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from striate.errors import StriateError, require

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("local", "ray")


class Executor:
    """Runs tasks in this process, in order: the behaviour of striate without `--executor`."""

    name = "local"
    #: tasks run in this process, so they may report progress through callbacks and bars
    in_process = True

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        label: str = "tasks",
        progress: bool = False,
    ) -> Iterator[R]:
        """`fn(item)` for every item, in the order of `items`; a bar of tasks done if asked."""
        with task_bar(len(items), enabled=progress, label=label) as advance:
            for item in items:
                yield fn(item)
                advance()

    def close(self) -> None:
        """Release what the executor holds (a Ray instance it started)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class RayExecutor(Executor):
    """Runs tasks on a Ray cluster: all submitted at once, results collected in input order.

    `address`: "auto" (the cluster this machine belongs to, after `ray start`) or
    "ray://HOST:10001" (Ray Client); None starts a Ray instance on this machine, or uses the
    one this process already started with `ray.init`. `cpus_per_task`: the CPUs Ray reserves
    for each task, so a node runs (its CPUs / cpus_per_task) tasks at a time.
    """

    name = "ray"
    in_process = False

    def __init__(self, address: str | None = None, *, cpus_per_task: float = 1) -> None:
        ray: Any = require("ray", "ray", purpose="--executor ray")
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            # a new local instance needs no dashboard; joining a cluster takes its own settings
            options: dict[str, Any] = {} if address else {"include_dashboard": False}
            try:
                ray.init(address=address or None, **options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise StriateError(
                    f"cannot start or reach {where}: {exc}",
                    hint="is the address auto or ray://HOST:10001? `ray status` on the head "
                    "node shows the cluster",
                ) from None
            self._started = True
        self._remote = ray.remote(num_cpus=cpus_per_task)(_call)
        self._cwd = os.getcwd()

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        label: str = "tasks",
        progress: bool = False,
    ) -> Iterator[R]:
        refs = [self._remote.remote(fn, item, self._cwd) for item in items]
        return self._collect(refs, label, progress)

    def _collect(self, refs: list[Any], label: str, progress: bool) -> Iterator[Any]:
        waiting = set(refs)
        try:
            with task_bar(len(refs), enabled=progress, label=label) as advance:
                for ref in refs:
                    while ref in waiting:  # the bar counts tasks as they finish, in any order
                        ready, _ = self._ray.wait(list(waiting), num_returns=1)
                        for done in ready:
                            waiting.discard(done)
                            advance()
                    yield pickle.loads(self._get(ref, label))
        finally:  # an error or Ctrl-C: the tasks not yet finished are stopped
            for ref in waiting:
                with suppress(Exception):
                    self._ray.cancel(ref)

    def _get(self, ref: Any, label: str) -> bytes:
        """A task's pickled result; its exception re-raised as the task raised it."""
        errors = self._ray.exceptions
        try:
            result: bytes = self._ray.get(ref)
        except errors.RayTaskError as exc:
            cause = exc.cause
            if isinstance(cause, BaseException) and not isinstance(cause, errors.RayError):
                raise cause from exc
            raise StriateError(f"a Ray task ({label}) failed: {_first_line(exc)}") from exc
        except errors.RayError as exc:  # a worker or node died, an object was lost
            raise StriateError(
                f"a Ray task ({label}) failed: {type(exc).__name__}: {_first_line(exc)}",
                hint="see the worker logs under /tmp/ray/session_latest/logs on its node",
            ) from exc
        return result

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False


def make_executor(
    name: str = "local", *, address: str | None = None, cpus_per_task: float = 1
) -> Executor:
    """The executor called `name` ("local" or "ray"); see `RayExecutor` for the other two."""
    if name == "local":
        if address:
            raise StriateError("a Ray address goes with the ray executor", hint="--executor ray")
        return Executor()
    if name == "ray":
        return RayExecutor(address, cpus_per_task=cpus_per_task)
    raise StriateError(f"unknown executor {name!r}", hint=f"one of {', '.join(EXECUTORS)}")


def _call(fn: Callable[[T], R], item: T, cwd: str) -> bytes:
    """One task on a Ray worker, in the driver's working directory when this node has it, so
    relative paths mean what they meant where the command was typed.

    The result travels pickled and is unpickled by the driver, so it arrives as it would
    locally: Ray's zero-copy arrays would be read-only views of its object store.
    """
    with suppress(OSError):
        os.chdir(cwd)
    return pickle.dumps(fn(item), protocol=pickle.HIGHEST_PROTOCOL)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@contextmanager
def task_bar(
    total: int, *, enabled: bool, label: str, every: int = 1
) -> Iterator[Callable[..., None]]:
    """A progress bar of things done (models, checkpoints, groups, optimizer steps), advanced
    by `advance(n=1)` and redrawn every `every` of them; silent when not enabled.

    Not `striate.progress.progress_bar`: that one counts tensors and bytes.
    """
    if not enabled:
        yield lambda n=1: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(label, total=total)
        done = 0

        def advance(n: int = 1) -> None:
            nonlocal done
            done += n
            if done % every == 0 or done == total:  # a redraw per step can cost more than it
                bar.update(task, completed=done)

        yield advance


__all__ = ["EXECUTORS", "Executor", "RayExecutor", "make_executor", "task_bar"]
