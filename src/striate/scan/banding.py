"""`striate banding MODEL`: every conv layer's banding score and NMF picture, side by side.

Streams the checkpoint one tensor at a time; only conv kernels of at least
`min_kernel` x `min_kernel` are read. Writes into the output folder:

- `banding.parquet`: one row per conv layer (columns in the README),
- `banding.png`: every layer's NMF tiles side by side (the article's first figure; layers that
  band framed in red),
- `layers/NNNN_<tensor>.png`: each layer with all of its neurons,
- `manifest.json` and `index.html` (`striate report` writes the page again).
"""

from __future__ import annotations

import re
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from striate import store
from striate.analyses.banding import (
    BandingConfig,
    as_oihw,
    banding_score,
    nmf_view,
    skip_reason,
)
from striate.anatomy import anatomy_of
from striate.checkpoint import Checkpoint, open_checkpoint
from striate.render.banding_figures import Panel, draw_layer, draw_panels
from striate.report.pass_html import write_pass_report
from striate.scan.images import image_name
from striate.scan.tensor import failure, read_each
from striate.store import Manifest


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
    started = time.time()
    settings = {"banding": asdict(config), "match": match, "neurons": neurons}
    with ExitStack() as stack:
        ckpt = model if isinstance(model, Checkpoint) else open_checkpoint(model)
        if ckpt is not model:
            stack.enter_context(ckpt)
        manifest = Manifest("banding", source=str(ckpt.path), settings=settings)
        table = _run(ckpt, out_dir, config, match, neurons, progress, manifest)
    manifest.finish(started)
    store.write_manifest(out_dir, manifest)
    write_pass_report(out_dir, manifest.as_dict())
    return table


_COLUMNS = ("tensor", "layer", "out", "in", "kh", "kw", "skipped")


def _layer(
    w: np.ndarray,
    name: str,
    layout: str | None,
    position: int,
    out_dir: Path,
    config: BandingConfig,
    row: dict[str, Any],
) -> Panel | None:
    """Score and draw one conv tensor; its columns go into `row`."""
    kernels = as_oihw(w, layout)
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
    manifest: Manifest,
) -> pd.DataFrame:
    anat = anatomy_of(ckpt)
    convs = [(i, ckpt.info(n)) for i, n in enumerate(ckpt.names())
             if anat[n].role == "conv" and len(ckpt.info(n).shape) == 4
             and (match is None or re.search(match, n))]  # fmt: skip
    positions = {info.name: i for i, info in convs}
    rows: list[dict[str, Any]] = []
    panels: list[Panel] = []
    infos = [info for _, info in convs]
    for info, w, error in read_each(ckpt, infos, progress=progress, label="banding"):
        name = info.name
        row: dict[str, Any] = {"tensor": name, "layer": anat[name].layer}
        if w is None:
            row["skipped"] = f"failed: {error}"
        else:
            try:
                panel = _layer(w, name, anat[name].layout, positions[name], out_dir, config, row)
                panels += [] if panel is None else [panel]
            except Exception as exc:  # one bad tensor loses only its own row
                row["skipped"] = f"failed: {failure(exc)}"
        failed = str(row.get("skipped", "")).startswith("failed: ")
        manifest.tensors[name] = (
            {"status": "failed", "error": row["skipped"][8:]} if failed else {"status": "done"}
        )
        rows.append(row)
    table = pd.DataFrame.from_records(rows, columns=list(_COLUMNS) if not rows else None)
    for column in ("layer", "n_kernels"):
        if column in table:
            table[column] = table[column].astype("Int64")
    if panels:
        title = f"{ckpt.path.name}: conv layers, NMF of input channels to RGB"
        draw_panels(out_dir / "banding.png", panels, title=title, neurons=neurons)
        manifest.figures = ["banding.png"]
    store.write_table(out_dir / "banding.parquet", table)
    return table  # type: ignore[no-any-return]
