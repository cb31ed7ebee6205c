"""One tensor through a scan: every analysis its role and shape call for, and its one result.

`analyse_tensor` is pure (no I/O): stats, non-finite values, norm outliers, lines, hotspots,
periodicity, attention-head blocks, conv banding and the singular-value spectrum. Its
`TensorResult` is what the scan keeps of the tensor from analysis to cache to table row.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from striate import store
from striate.analyses import banding as bands
from striate.analyses.banding import Banding, BandingConfig
from striate.analyses.finding import Finding
from striate.analyses.heads import head_blocks
from striate.analyses.hotspots import find_hotspots
from striate.analyses.lines import analyse_lines
from striate.analyses.nonfinite import find_nonfinite
from striate.analyses.norms import find_norm_outliers
from striate.analyses.periodicity import find_periodic
from striate.analyses.residual import vector_z
from striate.analyses.spectrum import (
    SpectrumConfig,
    as_matrix,
    rank_tolerance,
    singular_values,
    skip_reason,
    spectrum_metrics,
)
from striate.analyses.stats import tensor_stats
from striate.anatomy import TensorAnatomy
from striate.anatomy.heads import HeadCounts, head_partition
from striate.checkpoint import Checkpoint, TensorInfo
from striate.errors import StriateError
from striate.progress import progress_bar
from striate.scan.config import ScanConfig
from striate.scan.workers import Clock


@dataclass
class TensorResult:
    """What a scan keeps of one tensor: its row of tensors.parquet, its findings, its status in
    the manifest, and what the model-level passes need (singular values, residual evidence).

    `banding` and `matrix_shape` serve the tensor's figures only and are not cached.
    """

    row: dict[str, Any]
    findings: list[Finding]
    status: dict[str, Any] = field(default_factory=lambda: {"status": "done"})
    singular_values: np.ndarray | None = None  # of the tensor viewed as a matrix, descending
    residual_z: np.ndarray | None = None  # (d,) signed z of each residual dim (analyses.residual)
    images: dict[str, str] = field(default_factory=dict)  # image drawn -> its digest (the cache)
    matrix_shape: tuple[int, int] | None = None  # the shape `singular_values` are of
    banding: Banding | None = None  # of a conv kernel of at least min_kernel x min_kernel

    @property
    def failed(self) -> bool:
        return self.status.get("status") == "failed"


def analyse_tensor(
    w: np.ndarray,
    part: TensorAnatomy,
    heads: HeadCounts,
    config: ScanConfig,
    seconds: dict[str, float] | None = None,
) -> TensorResult:
    """Stats and every analysis the tensor's role and shape call for. Pure: no I/O. With
    `seconds`, each analysis adds the time it took under its name (see `STAGES`)."""
    clock = Clock(seconds)
    with clock("stats"):
        row: dict[str, Any] = dict(tensor_stats(w))
        found: list[Finding] = find_nonfinite(w, config.nonfinite)
    if part.role in ("norm", "norm_bias") and w.ndim == 1:
        label = "gain" if part.role == "norm" else "bias"
        with clock("norms"):
            found += find_norm_outliers(w, config.norms, label=label)
    residual_z = None
    if w.ndim >= 2:
        axes = line_axes(w.ndim, part.layout)
        with clock("lines"):
            lines, z = analyse_lines(w, config.lines, axes=axes)
        found += lines
        if part.residual_axis in z:
            residual_z = z[part.residual_axis]
        with clock("hotspots"):
            found += find_hotspots(w, config.hotspots, axes=axes)
    elif w.ndim == 1 and part.residual_axis == 0:
        residual_z = vector_z(w, config.residual)
    include = config.periodicity.include
    if w.ndim >= 2 and (
        part.role == "position_embedding" or (include and re.search(include, part.name))
    ):
        with clock("periodicity"):
            periodic, _ = find_periodic(w, config.periodicity, position_axis=w.ndim - 2)
        found += periodic
    blocks = head_partition(w.shape, part, heads)
    row["head_score"] = None
    if blocks is not None:
        with clock("heads"):
            by_head = head_blocks(w, blocks[0], blocks[1], config.heads)
        row["head_score"] = float(by_head.score)
        found += by_head.findings
    with clock("banding"):
        banding = _banding(w, part, config.banding, row)
    if banding is not None:
        finding = bands.banding_finding(banding)
        found += [] if finding is None else [finding]
    result = TensorResult(row, found, banding=banding, residual_z=residual_z)
    result.singular_values, result.matrix_shape = analyse_spectrum(
        w, part, config.spectrum, row, clock
    )
    return result


def spectrum_matrix(
    w: np.ndarray, part: TensorAnatomy, config: SpectrumConfig, row: dict[str, Any]
) -> np.ndarray | None:
    """`w` viewed as the matrix whose spectrum describes it, or None with
    `row["spectrum_skipped"]` saying why it gets none. `row` holds the tensor's stats
    (`n_nan`, `n_inf`)."""
    matrix = as_matrix(w, part.layout)
    row["spectrum_skipped"] = "not a matrix" if matrix is None else None
    if matrix is None:
        return None
    row["spectrum_skipped"] = skip_reason(matrix_shape(matrix), config)
    n_bad = int(row.get("n_nan", 0)) + int(row.get("n_inf", 0))
    if row["spectrum_skipped"] is None and n_bad:
        row["spectrum_skipped"] = f"{n_bad} non-finite values (see the nonfinite finding)"
    return None if row["spectrum_skipped"] is not None else matrix


def matrix_shape(matrix: np.ndarray) -> tuple[int, int]:
    return int(matrix.shape[0]), int(matrix.shape[1])


def analyse_spectrum(
    w: np.ndarray,
    part: TensorAnatomy,
    config: SpectrumConfig,
    row: dict[str, Any],
    clock: Clock | None = None,
) -> tuple[np.ndarray | None, tuple[int, int] | None]:
    """The singular values of `w` viewed as a matrix (descending) and that matrix's shape, with
    their metrics put into `row`; (None, None) and `row["spectrum_skipped"]` saying why for a
    tensor that gets none (`spectrum_matrix`)."""
    matrix = spectrum_matrix(w, part, config, row)
    if matrix is None:
        return None, None
    shape = matrix_shape(matrix)
    with (clock or Clock(None))("spectrum"):
        s = singular_values(matrix, config.torch_device(), rank_tolerance(shape, config),
                            config.gram)  # fmt: skip
        row |= spectrum_metrics(s, shape, config)
    return s, shape


def _banding(
    w: np.ndarray, part: TensorAnatomy, config: BandingConfig, row: dict[str, Any]
) -> Banding | None:
    """The banding score of a conv kernel (its columns go into `row`), or None."""
    if not config.enabled or part.role != "conv" or w.ndim != 4:
        return None
    kernels = bands.as_oihw(w, part.layout)
    row["banding_skipped"] = bands.skip_reason(kernels, config)
    if row["banding_skipped"] is not None:
        return None
    b = bands.banding_score(kernels, config)
    row |= b.row()
    return b


def line_axes(ndim: int, layout: str | None) -> tuple[int, int]:
    """(out axis, in axis) of a tensor as stored; conv kernels keep their layout."""
    if layout == "hwio" and ndim == 4:
        return 3, 2
    if ndim == 3 and layout is None:
        return ndim - 2, ndim - 1  # e.g. ViT position embeddings [1, n, d]
    return 0, 1


def base_row(info: TensorInfo, part: TensorAnatomy) -> dict[str, Any]:
    """The columns of tensors.parquet every tensor has, failed or not."""
    return {
        "name": info.name,
        "shape": list(info.shape),
        "dtype": info.dtype,
        "role": part.role,
        "layer": part.layer,
        "residual_axis": part.residual_axis,
        "layout": part.layout,
        "file": info.file.name,
        "nbytes": info.nbytes,
        "image": None,
    }


def failure(exc: Exception) -> str:
    """The scan's failure policy: one bad tensor never stops a run, it is recorded with this
    message; a full disk does stop it (the error is raised again)."""
    if store.disk_full(exc):
        raise exc
    return str(exc) if isinstance(exc, StriateError) else f"{type(exc).__name__}: {exc}"


def failed_result(info: TensorInfo, part: TensorAnatomy, exc: Exception) -> TensorResult:
    """The result of a tensor that could not be read or analysed (see `failure`)."""
    row = base_row(info, part) | {"status": "failed"}
    return TensorResult(row, [], {"status": "failed", "error": failure(exc)})


def read_each(
    ckpt: Checkpoint, infos: list[TensorInfo], *, progress: bool, label: str
) -> Iterator[tuple[TensorInfo, np.ndarray | None, str | None]]:
    """The model-level passes' loop: each tensor of `infos` read in turn under a progress bar,
    as (info, values, None), or (info, None, message) for one that cannot be read (`failure`)."""
    with progress_bar(infos, enabled=progress, label=label) as advance:
        for info in infos:
            try:
                w = ckpt.read(info.name)
            except Exception as exc:
                yield info, None, failure(exc)
            else:
                yield info, w, None
            advance(info)
