"""Toy models of superposition, memorization and double descent, trained many at once.

    >>> from striate.lab import run_lab
    >>> run_lab("superposition", "runs/sup", preset="quick")  # doctest: +SKIP
    PosixPath('runs/sup')

Each lab setting (`LABS`) is a sweep of small models (instances) with presets `quick` (seconds)
and `paper` (the source's settings); instances of one shape train as one batched model.
Sources: Elhage et al. 2022, "Toy Models of Superposition"; Henighan et al. 2023,
"Superposition, Memorization, and Double Descent"; Hobbhahn 2023, "More findings on
Memorization and double descent". See docs/lab.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from striate.executor import Executor
from striate.lab.memorization import DOUBLE_DESCENT, MLP_DOUBLE_DESCENT, UNEMBEDDING
from striate.lab.reconstruction import RECONSTRUCTION
from striate.lab.registry import Lab
from striate.lab.run import run_lab_in
from striate.lab.superposition import PRIVILEGED, SUPERPOSITION

LABS: dict[str, Lab] = {
    lab.name: lab
    for lab in (
        SUPERPOSITION,
        PRIVILEGED,
        DOUBLE_DESCENT,
        MLP_DOUBLE_DESCENT,
        UNEMBEDDING,
        RECONSTRUCTION,
    )
}


def run_lab(
    name: str,
    out: str | Path,
    *,
    preset: str = "quick",
    overrides: Sequence[str] = (),
    seed: int | None = None,
    progress: bool = False,
    executor: Executor | None = None,
) -> Path:
    """Train lab `name` with a preset and `key=value` overrides; write and return its run dir.

    Unknown names, presets or settings raise `StriateError` listing the known ones. The run
    directory holds lab.parquet, features.parquet, points.parquet, weights.npz, figures/,
    summary.json, manifest.json and index.html. `seed` (default 0) seeds every instance's
    generators together with the instance's index. `executor` (`striate.executor`) runs each
    group of the sweep as one task, e.g. on a Ray cluster; the default trains here, in turn.
    """
    return run_lab_in(LABS, name, out, preset=preset, overrides=overrides, seed=seed,
                      progress=progress, executor=executor)  # fmt: skip


__all__ = ["LABS", "Lab", "run_lab"]
