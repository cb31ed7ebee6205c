"""Spectra inside a scan: the long table of singular values and the depth figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from striate.render.spectrum_figures import draw_depth_metrics
from striate.scan.workers import FigureCall


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
