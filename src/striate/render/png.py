"""Lowering a `FigureSpec` to a PNG with matplotlib's Agg canvas (no pyplot, no global state):
antialiased, about 0.2 s a tensor (`render.raster` is the fast default).

The pixel layout is `render.layout`'s. Every text is drawn verbatim: names like `$x$` or
`a_{b}` are not parsed as math. A panel that fails to draw becomes a visible message; the rest
of the figure still renders.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO, cast

import matplotlib
import numpy as np
import PIL.Image
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

from striate.render.layout import COLORBAR_PX, MARK_PX, PAD_PX, TextBox, layout
from striate.render.spec import (
    CMAP,
    NONFINITE_COLOR,
    OUTLIER_COLOR,
    FigureSpec,
    ImagePanel,
    LinesPanel,
    StripPanel,
)
from striate.render.style import canvas, style
from striate.store import atomic_file

PNG_COMPRESSION = 6  # palette figures; RGB ones (noisy, barely compressible) take level 2


def _edge_transform(ax: Axes, side: str) -> Any:
    if side == "rows":
        return blended_transform_factory(ax.transAxes, ax.transData)
    return blended_transform_factory(ax.transData, ax.transAxes)


def _draw_image(
    fig: Figure, ax: Axes, p: ImagePanel, cax_rect: tuple[float, float, float, float]
) -> None:
    cmap = matplotlib.colormaps[CMAP].with_extremes(bad=NONFINITE_COLOR)
    vmax = p.limit.vmax
    im = ax.imshow(
        p.image,
        cmap=cmap,
        norm=Normalize(-vmax, vmax),
        extent=p.extent,
        interpolation="nearest",
        aspect="auto",
        origin="upper",
    )
    ax.set_xlim(*p.x.lim)
    ax.set_ylim(p.y.lim[1], p.y.lim[0])
    for axis, spec in ((ax.xaxis, p.x), (ax.yaxis, p.y)):
        axis.set_ticks(list(spec.ticks.positions), list(spec.ticks.labels))
    ax.set_xlabel(p.x.label, parse_math=False)
    ax.set_ylabel(p.y.label, parse_math=False)
    styles = {"head": dict(colors="0.15", lw=0.6, alpha=0.7), "tile": dict(colors="0.55", lw=0.3)}
    for kind, look in styles.items():  # one collection per kind: a 512-channel grid is 1 artist
        rows = [r.position for r in p.rules if r.kind == kind and r.side == "rows"]
        cols = [r.position for r in p.rules if r.kind == kind and r.side == "cols"]
        if rows:
            ax.hlines(rows, *p.x.lim, **look)  # type: ignore[arg-type]
        if cols:
            ax.vlines(cols, p.y.lim[1], p.y.lim[0], **look)  # type: ignore[arg-type]
    w_px, h_px = p.size
    for side, marker in (("rows", "<"), ("cols", "v")):
        marks = [m for m in p.edge_marks if m.side == side]
        if not marks:
            continue
        off = 1 + MARK_PX / (w_px if side == "rows" else h_px)
        trans = _edge_transform(ax, side)
        pos = [m.position for m in marks]
        xs, ys = ([off] * len(pos), pos) if side == "rows" else (pos, [off] * len(pos))
        ax.scatter(
            xs,
            ys,
            s=25,
            marker=marker,
            c=[m.color for m in marks],
            linewidths=0,
            transform=trans,
            clip_on=False,
        )
        for m, x, y in zip(marks, xs, ys, strict=True):
            if m.label:
                lx, ly = (x + 6 / w_px, y) if side == "rows" else (x, y + 6 / h_px)
                ax.text(
                    lx,
                    ly,
                    m.label,
                    transform=trans,
                    fontsize=5.5,
                    color=m.color,
                    ha="left" if side == "rows" else "center",
                    va="center" if side == "rows" else "bottom",
                    rotation=0 if side == "rows" else 90,
                    parse_math=False,
                )
    if p.points:
        ax.scatter(
            [m.x for m in p.points],
            [m.y for m in p.points],
            s=60,
            facecolors="none",
            edgecolors=[m.color for m in p.points],
            linewidths=1.0,
            clip_on=False,
        )
    cax = fig.add_axes(cax_rect)
    bar = fig.colorbar(im, cax=cax, extend=p.extend)
    bar.set_label(p.colorbar_label, parse_math=False, fontsize=7)
    bar.outline.set_linewidth(0.5)


def _draw_strip(ax: Axes, p: StripPanel) -> None:
    if p.step == 1:
        ax.plot(p.x, p.lo, lw=0.5, color="0.35")
        if p.x.size <= 4096:
            ax.plot(p.x, p.lo, ls="none", marker=".", ms=1.5, color="#1f4e79")
    else:
        ax.fill_between(p.x, p.lo, p.hi, step="mid", color="#1f4e79", lw=0.3)
    for y, words in p.references:
        ax.axhline(y, color="0.5", lw=0.6, ls="--" if words != "0" else "-", zorder=0)
        ax.text(
            1.005,
            y,
            words,
            transform=_edge_transform(ax, "rows"),
            fontsize=6,
            va="center",
            color="0.35",
            parse_math=False,
            clip_on=False,
        )
    if p.points:
        ax.plot(
            [m.x for m in p.points],
            [m.y for m in p.points],
            ls="none",
            marker="o",
            ms=3.5,
            color=OUTLIER_COLOR,
        )
        for m in p.points:
            if m.label:
                ax.annotate(
                    m.label,
                    (m.x, m.y),
                    xytext=(3, 3),
                    textcoords="offset points",
                    fontsize=6,
                    color=OUTLIER_COLOR,
                    parse_math=False,
                )
    if p.nonfinite:
        ax.plot(
            p.nonfinite,
            [0.0] * len(p.nonfinite),
            ls="none",
            marker="|",
            ms=8,
            color=NONFINITE_COLOR,
            transform=_edge_transform(ax, "cols"),
            clip_on=False,
        )
    ax.set_xlim(*p.xaxis.lim)
    ax.set_ylim(*p.ylim)
    ax.xaxis.set_ticks(list(p.xaxis.ticks.positions), list(p.xaxis.ticks.labels))
    ax.set_xlabel(p.xaxis.label, parse_math=False)
    ax.set_ylabel(p.ylabel, parse_math=False)


def _draw_lines(fig: Figure, ax: Axes, p: LinesPanel) -> None:
    """One thin row per channel, sharing the x axis (overlaid sinusoids are unreadable)."""
    x0, y0, w, h = ax.get_position().bounds
    ax.set_axis_off()  # a frame for the rows, kept so a failure can be written on it
    n = len(p.series)
    for k, s in enumerate(p.series):
        row = fig.add_axes((x0, y0 + h * (n - 1 - k) / n, w, h / n * 0.86))
        row.plot(p.x, s.y, lw=0.7, color=s.color)
        row.axhline(0, color="0.7", lw=0.5, zorder=0)
        row.set_xlim(*p.xaxis.lim)
        row.yaxis.set_major_locator(MaxNLocator(nbins=2, symmetric=True))
        row.tick_params(axis="y", labelsize=5.5)
        row.text(
            1.01,
            0.5,
            f"channel {s.label}",
            transform=row.transAxes,
            va="center",
            fontsize=6.5,
            color=s.color,
            parse_math=False,
        )
        if k < n - 1:
            row.xaxis.set_ticks(list(p.xaxis.ticks.positions), [])
        else:
            row.xaxis.set_ticks(list(p.xaxis.ticks.positions), list(p.xaxis.ticks.labels))
            row.set_xlabel(p.xaxis.label, parse_math=False)
        if k == 0:
            row.set_title(
                f"{p.ylabel} against {p.xaxis.label}", fontsize=7, loc="left", parse_math=False
            )


def build_figure(spec: FigureSpec) -> Figure:
    """The matplotlib Figure for a spec, on its own Agg canvas (never registered with pyplot)."""
    plan = layout(spec)
    width, height = plan.width, plan.height
    fig = canvas(width / spec.dpi, height / spec.dpi, dpi=spec.dpi)

    def text(box: TextBox, **look: Any) -> None:
        fig.text(PAD_PX / width, 1 - box.top / height, box.text, fontsize=box.pt, va="top",
                 parse_math=False, **look)  # fmt: skip

    text(plan.title, weight="bold")
    for box in plan.subtitle:
        text(box, color="0.25")
    for placed in plan.panels:
        panel = placed.panel
        pw, ph = panel.size
        y = height - placed.top - ph  # pixels from the bottom
        ax = fig.add_axes((placed.left / width, y / height, pw / width, ph / height))
        n_axes = len(fig.axes)
        try:
            if isinstance(panel, ImagePanel):
                assert placed.colorbar_left is not None
                bar = placed.colorbar_left / width
                _draw_image(fig, ax, panel, (bar, y / height, COLORBAR_PX[1] / width, ph / height))
            elif isinstance(panel, StripPanel):
                _draw_strip(ax, panel)
            elif isinstance(panel, LinesPanel):
                _draw_lines(fig, ax, panel)
            else:
                ax.set_axis_off()
                ax.text(
                    0.5,
                    0.5,
                    "\n".join(panel.lines),
                    ha="center",
                    va="center",
                    fontsize=9,
                    parse_math=False,
                )
        except Exception as exc:  # one broken panel must not lose the figure
            for extra in fig.axes[n_axes:]:
                extra.remove()
            ax.clear()
            ax.set_axis_off()
            ax.text(
                0.5,
                0.5,
                f"could not draw this panel:\n{type(exc).__name__}: {exc}",
                ha="center",
                va="center",
                color="#b00000",
                parse_math=False,
                wrap=True,
            )
    for box in plan.notes:
        text(box, color="0.2")
    return fig


def _encode(fig: Figure, out: BinaryIO, palette: bool = True) -> None:
    """PNG of the figure. `palette`: 256 colours chosen for the figure (PIL's fast octree, no
    dithering; colours within a few steps of 255, a third of RGB's bytes), for figures read
    by eye; else RGB, every colour as drawn."""
    agg = fig.canvas
    assert isinstance(agg, FigureCanvasAgg)
    agg.draw()  # type: ignore[no-untyped-call]
    image = PIL.Image.fromarray(np.asarray(agg.buffer_rgba())[..., :3])  # type: ignore[no-untyped-call]
    if palette:
        image = image.quantize(256, method=PIL.Image.Quantize.FASTOCTREE,
                               dither=PIL.Image.Dither.NONE)  # fmt: skip
    image.save(out, format="png", compress_level=PNG_COMPRESSION if palette else 2)


def save_figure(fig: Figure, path: str | os.PathLike[str], *, palette: bool = True) -> None:
    """Write `fig` to `path` as PNG with striate's encoder, atomically; then release it."""
    try:
        with atomic_file(Path(path)) as out:
            _encode(fig, cast("BinaryIO", out), palette)
    finally:
        fig.clear()  # break the figure's reference cycles now, not at the next gc


def draw_png(spec: FigureSpec, path: str | os.PathLike[str]) -> None:
    """Write the figure of `spec` to `path` as PNG, atomically (a temp file, then a rename)."""
    with style():
        save_figure(build_figure(spec), path, palette=False)


__all__ = ["build_figure", "draw_png", "save_figure"]
