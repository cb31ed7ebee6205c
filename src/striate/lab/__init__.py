"""Toy models of superposition, memorization and double descent, trained many at once.

    >>> from striate.lab import run_lab
    >>> run_lab("superposition", "runs/sup", preset="quick")  # doctest: +SKIP
    PosixPath('runs/sup')

The lab's public names, `LABS` and `run_lab` (docs/lab.md). The settings, their engine and the
framework they share with `striate experiment` live in `striate.experiments`.
"""

from __future__ import annotations

from striate.experiments import LABS, run_lab

__all__ = ["LABS", "run_lab"]
