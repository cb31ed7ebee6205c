"""Spectra inside a scan: the long table of singular values and the spectrum figures."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from striate.scan import TensorResult
    from striate.scan_cache import FigureCall


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


def draw_matrix_spectrum(path: Path, title: str, result: TensorResult) -> None:
    """One matrix's eigenvalue density (log-log, fitted tail, MP bulk edge) and rank plot."""
    from striate.render.spectrum_figures import draw_spectrum

    assert result.singular_values is not None
    draw_spectrum(result.singular_values, result.row, title, path, shape=result.matrix_shape)


def depth_figure_calls(out_dir: Path, tensors: pd.DataFrame) -> dict[str, FigureCall]:
    """Per-layer curves of the spectral metrics, not drawn yet: {path relative to out_dir: call}."""
    from striate.render.spectrum_figures import draw_depth_metrics

    if "stable_rank" not in tensors or tensors["stable_rank"].isna().all():
        return {}
    rel = "images/spectra/depth.png"
    return {rel: (draw_depth_metrics, (tensors, out_dir / rel), {})}
