"""Numbers to a figure description: `describe_figure(w, ...) -> FigureSpec`, nothing drawn.

Every scale, extent, tick and mark is decided here, by pure functions, so tests can check them
as numbers; `draw_png` only lowers the description to pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from matplotlib.ticker import MaxNLocator

from striate.analyses.finding import Finding
from striate.anatomy.records import LAYOUTS
from striate.errors import StriateError
from striate.render.downsample import Downsampled, block_extreme, block_step, envelope
from striate.render.marks import (
    MAX_MARKS,
    head_rules,
    place_on_image,
    place_on_strip,
    tile_rules,
)
from striate.render.scale import color_limit, format_limit
from striate.render.spec import (
    MAX_PIXELS,
    NONFINITE_COLOR,
    AxisSpec,
    EdgeMark,
    FigureSpec,
    ImagePanel,
    LinesPanel,
    Panel,
    PointMark,
    Series,
    Side,
    StripPanel,
    TextPanel,
    Ticks,
)
from striate.render.view import DisplayAxis, TensorView, axis_label, axis_names, view_of

MIN_LONG_PX = 640  # small tensors are blown up to at least this long side on screen
MIN_SHORT_PX = 256
MAX_RATIO = 4.0  # a 50,257 x 768 embedding is drawn 4:1, not as a 65:1 sliver
TICK_SPACING_PX = 110
STRIP_PX = (900, 300)
LINES_WIDTH_PX, LINES_ROW_PX = 900, 64  # one row of this height per channel
MAX_SERIES = 8
SERIES_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
)


def image_area(h: int, w: int, max_pixels: int) -> tuple[int, int]:
    """On-screen (width, height) for an image of h x w pixels.

    Each side is a whole multiple of the image's (so pixels are drawn uniform, and none, nor a
    hotspot, is dropped); small images are blown up to about `MIN_LONG_PX`; the short side is
    stretched until the aspect ratio is at most `MAX_RATIO`.

    >>> image_area(1021, 800, 1024), image_area(1024, 64, 1024), image_area(8, 8, 1024)
    ((800, 1021), (256, 1024), (640, 640))
    """
    long, short = max(h, w), min(h, w)
    scale = max(1, round(min(MIN_LONG_PX, max_pixels) / long))
    long_px = long * scale
    short_target = max(long_px / MAX_RATIO, min(MIN_SHORT_PX, long_px))
    short_px = short * max(scale, math.ceil(short_target / short))
    return (short_px, long_px) if h >= w else (long_px, short_px)


def index_ticks(axis: DisplayAxis, px: int) -> Ticks:
    """Ticks at round storage indices of the axis's outer stored axis, about one per
    `TICK_SPACING_PX` pixels, placed at the centre of that index's block of display units.

    >>> index_ticks(DisplayAxis((0, 2), (64, 3)), 512)
    Ticks(positions=(1.0, 61.0, 121.0, 181.0), labels=('0', '20', '40', '60'))
    """
    n, unit = axis.sizes[0], axis.unit
    nbins = max(3, px // TICK_SPACING_PX)
    locator = MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10], integer=True, min_n_ticks=2)
    values = locator.tick_values(0, n - 1)
    kept = [round(float(v)) for v in values if 0 <= v <= n - 1]
    return Ticks(tuple(i * unit + (unit - 1) / 2 for i in kept), tuple(str(i) for i in kept))


def tile_step(axis: DisplayAxis, max_pixels: int) -> int:
    """Downsampling step of a display axis: whole tiles (kernels) per block once it must shrink,
    so no pixel mixes two kernels.

    >>> tile_step(DisplayAxis((1, 3), (512, 3)), 1024), tile_step(DisplayAxis((1,), (3000,)), 1024)
    (3, 3)
    """
    step = block_step(axis.length, max_pixels)
    if step == 1 or axis.unit == 1:
        return step
    return axis.unit * block_step(axis.sizes[0], max_pixels)


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


def _nonfinite_note(w: np.ndarray) -> str:
    counts = [
        f"{n} {word}"
        for n, word in (
            (np.isnan(w).sum(), "NaN"),
            (np.isposinf(w).sum(), "+Inf"),
            (np.isneginf(w).sum(), "-Inf"),
        )
        if n
    ]
    return "green: non-finite values (" + ", ".join(counts) + ")"


def _extend(lo: float, hi: float, vmax: float) -> str:
    below, above = bool(lo < -vmax), bool(hi > vmax)
    return {(False, False): "neither", (True, False): "min", (False, True): "max"}.get(
        (below, above), "both"
    )


def _nonfinite_points(ds: Downsampled, view: TensorView) -> tuple[PointMark, ...]:
    """Circles around the few pixels that hold NaN/Inf (a lone NaN is one pixel in a million)."""
    where = np.argwhere(np.isnan(ds.image))
    if not 0 < len(where) <= MAX_MARKS:
        return ()
    return tuple(
        PointMark(
            min((j + 0.5) * ds.col_step - 0.5, view.cols.length - 1.0),
            min((i + 0.5) * ds.row_step - 0.5, view.rows.length - 1.0),
            "",
            "nonfinite",
            NONFINITE_COLOR,
        )
        for i, j in where
    )


def _image(
    w: np.ndarray,
    view: TensorView,
    names: dict[int, str],
    findings: Sequence[Finding],
    head_blocks: tuple[int, int] | None,
    max_pixels: int,
) -> tuple[ImagePanel, list[str], list[str]]:
    steps = (tile_step(view.rows, max_pixels), tile_step(view.cols, max_pixels))
    ds = block_extreme(view.arrange(w), max_pixels, steps=steps)
    h, wd = ds.image.shape
    size = image_area(h, wd, max_pixels)
    shrunk = ds.row_step * ds.col_step > 1
    limit = color_limit(ds.image, of="|pixels|" if shrunk else "|w|")
    whole = view.tiled and ds.row_step % view.rows.unit == 0 and ds.col_step % view.cols.unit == 0

    def spec(axis: DisplayAxis, px: int) -> AxisSpec:
        words = [axis_label(axis.axes[0], axis.sizes[0], names)]
        if not view.tiled:
            words += [
                axis_label(a, n, names) for a, n in zip(axis.axes[1:], axis.sizes[1:], strict=True)
            ]
        return AxisSpec(" × ".join(words), (-0.5, axis.length - 0.5), index_ticks(axis, px))

    placed = place_on_image(view, findings)
    heads, head_notes = head_rules(view, head_blocks)
    how = (
        f"each pixel: the value of largest |w| in a block of {ds.row_step} × {ds.col_step}"
        + (" (whole kernels)" if whole else "")
        if shrunk
        else "one pixel per weight"
    )
    sub = [f"min {ds.lo:.3g} · max {ds.hi:.3g} · {how}"]
    if view.tiled:
        tiles = " × ".join(str(n) for n in (*view.rows.sizes[1:], *view.cols.sizes[1:]))
        inner = [str(a) for a in (*view.rows.axes[1:], *view.cols.axes[1:])]
        axes = f"axis {inner[0]}" if len(inner) == 1 else f"axes {', '.join(inner)}"
        sub.append(f"each tile: one {tiles} kernel ({axes})")
    notes = list(placed.notes) + list(head_notes)
    if view.note:
        notes.append(view.note)
    nonfinite = _nonfinite_points(ds, view)
    if np.isnan(ds.image).any():
        notes.append(_nonfinite_note(w) + (", circled in green" if nonfinite else ""))
    panel = ImagePanel(
        image=ds.image,
        extent=(-0.5, wd * ds.col_step - 0.5, h * ds.row_step - 0.5, -0.5),
        x=spec(view.cols, size[0]),
        y=spec(view.rows, size[1]),
        limit=limit,
        colorbar_label="w, " + format_limit(limit).replace(" (", "\n("),
        extend=_extend(ds.lo, ds.hi, limit.vmax),
        edge_marks=placed.edges,
        points=placed.points + nonfinite,
        rules=heads + tile_rules(view, size),
        size=size,
    )
    return panel, sub, notes


def _strip(
    w: np.ndarray, axis: int, names: dict[int, str], findings: Sequence[Finding], max_pixels: int
) -> tuple[StripPanel, list[str], list[str]]:
    v = np.asarray(w, dtype=np.float64).reshape(-1)
    env = envelope(v, min(max_pixels, STRIP_PX[0]))
    finite = v[np.isfinite(v)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
    pad = 0.06 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.5
    refs: list[tuple[float, str]] = []
    if lo - pad <= 0 <= hi + pad:
        refs.append((0.0, "0"))
    if finite.size:
        med = float(np.median(finite))
        if abs(med) > 0.05 * (hi - lo):
            refs.append((med, f"median {med:.3g}"))
    points, notes = place_on_strip(v, axis, w.ndim, findings)
    if env.nonfinite.size:
        notes = (*notes, _nonfinite_note(v).replace("green:", "green ticks:"))
    how = "one point per value" if env.step == 1 else f"min-max envelope of blocks of {env.step}"
    n = v.size
    xaxis = AxisSpec(
        axis_label(axis, n, names),
        (-0.5, n - 0.5),
        index_ticks(DisplayAxis((axis,), (n,)), STRIP_PX[0]),
    )
    panel = StripPanel(
        x=env.x,
        lo=env.lo,
        hi=env.hi,
        step=env.step,
        xaxis=xaxis,
        ylabel="w",
        ylim=(lo - pad, hi + pad),
        points=points,
        nonfinite=tuple(float(i) for i in env.nonfinite[:500]),
        references=tuple(refs),
        size=STRIP_PX,
    )
    return panel, [f"min {lo:.3g} · max {hi:.3g} · {how}"], list(notes)


def _channels(
    w: np.ndarray,
    view: TensorView,
    names: dict[int, str],
    channels: Sequence[int],
    residual_axis: int | None,
) -> tuple[LinesPanel | None, tuple[EdgeMark, ...], list[str]]:
    """Chosen channels of a 2-D picture as lines against the other axis (position)."""
    if view.tiled or len(view.rows.axes) + len(view.cols.axes) != 2:
        return None, (), ["periodic channels need a plain 2-D tensor; not drawn"]
    across = view.rows.axes[0] == residual_axis  # channels index the rows
    chan, pos = (view.rows, view.cols) if across else (view.cols, view.rows)
    pic = view.arrange(w)
    good = [c for c in dict.fromkeys(channels) if 0 <= c < chan.length][:MAX_SERIES]
    notes = []
    if len(good) < len(list(channels)):
        notes.append(
            f"{len(list(channels)) - len(good)} periodic channels left out "
            f"(out of range or past {MAX_SERIES})"
        )
    if not good:
        return None, (), notes
    series = tuple(
        Series(f"{c}", np.asarray(pic[c, :] if across else pic[:, c], dtype=np.float64), color)
        for c, color in zip(good, SERIES_COLORS, strict=False)
    )
    n = pos.length
    xaxis = AxisSpec(
        axis_label(pos.axes[0], n, names), (-0.5, n - 0.5), index_ticks(pos, LINES_WIDTH_PX)
    )
    side: Side = "rows" if across else "cols"
    marks = tuple(
        EdgeMark(side, float(s.label), s.label, "periodic channel", s.color) for s in series
    )
    notes.append(
        f"lower panel: channels {', '.join(s.label for s in series)} of axis "
        f"{chan.axes[0]} against axis {pos.axes[0]}; matching ticks on the picture"
    )
    size = (LINES_WIDTH_PX, LINES_ROW_PX * len(series))
    return LinesPanel(np.arange(n, dtype=np.float64), series, xaxis, "w", size), marks, notes


def describe_figure(
    w: np.ndarray,
    *,
    title: str,
    role: str = "other",
    layout: str | None = None,
    residual_axis: int | None = None,
    findings: Sequence[Finding] = (),
    head_blocks: tuple[int, int] | None = None,
    periodic_channels: Sequence[int] = (),
    max_pixels: int = MAX_PIXELS,
) -> FigureSpec:
    """Describe the figure of one tensor `w` (storage coordinates, any rank): see `render_tensor`.

    >>> spec = describe_figure(np.eye(3, dtype=np.float32), title="eye")
    >>> spec.panels[0].extent, spec.panels[0].limit.vmax
    ((-0.5, 2.5, 2.5, -0.5), 1.0)
    """
    if layout is not None and layout not in LAYOUTS:
        raise StriateError(f"unknown layout {layout!r}", tensor=title, hint=f"use one of {LAYOUTS}")
    if max_pixels < 8:
        raise StriateError(f"max_pixels={max_pixels} is too small", tensor=title, hint="use >= 8")
    w = np.asarray(w)
    head = f"shape {_shape(w.shape)} · {w.dtype} · role {role}" + (
        f" · layout {layout}" if layout else ""
    )
    if w.dtype not in (np.float32, np.float64):  # ints, bools, float16 (imshow wants 32+ bits)
        w = w.astype(np.float32)
    if residual_axis is not None and not 0 <= residual_axis < w.ndim:
        residual_axis = None
    names = axis_names(w.shape, layout, role, residual_axis)
    live = [a for a in range(w.ndim) if w.shape[a] > 1]
    panels: list[Panel] = []
    notes: list[str] = []
    if w.size <= 1:
        text = (
            "empty tensor: no values"
            if w.size == 0
            else f"a single value: {float(w.reshape(-1)[0]):.7g}"
        )
        panels.append(TextPanel((text,), (640, 120)))
        sub: list[str] = []
    elif len(live) == 1:
        strip, sub, notes = _strip(w, live[0], names, findings, max_pixels)
        panels.append(strip)
    else:
        view = view_of(w.shape, layout)
        image, sub, notes = _image(w, view, names, findings, head_blocks, max_pixels)
        panels.append(image)
        if periodic_channels:
            lines, marks, more = _channels(w, view, names, periodic_channels, residual_axis)
            notes += more
            if lines is not None:
                panels[0] = _with_marks(image, marks)
                panels.append(lines)
    return FigureSpec(title, (head, *sub), tuple(panels), tuple(notes))


def _with_marks(panel: ImagePanel, marks: tuple[EdgeMark, ...]) -> ImagePanel:
    return replace(panel, edge_marks=panel.edge_marks + marks)
