"""`striate scan A B C`: several models, each one task, each into its own run directory."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

from striate.executor import Executor
from striate.run import Run
from striate.scan.config import ScanConfig
from striate.scan.pipeline import scan


def _scan_one(
    job: tuple[str, Path], config: ScanConfig, resume: bool, progress: bool, jobs: int
) -> Run:
    model, out = job
    return scan(model, out, config=config, progress=progress, resume=resume, jobs=jobs)


def scan_many(
    models: Sequence[str],
    outs: Sequence[Path],
    *,
    config: ScanConfig | None = None,
    resume: bool = True,
    progress: bool = False,
    executor: Executor | None = None,
    jobs: int = 1,
) -> list[Run]:
    """Scan `models[i]` into `outs[i]`, each as one task of `executor`; the runs, in order.
    `jobs`: analysis threads within each scan (`striate.scan.pipeline.scan`).

    The default executor scans here, one model after another, each with its own bar of
    tensors; elsewhere (`striate.executor.RayExecutor`) a bar counts the models done.
    """
    executor = executor or Executor()
    here = executor.in_process
    task = partial(_scan_one, config=config or ScanConfig(), resume=resume,
                   progress=progress and here, jobs=jobs)  # fmt: skip
    pairs = list(zip(models, outs, strict=True))
    return list(executor.map(task, pairs, label="scan: models", progress=progress and not here))


__all__ = ["scan_many"]
