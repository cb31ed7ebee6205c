"""Spectra: the long table of singular values and the depth figure of a scan, and
`striate spectra` (`run_spectra`), which computes the spectra alone."""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from striate import store
from striate.analyses.spectrum import SpectrumConfig
from striate.analyses.stats import tensor_stats
from striate.anatomy import TensorAnatomy, anatomy_of
from striate.checkpoint import TensorInfo, open_checkpoint
from striate.devices import resolve_device
from striate.render.spectrum_figures import draw_depth_metrics
from striate.report.pass_html import write_pass_report
from striate.scan.cache import TensorCache
from striate.scan.tensor import (
    TensorResult,
    analyse_spectrum,
    base_row,
    failed_result,
    read_each,
)
from striate.scan.workers import FigureCall
from striate.store import Manifest


def spectra_table(spectra: dict[str, np.ndarray]) -> pd.DataFrame:
    """Singular values in long format: `tensor, k, sigma` (k = 0 is the largest)."""
    if not spectra:
        empty: pd.DataFrame = pd.DataFrame(columns=["tensor", "k", "sigma"])
        return empty
    sizes = [s.size for s in spectra.values()]
    table: pd.DataFrame = pd.DataFrame(
        {
            "tensor": np.repeat(np.array(list(spectra), dtype=object), sizes),
            "k": np.concatenate([np.arange(s.size) for s in spectra.values()]),
            "sigma": np.concatenate(list(spectra.values())),
        }
    )
    return table


def depth_figure_calls(out_dir: Path, tensors: pd.DataFrame) -> dict[str, FigureCall]:
    """Per-layer curves of the spectral metrics, not drawn yet: {path relative to out_dir: call}."""
    if "stable_rank" not in tensors or tensors["stable_rank"].isna().all():
        return {}
    rel = "images/spectra/depth.png"
    return {rel: (draw_depth_metrics, (tensors, out_dir / rel), {})}


def run_spectra(
    model: str | Path,
    out: str | Path,
    *,
    config: SpectrumConfig | None = None,
    progress: bool = False,
    resume: bool = True,
) -> pd.DataFrame:
    """Spectra only, the job a WeightWatcher user runs: every matrix's singular values and
    metrics, as the scan computes them (same settings, `device` included), into `out`:
    `tensors.parquet` (stats and spectrum columns), `spectra.parquet`, the depth figure,
    `manifest.json` and `index.html`. Results are cached per tensor in `out/.striate-cache`
    (`resume=False` recomputes). Returns the tensors table."""
    config = config or SpectrumConfig()
    config = replace(config, device=resolve_device(config.device))
    out_dir = Path(out)
    started = time.time()
    rows: list[dict[str, Any]] = []
    spectra: dict[str, np.ndarray] = {}
    with store.run_lock(out_dir), open_checkpoint(model) as ckpt:
        store.remove_temp_files(out_dir)
        (out_dir / "manifest.json").unlink(missing_ok=True)  # written last, when complete
        manifest = Manifest("spectra", source=str(ckpt.path), settings={"spectrum": asdict(config)})
        cache = TensorCache(out_dir, manifest.settings, reuse=resume)
        anat = anatomy_of(ckpt)
        infos = [ckpt.info(n) for n in ckpt.names()]
        for position, (info, w, error) in enumerate(
            read_each(ckpt, infos, progress=progress, label="spectra")
        ):
            part = anat[info.name]
            if w is None:
                result = TensorResult(base_row(info, part) | {"status": "failed"}, [],
                                      {"status": "failed", "error": error})  # fmt: skip
            else:
                key = cache.key(position, info.name, info.shape, info.dtype, part, values=w)
                cached = cache.get(key)
                result = cached or _spectrum(w, info, part, config)
                if cached is None and not result.failed:  # failures are retried next time
                    cache.put(key, result)
            rows.append(result.row)
            manifest.tensors[info.name] = result.status
            if result.singular_values is not None:
                spectra[info.name] = result.singular_values
        cache.prune()
    tensors: pd.DataFrame = pd.DataFrame.from_records(rows)
    for column in ("layer", "residual_axis"):
        tensors[column] = tensors[column].astype("Int64")
    store.write_table(out_dir / "tensors.parquet", tensors)
    store.write_table(out_dir / "spectra.parquet", spectra_table(spectra))
    calls = depth_figure_calls(out_dir, tensors)
    for fn, args, kwargs in calls.values():
        fn(*args, **kwargs)
    manifest.figures = list(calls)
    manifest.finish(started)
    write_pass_report(out_dir, store.write_manifest(out_dir, manifest))
    return tensors


def _spectrum(
    w: np.ndarray, info: TensorInfo, part: TensorAnatomy, config: SpectrumConfig
) -> TensorResult:
    """One tensor's stats and spectrum, or its failure (`tensor.failure`)."""
    try:
        row: dict[str, Any] = base_row(info, part) | dict(tensor_stats(w))
        s, shape = analyse_spectrum(w, part, config, row)
        return TensorResult(row | {"status": "done"}, [], singular_values=s, matrix_shape=shape)
    except Exception as exc:  # one bad tensor never stops the run
        return failed_result(info, part, exc)
