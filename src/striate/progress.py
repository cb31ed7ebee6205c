"""A progress bar of tensors done, bytes read and time left, silent when not wanted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from striate.checkpoint import TensorInfo


@contextmanager
def progress_bar(
    infos: list[TensorInfo], *, enabled: bool, label: str
) -> Iterator[Callable[[TensorInfo], None]]:
    """A progress bar of tensors done, bytes read and time left; silent when not enabled."""
    if not enabled:
        yield lambda info: None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn(label),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[done]}/{task.fields[n]} tensors"),
        TimeRemainingColumn(),
    )
    total = sum(i.nbytes for i in infos) or len(infos)
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("scan", total=total, done=0, n=len(infos))
        done = 0

        def advance(info: TensorInfo) -> None:
            nonlocal done
            done += 1
            bar.update(task, advance=info.nbytes or 1, done=done)

        yield advance
