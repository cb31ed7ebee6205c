"""What a setting is, how a command's preset, `--set` and `--seed` make its config, and the
manifest every run writes.

A setting is one lab sweep or one experiment: a name, a one-line `about`, presets of a config
(a frozen dataclass with commented defaults) and a `run(config, engine) -> Path`. Its engine
is the class that trains it and owns its run directory: `striate.experiments.toy.lab.Lab`
(kind "lab": a sweep of toy models trained batched) or `striate.experiments.harness.Experiment`
(kind "experiment": models trained one by one, checkpointed and tracked). Both commands,
`striate lab NAME` and `striate experiment NAME`, resolve a config with `resolve_config` and
write `manifest(...)` through `striate.store`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

import numpy as np

from striate.config import apply_overrides, as_dict
from striate.errors import StriateError
from striate.executor import Executor
from striate.experiments.claims import Claim, write_claims
from striate.store import Manifest

Kind = Literal["lab", "experiment"]


class Engine(Protocol):
    """What trains a setting and writes its run directory, made from the command's `Request`."""

    kind: ClassVar[Kind]

    def __init__(self, request: Request) -> None: ...


C = TypeVar("C")  # the setting's config, a frozen dataclass
E = TypeVar("E", bound=Engine)


@dataclass(frozen=True)
class Setting(Generic[C, E]):
    """One lab setting or experiment; `registry.SETTINGS` lists them all."""

    name: str  # what `striate lab NAME` or `striate experiment NAME` takes
    about: str  # one line: what it reproduces (manifest "about", the report's heading)
    presets: Mapping[str, C]  # preset name -> config; "quick" (the default) runs in the tests
    engine: type[E]  # `Lab` or `Experiment`: how it trains; its kind
    run: Callable[[C, E], Path]  # train, summarize, draw; returns the run directory
    claims: tuple[Claim, ...] = ()  # decided on every run's summary.json (claims.json)
    deviations: Callable[[C], list[str]] | None = None  # how a config differs from the source
    draw_seeds: Callable[[list[Path], Path], list[str]] | None = None  # figures of a run over
    # seeds: (the seeds' run directories, the figures folder) -> paths relative to the run

    @property
    def kind(self) -> Kind:
        return self.engine.kind


@dataclass(frozen=True)
class Request:
    """One run as a command asked for it, with its config resolved."""

    setting: Setting[Any, Any]
    config: Any  # the preset with the overrides (and the seed) applied
    out: Path  # the run directory
    preset: str
    overrides: tuple[str, ...] = ()  # `key=value`, as given
    seed: int | None = None  # as given; a config with a `seed` field already holds it
    progress: bool = False
    executor: Executor | None = None  # labs only: where the sweep's groups train


def resolve_config(
    setting: Setting[C, Any],
    preset: str = "quick",
    overrides: Sequence[str] = (),
    seed: int | None = None,
    device: str | None = None,
) -> C:
    """The config of `setting`'s `preset` with `key=value` overrides, and `seed` in its `seed`
    field when it has one (an experiment's; a lab seeds its instances from the run's seed);
    `device` in its `device` field (refused for a setting without one).

    Unknown presets and settings raise `StriateError` listing the known ones.
    """
    if preset not in setting.presets:
        raise StriateError(
            f"unknown preset {preset!r} for {setting.kind} {setting.name!r}",
            hint=f"one of: {', '.join(setting.presets)}",
        )
    config: Any = apply_overrides(setting.presets[preset], overrides)
    if seed is not None and "seed" in {f.name for f in dataclasses.fields(config)}:
        config = dataclasses.replace(config, seed=seed)
    if device is not None:
        if "device" not in {f.name for f in dataclasses.fields(config)}:
            raise StriateError(f"{setting.kind} {setting.name!r} trains on the CPU only",
                               hint="leave out --device")  # fmt: skip
        config = dataclasses.replace(config, device=device)
    return config  # type: ignore[no-any-return]


def manifest(request: Request, started: float, figures: list[str], **facts: Any) -> Manifest:
    """The manifest of a run (`store.Manifest`): the setting and preset that ran, the resolved
    config as its settings, the engine's `facts`, the figures (paths relative to the run
    directory) and the wall time since `started` (`time.time()`)."""
    setting = request.setting
    record = Manifest(
        setting.kind,
        source=f"{setting.kind} {setting.name}",
        settings=as_dict(request.config),
        figures=figures,
        extra={"name": setting.name, "about": setting.about, "preset": request.preset, **facts},
    )
    record.finish(started)
    return record


def decide_claims(request: Request, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Write the claims.json of a one-seed run from its `summary`; return its rows."""
    setting, config = request.setting, request.config
    seed = getattr(config, "seed", request.seed)
    deviations = setting.deviations(config) if setting.deviations else []
    return write_claims(request.out, setting.claims, [summary], [0 if seed is None else seed],
                        deviations)  # fmt: skip


def json_ready(value: Any) -> Any:
    """`value` for a JSON file: NumPy scalars as Python numbers, NaN and infinities as None,
    keys as strings.

    >>> json_ready({1: [np.float32(0.5), float("nan")]})
    {'1': [0.5, None]}
    """
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
