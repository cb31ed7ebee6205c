"""`striate banding MODEL`: every conv layer's banding score and NMF picture, side by side.

Streams the checkpoint one tensor at a time; only conv kernels of at least
`min_kernel` x `min_kernel` are read. Writes into the output folder:

- `banding.parquet`: one row per conv layer (columns in the README),
- `banding.png`: every layer's NMF tiles side by side (the article's first figure; layers that
  band framed in red),
- `layers/NNNN_<tensor>.png`: each layer with all of its neurons.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from striate.analyses.banding import (
    Banding,
    BandingConfig,
    NMFView,
    as_oihw,
    banding_score,
    nmf_view,
    skip_reason,
)
from striate.anatomy import anatomy_of
from striate.checkpoint import Checkpoint, open_checkpoint
from striate.progress import progress_bar
from striate.render.banding_figures import Panel, describe, draw_panels
from striate.scan import image_name
from striate.store import write_table


def draw_layer(path: Path, name: str, view: NMFView, b: Banding) -> None:
    """One layer's NMF picture with all its neurons."""
    out, kh, kw, _ = view.rgb.shape
    n_in = view.factors.shape[1] // 2
    note = (
        f"{out} neurons x {n_in} inputs x {kh}x{kw}; NMF of [W+, W-] over inputs to 3 factors "
        f"(R, G, B), relative error {view.relative_error:.0%}; sorted by similarity"
    )
    draw_panels(path, [Panel(name, view, b, describe(b))], title=name, neurons=None, note=note)


def run_banding(
    model: str | Path | Checkpoint,
    out: str | Path,
    *,
    config: BandingConfig | None = None,
    match: str | None = None,
    neurons: int = 25,
    progress: bool = False,
) -> pd.DataFrame:
    """Score and draw every conv layer of `model` (those whose name matches `match`, a regex).

    Returns the table written to `out/banding.parquet`, one row per conv layer in file order.
    """
    config = config or BandingConfig()
    out_dir = Path(out)
    (out_dir / "layers").mkdir(parents=True, exist_ok=True)
    if isinstance(model, Checkpoint):
        return _run(model, out_dir, config, match, neurons, progress)
    with open_checkpoint(model) as ckpt:
        return _run(ckpt, out_dir, config, match, neurons, progress)


_COLUMNS = ("tensor", "layer", "out", "in", "kh", "kw", "skipped")


def _layer(
    ckpt: Checkpoint,
    name: str,
    layout: str | None,
    position: int,
    out_dir: Path,
    config: BandingConfig,
    row: dict[str, Any],
) -> Panel | None:
    """Score and draw one conv tensor; its columns go into `row`."""
    kernels = as_oihw(ckpt.read(name), layout)
    row |= dict(zip(("out", "in", "kh", "kw"), kernels.shape, strict=True))
    row["skipped"] = skip_reason(kernels, config)
    if row["skipped"] is not None:
        return None
    b = banding_score(kernels, config)
    rel = f"layers/{image_name(position, name)}"
    row |= b.row() | {"null_mean": b.null_mean, "null_std": b.null_std,
                      "n_kernels": b.n_kernels, "image": rel}  # fmt: skip
    view = nmf_view(kernels, seed=config.seed)
    draw_layer(out_dir / rel, name, view, b)
    row["nmf_relative_error"] = view.relative_error
    return Panel(name, view, b)


def _run(
    ckpt: Checkpoint,
    out_dir: Path,
    config: BandingConfig,
    match: str | None,
    neurons: int,
    progress: bool,
) -> pd.DataFrame:
    anat = anatomy_of(ckpt)
    convs = [(i, ckpt.info(n)) for i, n in enumerate(ckpt.names())
             if anat[n].role == "conv" and len(ckpt.info(n).shape) == 4
             and (match is None or re.search(match, n))]  # fmt: skip
    rows: list[dict[str, Any]] = []
    panels: list[Panel] = []
    with progress_bar([info for _, info in convs], enabled=progress, label="banding") as advance:
        for position, info in convs:
            row: dict[str, Any] = {"tensor": info.name, "layer": anat[info.name].layer}
            try:
                panel = _layer(ckpt, info.name, anat[info.name].layout, position, out_dir,
                               config, row)  # fmt: skip
                panels += [] if panel is None else [panel]
            except Exception as exc:  # one bad tensor loses only its own row
                row["skipped"] = f"failed: {type(exc).__name__}: {exc}"
            rows.append(row)
            advance(info)
    table = pd.DataFrame.from_records(rows, columns=list(_COLUMNS) if not rows else None)
    for column in ("layer", "n_kernels"):
        if column in table:
            table[column] = table[column].astype("Int64")
    if panels:
        title = f"{ckpt.path.name}: conv layers, NMF of input channels to RGB"
        draw_panels(out_dir / "banding.png", panels, title=title, neurons=neurons)
    write_table(out_dir / "banding.parquet", table)
    return table  # type: ignore[no-any-return]
