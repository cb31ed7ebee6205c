"""Every setting, in one place: `striate lab NAME` and `striate experiment NAME` find theirs here.

Adding a setting is one module that builds a `Setting` (config, presets, run) and one line
below.
"""

from __future__ import annotations

from typing import Any

from striate.errors import StriateError
from striate.experiments.banding import BANDING
from striate.experiments.double_descent import (
    DOUBLE_DESCENT,
    DOUBLE_DESCENT_WEIGHT_DECAY,
    MLP_DOUBLE_DESCENT,
    UNEMBEDDING,
    UNEMBEDDING_MEMORIZATION,
)
from striate.experiments.feature_geometry import GEOMETRY
from striate.experiments.final_layer import FINAL_LAYER
from striate.experiments.fish import FISH
from striate.experiments.gpt_specimen import GPT_SPECIMEN
from striate.experiments.grokking import GROKKING
from striate.experiments.grokking_transformer import GROKKING_TRANSFORMER
from striate.experiments.lmc import LMC
from striate.experiments.lottery import LOTTERY
from striate.experiments.memorization import MEMORIZATION
from striate.experiments.one_hot import ONE_HOT
from striate.experiments.reconstruction import RECONSTRUCTION
from striate.experiments.setting import Kind, Setting
from striate.experiments.superposition import LINEAR, PRIVILEGED, SUPERPOSITION
from striate.experiments.weight_decay import WEIGHT_DECAY

SETTINGS: dict[str, Setting[Any, Any]] = {
    s.name: s
    for s in (
        # labs: sweeps of toy models (superposition, memorization, double descent)
        SUPERPOSITION,
        LINEAR,
        PRIVILEGED,
        GEOMETRY,
        DOUBLE_DESCENT,
        DOUBLE_DESCENT_WEIGHT_DECAY,
        MLP_DOUBLE_DESCENT,
        UNEMBEDDING,
        UNEMBEDDING_MEMORIZATION,
        RECONSTRUCTION,
        FISH,
        ONE_HOT,
        FINAL_LAYER,
        # experiments: the spectral dynamics of weights, and weight banding
        GROKKING,
        GROKKING_TRANSFORMER,
        WEIGHT_DECAY,
        MEMORIZATION,
        LMC,
        LOTTERY,
        BANDING,
        GPT_SPECIMEN,
    )
}
LABS = {name: s for name, s in SETTINGS.items() if s.kind == "lab"}
EXPERIMENTS = {name: s for name, s in SETTINGS.items() if s.kind == "experiment"}


def find(kind: Kind, name: str) -> Setting[Any, Any]:
    """The setting `name` of `kind`; an unknown name raises `StriateError` listing the known."""
    setting = SETTINGS.get(name)
    if setting is not None and setting.kind == kind:
        return setting
    if setting is not None:  # the other command's
        article = "a lab" if setting.kind == "lab" else "an experiment"
        hint = f"{name} is {article}: striate {setting.kind} {name}"
    else:
        hint = f"one of: {', '.join(n for n, s in SETTINGS.items() if s.kind == kind)}"
    raise StriateError(f"unknown {kind} {name!r}", hint=hint)
