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
from striate.analyses.spectrum import (
    SpectrumConfig,
    as_matrix,
    rank_tolerance,
    singular_values,
    singular_values_batch,
    spectrum_metrics,
)
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
    matrix_shape,
    read_each,
    spectrum_matrix,
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
    results: list[TensorResult] = []
    with store.run_lock(out_dir), open_checkpoint(model) as ckpt:
        store.remove_temp_files(out_dir)
        (out_dir / "manifest.json").unlink(missing_ok=True)  # written last, when complete
        manifest = Manifest("spectra", source=str(ckpt.path), settings={"spectrum": asdict(config)})
        cache = TensorCache(out_dir, manifest.settings, reuse=resume)
        batches = _Batches(config, cache)
        anat = anatomy_of(ckpt)
        infos = [ckpt.info(n) for n in ckpt.names()]
        for position, (info, w, error) in enumerate(
            read_each(ckpt, infos, progress=progress, label="spectra")
        ):
            part = anat[info.name]
            if w is None:
                results.append(TensorResult(base_row(info, part) | {"status": "failed"}, [],
                                            {"status": "failed", "error": error}))  # fmt: skip
                continue
            key = cache.key(position, info.name, info.shape, info.dtype, part, values=w)
            cached = cache.get(key)
            if cached is not None:
                results.append(cached)
                continue
            result = _spectrum(w, info, part, config, batches.on)
            results.append(result)
            if result.singular_values is None and result.matrix_shape is not None:
                batches.add(key, result, w, part)  # its spectrum comes with its batch's
            elif not result.failed:  # failures are retried next time
                cache.put(key, result)
        batches.flush()
        cache.prune()
    rows = [result.row for result in results]
    manifest.tensors = {result.row["name"]: result.status for result in results}
    spectra = {result.row["name"]: result.singular_values for result in results
               if result.singular_values is not None}  # fmt: skip
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
    w: np.ndarray, info: TensorInfo, part: TensorAnatomy, config: SpectrumConfig, later: bool
) -> TensorResult:
    """One tensor's stats and spectrum, or its failure (`tensor.failure`). `later`: a matrix
    that gets a spectrum is left without one (its `matrix_shape` set) for `_Batches`."""
    try:
        row: dict[str, Any] = base_row(info, part) | dict(tensor_stats(w))
        if later:
            matrix = spectrum_matrix(w, part, config, row)
            shape = None if matrix is None else matrix_shape(matrix)
            return TensorResult(row | {"status": "done"}, [], matrix_shape=shape)
        s, shape = analyse_spectrum(w, part, config, row)
        return TensorResult(row | {"status": "done"}, [], singular_values=s, matrix_shape=shape)
    except Exception as exc:  # one bad tensor never stops the run
        return failed_result(info, part, exc)


class _Batches:
    """On a torch device, matrices of one shape wait here and get their spectra together
    (`singular_values_batch`): up to BATCH of them or BATCH_BYTES in all (as float64), the
    rest when the run ends. Each result is completed and cached when its batch is done; a
    batch that fails is retried one matrix at a time, so a bad matrix fails alone."""

    BATCH = 32
    BATCH_BYTES = 512 * 2**20

    def __init__(self, config: SpectrumConfig, cache: TensorCache) -> None:
        self.config, self.cache = config, cache
        self.device = config.torch_device()
        self.on = self.device is not None
        self.waiting: dict[tuple[int, int], list[tuple[str, TensorResult, np.ndarray]]] = {}
        self.bytes = 0

    def add(self, key: str, result: TensorResult, w: np.ndarray, part: TensorAnatomy) -> None:
        matrix = as_matrix(w, part.layout)
        assert matrix is not None and result.matrix_shape is not None
        group = self.waiting.setdefault(result.matrix_shape, [])
        group.append((key, result, matrix))
        self.bytes += matrix.size * 8
        if len(group) >= self.BATCH or self.bytes >= self.BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        for shape, group in self.waiting.items():
            floor = rank_tolerance(shape, self.config)
            values: list[np.ndarray | None]
            try:
                matrices = [m for _, _, m in group]
                floors = [floor] * len(group)
                device = str(self.device)
                values = list(singular_values_batch(matrices, device, floors, self.config.gram))
            except Exception:  # find the bad matrix: one at a time
                values = [self._one(m, floor, result) for _, result, m in group]
            for (key, result, _), s in zip(group, values, strict=True):
                if s is None:
                    continue
                result.singular_values = s
                result.row |= spectrum_metrics(s, shape, self.config)
                self.cache.put(key, result)
        self.waiting, self.bytes = {}, 0

    def _one(self, m: np.ndarray, floor: float, result: TensorResult) -> np.ndarray | None:
        try:
            return singular_values(m, self.device, floor, self.config.gram)
        except Exception as exc:
            result.row["status"] = result.status["status"] = "failed"
            result.status["error"] = f"{type(exc).__name__}: {exc}"
            return None
