"""A scanned tensor's pictures: its image, and its spectrum's and banding's when asked.

`draw_images` is what the scan runs for each tensor: in the analysis thread when only the raster
renderer draws (PIL, no global state), in a drawing process with `--jobs` when matplotlib does
(`uses_matplotlib`); `image_name` names every per-tensor picture a run directory holds.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from striate.analyses import banding as bands
from striate.anatomy import TensorAnatomy
from striate.anatomy.heads import HeadCounts
from striate.render import render_part
from striate.render.banding_figures import draw_layer
from striate.render.spectrum_figures import draw_spectrum
from striate.scan.config import ScanConfig
from striate.scan.tensor import TensorResult

#: the columns of tensors.parquet that name a picture of the tensor
IMAGE_COLUMNS = ("image", "spectrum_image", "banding_image")


def image_name(position: int, name: str) -> str:
    """A file name for a tensor's image: its position (unique) and a readable, safe stem."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:120] or "tensor"
    return f"{position:04d}_{stem}.png"


def uses_matplotlib(result: TensorResult, config: ScanConfig) -> bool:
    """Whether any of the tensor's pictures is drawn by matplotlib (global state, holds the GIL)."""
    return (
        config.images.renderer == "matplotlib"
        or (result.singular_values is not None and config.images.spectra)
        or (result.banding is not None and config.banding.images)
    )


def draw_images(
    out_dir: Path,
    position: int,
    w: np.ndarray,
    part: TensorAnatomy,
    result: TensorResult,
    heads: HeadCounts,
    config: ScanConfig,
) -> dict[str, str]:
    """Draw the tensor's image (and its spectrum's and banding's, when asked); the columns
    `image`, `spectrum_image`, `banding_image` with their paths."""
    rel = f"images/{image_name(position, part.name)}"
    render_part(w, out_dir / rel, part, result.findings, heads,
                max_pixels=config.images.max_pixels, renderer=config.images.renderer)  # fmt: skip
    columns = {"image": rel}
    if result.singular_values is not None and config.images.spectra:
        rel = f"images/spectra/{image_name(position, part.name)}"
        draw_spectrum(
            result.singular_values, result.row, part.name, out_dir / rel, shape=result.matrix_shape
        )
        columns["spectrum_image"] = rel
    if result.banding is not None and config.banding.images:
        rel = f"images/banding/{image_name(position, part.name)}"
        view = bands.nmf_view(bands.as_oihw(w, part.layout), seed=config.banding.seed)
        draw_layer(out_dir / rel, part.name, view, result.banding)
        columns["banding_image"] = rel
    return columns
