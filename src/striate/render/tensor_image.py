"""`render_tensor` and `render_part`: one tensor to a PNG, by describing it and lowering the
description with a renderer of `RENDERERS` (imported when first used: the raster renderer never
loads matplotlib's axes)."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from striate.analyses.finding import Finding
from striate.anatomy import TensorAnatomy
from striate.anatomy.heads import HeadCounts, head_partition
from striate.errors import StriateError
from striate.render.describe import describe_figure
from striate.render.spec import MAX_PIXELS

#: how a spec becomes a PNG, by name (`images.renderer` of a scan): (module, function)
RENDERERS = {"raster": ("striate.render.raster", "draw_raster"),
             "matplotlib": ("striate.render.png", "draw_png")}  # fmt: skip


def render_tensor(
    w: np.ndarray,
    path: Path,
    *,
    title: str,
    role: str = "other",
    layout: str | None = None,
    residual_axis: int | None = None,
    findings: Sequence[Finding] = (),
    head_blocks: tuple[int, int] | None = None,
    periodic_channels: Sequence[int] = (),
    max_pixels: int = MAX_PIXELS,
    renderer: str = "raster",
) -> None:
    """Draw one tensor to a PNG at `path` (written atomically) with a renderer of `RENDERERS`.

    `w` is the tensor as stored (any rank; float32 or anything numpy casts to it). Matrices are
    drawn as images (conv kernels [out, in, kh, kw] or [kh, kw, in, out] as a grid of kernel
    tiles), vectors as value-vs-index strips, scalars and empty tensors as a text card. Axes
    are labelled in storage coordinates, `residual_axis` is named, `findings` (of this tensor,
    in its storage coordinates) are marked, `head_blocks` = (n_blocks, head_axis) draws head
    boundaries, `periodic_channels` adds a panel of those channels as lines. Images larger
    than `max_pixels` on a side are shrunk keeping each block's largest-|w| value.
    """
    spec = describe_figure(
        w, title=title, role=role, layout=layout, residual_axis=residual_axis,
        findings=findings, head_blocks=head_blocks, periodic_channels=periodic_channels,
        max_pixels=max_pixels,
    )  # fmt: skip
    if renderer not in RENDERERS:
        raise StriateError(f"unknown renderer {renderer!r}", hint=f"one of {', '.join(RENDERERS)}")
    module, function = RENDERERS[renderer]
    getattr(importlib.import_module(module), function)(spec, path)


def render_part(
    w: np.ndarray,
    path: Path,
    part: TensorAnatomy,
    findings: Sequence[Finding] = (),
    heads: HeadCounts | None = None,
    *,
    max_pixels: int = MAX_PIXELS,
    renderer: str = "raster",
) -> None:
    """Draw a tensor as a scan draws it: its anatomy names the axes and the residual stream,
    `heads` (when the model says) draws head boundaries, and the channels of its periodic
    findings get a panel of lines."""
    periodic = [f.index[-1] for f in findings if f.kind == "periodic" and f.index[-1] is not None]
    render_tensor(
        w,
        path,
        title=part.name,
        role=part.role,
        layout=part.layout,
        residual_axis=part.residual_axis,
        findings=findings,
        head_blocks=None if heads is None else head_partition(w.shape, part, heads),
        periodic_channels=[int(c) for c in periodic[:4]],
        max_pixels=max_pixels,
        renderer=renderer,
    )


__all__ = ["RENDERERS", "render_part", "render_tensor"]
