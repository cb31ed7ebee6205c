"""What a lab setting is: named presets of a config, the sweep they define, a summary, figures.

Adding a setting is one module that builds a `Lab` and one line in `striate/lab/__init__.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from striate.lab.instance import Instance
from striate.lab.sweep import LabResult


@dataclass(frozen=True)
class Lab:
    """One lab setting. Its configs are frozen dataclasses with a `train` section."""

    name: str
    about: str  # one line: what it reproduces
    presets: Mapping[str, Any]  # "quick" (seconds, for tests) and "paper" (the source's settings)
    sweep: Callable[[Any], list[Instance]]  # config -> the instances to train
    summarize: Callable[[Any, LabResult], dict[str, Any]]  # the numbers that decide each claim
    draw: Callable[[Any, LabResult, Path], list[str]]  # figures written; paths under the run
