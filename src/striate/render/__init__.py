"""Tensor images: a weight tensor in, a PNG fit for a paper out.

Three stages, each usable alone: numbers -> `describe_figure` -> a `FigureSpec` of plain
dataclasses (downsampled image, extents, colour limit, ticks, marks) -> pixels, by
`draw_raster` (PIL: fast, palette PNGs; the default) or `draw_png` (matplotlib: antialiased).
The scale rule (`color_limit`) and the downsampling (`block_extreme`, `envelope`) are pure
functions.

    >>> import numpy as np
    >>> from striate.render import render_tensor
    >>> w = np.random.default_rng(0).normal(0, 0.02, (768, 3072)).astype(np.float32)
    >>> render_tensor(w, tmp / "c_fc.png", title="h.0.mlp.c_fc.weight",   # doctest: +SKIP
    ...               role="ffn_in", layout="conv1d", residual_axis=0)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from striate._lazy import exports

if TYPE_CHECKING:  # imported on first use (below)
    from striate.render.describe import describe_figure
    from striate.render.downsample import Downsampled, Envelope, block_extreme, envelope
    from striate.render.png import draw_png
    from striate.render.raster import draw_raster
    from striate.render.scale import ColorLimit, color_limit
    from striate.render.spec import MAX_PIXELS, FigureSpec
    from striate.render.tensor_image import RENDERERS, render_part, render_tensor

__getattr__ = exports(
    __name__,
    {
        "MAX_PIXELS": "striate.render.spec:MAX_PIXELS",
        "FigureSpec": "striate.render.spec:FigureSpec",
        "RENDERERS": "striate.render.tensor_image:RENDERERS",
        "render_part": "striate.render.tensor_image:render_part",
        "render_tensor": "striate.render.tensor_image:render_tensor",
        "describe_figure": "striate.render.describe:describe_figure",
        "Downsampled": "striate.render.downsample:Downsampled",
        "Envelope": "striate.render.downsample:Envelope",
        "block_extreme": "striate.render.downsample:block_extreme",
        "envelope": "striate.render.downsample:envelope",
        "draw_png": "striate.render.png:draw_png",
        "draw_raster": "striate.render.raster:draw_raster",
        "ColorLimit": "striate.render.scale:ColorLimit",
        "color_limit": "striate.render.scale:color_limit",
    },
)

__all__ = [
    "MAX_PIXELS",
    "RENDERERS",
    "ColorLimit",
    "Downsampled",
    "Envelope",
    "FigureSpec",
    "block_extreme",
    "color_limit",
    "describe_figure",
    "draw_png",
    "draw_raster",
    "envelope",
    "render_part",
    "render_tensor",
]
