"""The options that several `striate` commands share, declared once (typer `Annotated` types)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ExecutorOption = Annotated[
    str,
    typer.Option(
        "--executor",
        metavar="local|ray",
        help="Where the tasks (models, checkpoints, lab groups) run: local (here, in turn) or "
        'ray (a Ray cluster; pip install "striate[ray]"). See docs/scale-out.md.',
    ),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        metavar="ADDRESS",
        help="With --executor ray: the cluster to join, `auto` (this machine ran `ray start`) "
        "or ray://HOST:10001; default: start a Ray instance on this machine.",
    ),
]
ThresholdsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Change a threshold: section.field=value (repeatable).",
    ),
]
ConfigFileOption = Annotated[
    Path | None, typer.Option("--config", metavar="FILE", help="TOML or JSON file of settings.")
]
ResumeOption = Annotated[
    bool,
    typer.Option(
        "--resume/--no-resume",
        help="Reuse the results cached in DIR/.striate-cache (the default): a stopped run "
        "continues, an unchanged one is near-instant. --no-resume recomputes every tensor.",
    ),
]
JobsOption = Annotated[
    int,
    typer.Option(
        "--jobs",
        "-j",
        metavar="N",
        help="Tensors analysed at once (threads; one BLAS thread each) while the next is "
        "read; 0 (the default): one per core, at most 8. Same tables for any number.",
    ),
]
DeviceOption = Annotated[
    str | None,
    typer.Option(
        "--device",
        metavar="DEVICE",
        help="Where the spectra's linear algebra runs: auto (cuda when torch sees a GPU), "
        "cpu, cuda, cuda:N. Same as setting spectrum.device.",
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="KEY=VALUE", help="Change a config field: key=value."),
]
SeedOption = Annotated[int | None, typer.Option("--seed", metavar="N", help="Random seed.")]
SeedsOption = Annotated[
    str | None,
    typer.Option(
        "--seeds",
        metavar="N|LIST",
        help="Run once per seed (N: seeds 0..N-1, or a list like 0,3,7), each into "
        "OUT/seeds/seed_NNN, and decide the claims over the seeds.",
    ),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress.")]
OutOption = Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Run directory.")]
SummaryQuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")
]
