"""Lowering a `FigureSpec` to a PNG with PIL alone: the scan's tensor images, fast and small.

The image is colour-mapped by table lookup (matplotlib's RdBu_r resampled to `LEVELS` colours,
computed once) and blown up by whole pixels, so every weight gets the colour matplotlib would
give it with that map; axes, ticks, marks, rules, the colourbar and the texts are drawn with PIL's
`ImageDraw` (lines are not antialiased; `render.png` draws the same spec antialiased with
matplotlib, at ten times the cost). The layout is `render.layout`'s; texts are drawn verbatim
in DejaVu Sans (matplotlib's font file). A panel that fails to draw becomes a visible message.

The PNG is a palette image, 8 bits a pixel (a third of RGB's bytes before compression): the
map's colours and the colour of non-finite values exactly, then greys and the marks' colours;
the antialiased edges of texts and rules take the nearest of them.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, cast

import matplotlib
import matplotlib.colors
import numpy as np
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw, ImageFont

from striate.render.describe import SERIES_COLORS
from striate.render.layout import COLORBAR_PX, MARK_PX, PAD_PX, Layout, TextBox, layout
from striate.render.spec import (
    CMAP,
    KIND_COLORS,
    NONFINITE_COLOR,
    OTHER_KIND_COLOR,
    OUTLIER_COLOR,
    FigureSpec,
    ImagePanel,
    LinesPanel,
    Panel,
    StripPanel,
)
from striate.store import atomic_file

RGB = tuple[int, int, int]
WHITE, BLACK = (255, 255, 255), (0, 0, 0)
STRIP_BLUE = "#1f4e79"
MARK_COLORS = (*KIND_COLORS.values(), OTHER_KIND_COLOR, *SERIES_COLORS)
LEVELS = 128  # colours of the map: steps of 1/64 of the colour limit
PNG_COMPRESSION = 6  # palette images compress well; level 6 costs little at one byte a pixel


@functools.cache
def rgb(color: str) -> RGB:
    """A colour as matplotlib names it ('#d62728', '0.35', 'k') as 8-bit RGB."""
    r, g, b = matplotlib.colors.to_rgb(color)
    return round(r * 255), round(g * 255), round(b * 255)


@functools.cache
def colormap_table() -> np.ndarray:
    """(LEVELS + 1, 3) uint8: the map's colours, then the colour of non-finite values."""
    cmap = matplotlib.colormaps[CMAP].resampled(LEVELS)
    table = np.round(cmap(np.arange(LEVELS))[:, :3] * 255).astype(np.uint8)
    return np.vstack([table, np.array(rgb(NONFINITE_COLOR), np.uint8)])


def color_index(values: np.ndarray, vmax: float) -> np.ndarray:
    """Index into `colormap_table()` of each value on the symmetric scale [-vmax, vmax], as
    matplotlib's Normalize and a LEVELS-colour map pick it (ends saturate; NaN -> LEVELS)."""
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = (np.asarray(values, np.float64) + vmax) / (2 * vmax) * LEVELS
        index = np.clip(np.floor(scaled), 0, LEVELS - 1)
    return np.where(np.isnan(index), LEVELS, index).astype(np.intp)


@functools.cache
def palette_colors() -> np.ndarray:
    """(n, 3) uint8, the PNG's palette: the map and non-finite colours, 64 greys, the marks'."""
    greys = np.repeat(np.round(np.linspace(0, 255, 64)).astype(np.uint8)[:, None], 3, axis=1)
    named = [OUTLIER_COLOR, STRIP_BLUE, "#b00000", *MARK_COLORS]
    colors = np.vstack([colormap_table(), greys, np.array([rgb(c) for c in named], np.uint8)])
    assert len(colors) < 256  # 255 marks "not in the palette" in `palette_index`
    return colors


@functools.cache
def _exact_index() -> np.ndarray:
    """Palette index of every 24-bit colour that is in the palette; 255 for the others."""
    table = np.full(1 << 24, 255, np.uint8)
    colors = palette_colors().astype(np.int64)
    keys = colors[:, 0] << 16 | colors[:, 1] << 8 | colors[:, 2]
    table[keys[::-1]] = np.arange(len(colors), dtype=np.uint8)[::-1]  # first entry wins
    return table


def palette_index(pixels: np.ndarray) -> np.ndarray:
    """(h, w) uint8: each RGB pixel's index in `palette_colors()`, exact for the palette's own
    colours, the nearest colour for the rest (antialiased edges of texts and lines)."""
    c = pixels.astype(np.int32)
    keys = c[..., 0] << 16 | c[..., 1] << 8 | c[..., 2]
    index = _exact_index()[keys]
    other = index == 255
    if other.any():
        colors, where = np.unique(keys[other], return_inverse=True)
        rgb = np.stack([colors >> 16, colors >> 8 & 255, colors & 255], axis=1)
        gap = ((rgb[:, None, :] - palette_colors()[None].astype(np.int32)) ** 2).sum(-1)
        index[other] = gap.argmin(1).astype(np.uint8)[where.reshape(-1)]
    return cast("np.ndarray", index)


def image_pixels(p: ImagePanel) -> np.ndarray:
    """The panel's data area as (height, width, 3) uint8: each screen pixel the colour of the
    image pixel under its centre (extent and limits as matplotlib's imshow takes them)."""
    pw, ph = p.size
    h, w = p.image.shape
    left, right, bottom, top = p.extent

    def under(lim: tuple[float, float], n_px: int, lo: float, hi: float, n: int) -> np.ndarray:
        centres = lim[0] + (np.arange(n_px) + 0.5) * (lim[1] - lim[0]) / n_px
        return np.clip(np.floor((centres - lo) / (hi - lo) * n), 0, n - 1).astype(np.intp)

    cols = under(p.x.lim, pw, left, right, w)
    rows = under(p.y.lim, ph, top, bottom, h)
    index = color_index(p.image, p.limit.vmax)
    return cast("np.ndarray", colormap_table()[index[rows][:, cols]])


@functools.cache
def font(points: float, dpi: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    path = Path(matplotlib.get_data_path(), "fonts", "ttf", name)
    return ImageFont.truetype(str(path), max(6, round(points * dpi / 72)))


def nice_ticks(lo: float, hi: float, nbins: int, symmetric: bool = False) -> list[float]:
    """Round tick values inside [lo, hi] (matplotlib's MaxNLocator, no axis needed)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return []
    locator = MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10], symmetric=symmetric)
    eps = (hi - lo) * 1e-9
    return [float(v) for v in locator.tick_values(lo, hi) if lo - eps <= v <= hi + eps]


def tick_label(value: float, ticks: Sequence[float]) -> str:
    """A tick's label with as many decimals as the step between ticks needs."""
    step = min((abs(b - a) for a, b in itertools.pairwise(ticks)), default=0.0)
    if step and (step < 1e-3 or abs(value) >= 1e5):
        text = f"{value:.2g}"
    else:
        decimals = 0 if not step else max(0, math.ceil(-math.log10(step) - 1e-9))
        if step and abs(round(step * 10**decimals) - step * 10**decimals) > 1e-6:
            decimals += 1  # 0.25, 2.5e-3
        text = f"{value:.{decimals}f}"
    return "0" if float(text) == 0 else text.replace("-", "\u2212")


class Canvas:
    """A white RGB image with striate's text and line helpers (positions in pixels)."""

    def __init__(self, width: int, height: int, dpi: int) -> None:
        self.image = Image.new("RGB", (width, height), WHITE)
        self.draw = ImageDraw.Draw(self.image)
        self.dpi = dpi

    def text(self, xy: tuple[float, float], text: str, points: float, *, color: str = "black",
             anchor: str = "la", bold: bool = False, rotate: bool = False) -> None:  # fmt: skip
        """Draw `text` verbatim; `anchor` is PIL's (first letter horizontal: l, m, r; second
        vertical: a top, m middle, d bottom); `rotate` turns it 90 degrees counter-clockwise,
        the anchor applying to the turned text."""
        f = font(points, self.dpi, bold)
        if not rotate:
            if "\n" in text:  # PIL's multiline anchors: only top/bottom, so place by hand
                box = self.draw.multiline_textbbox((0, 0), text, font=f, anchor=anchor[0] + "a")
                dy = {"a": 0.0, "m": -(box[3] - box[1]) / 2, "d": -(box[3] - box[1])}[anchor[1]]
                self.draw.multiline_text((xy[0], xy[1] + dy), text, fill=rgb(color), font=f,
                                         anchor=anchor[0] + "a", align=_align(anchor))  # fmt: skip
            else:
                self.draw.text(xy, text, fill=rgb(color), font=f, anchor=anchor)
            return
        box = self.draw.multiline_textbbox((0, 0), text, font=f, anchor="la")
        w, h = int(box[2]) + 2, int(box[3]) + 2
        tile = Image.new("L", (w, h), 0)
        ImageDraw.Draw(tile).multiline_text((0, 0), text, fill=255, font=f, anchor="la",
                                            align="center")  # fmt: skip
        tile = tile.transpose(Image.Transpose.ROTATE_90)  # now h wide, w tall
        x = {"l": xy[0], "m": xy[0] - h / 2, "r": xy[0] - h}[anchor[0]]
        y = {"a": xy[1], "m": xy[1] - w / 2, "d": xy[1] - w}[anchor[1]]
        self.image.paste(Image.new("RGB", tile.size, rgb(color)), (round(x), round(y)), tile)

    def frame(self, left: float, top: float, size: tuple[int, int]) -> None:
        x0, y0 = round(left) - 1, round(top) - 1
        self.draw.rectangle((x0, y0, x0 + size[0] + 1, y0 + size[1] + 1), outline=BLACK)


def _align(anchor: str) -> str:
    return {"l": "left", "m": "center", "r": "right"}[anchor[0]]


class Axis:
    """Maps data values to pixels along one side of a data area."""

    def __init__(self, lim: tuple[float, float], start: float, length: int, flip: bool) -> None:
        self.lim, self.start, self.length, self.flip = lim, start, length, flip

    def __call__(self, value: float) -> float:
        t = (value - self.lim[0]) / (self.lim[1] - self.lim[0])
        return self.start + (1 - t if self.flip else t) * self.length

    def inside(self, value: float) -> bool:
        lo, hi = sorted(self.lim)
        return lo <= value <= hi


def _x_ticks(c: Canvas, x: Axis, bottom: float, positions: Sequence[float],
             labels: Sequence[str] | None, points: float = 7) -> None:  # fmt: skip
    for k, pos in enumerate(positions):
        if not x.inside(pos):
            continue
        px = round(x(pos))
        c.draw.line((px, bottom, px, bottom + 6), fill=BLACK)
        if labels is not None:
            c.text((px, bottom + 9), labels[k], points, anchor="ma")


def _y_ticks(c: Canvas, y: Axis, left: float, positions: Sequence[float],
             labels: Sequence[str], points: float = 7) -> None:  # fmt: skip
    for pos, label in zip(positions, labels, strict=True):
        if not y.inside(pos):
            continue
        py = round(y(pos))
        c.draw.line((left - 6, py, left - 1, py), fill=BLACK)
        c.text((left - 9, py), label, points, anchor="rm")


def _value_ticks(c: Canvas, y: Axis, left: float, nbins: int, *, symmetric: bool = False,
                 points: float = 7) -> None:  # fmt: skip
    lo, hi = sorted(y.lim)
    ticks = nice_ticks(lo, hi, nbins, symmetric)
    _y_ticks(c, y, left, ticks, [tick_label(v, ticks) for v in ticks], points)


def _draw_image(c: Canvas, left: int, top: float, p: ImagePanel, bar_left: int) -> None:
    pw, ph = p.size
    top_px = round(top)
    pixels = image_pixels(p)
    x = Axis(p.x.lim, left, pw, flip=False)
    y = Axis(p.y.lim, top_px, ph, flip=False)  # row 0 at the top
    looks = {"head": (rgb("0.15"), 0.7), "tile": (rgb("0.55"), 1.0)}
    for rule in p.rules:
        color, alpha = looks[rule.kind]
        axis, n = (y, ph) if rule.side == "rows" else (x, pw)
        at = min(n - 1, max(0, round(axis(rule.position) - axis.start)))
        line = pixels[at] if rule.side == "rows" else pixels[:, at]
        line[...] = np.round(alpha * np.array(color) + (1 - alpha) * line).astype(np.uint8)
    c.image.paste(Image.fromarray(pixels), (left, top_px))
    c.frame(left, top_px, p.size)
    bottom = top_px + ph
    _x_ticks(c, x, bottom, p.x.ticks.positions, p.x.ticks.labels)
    _y_ticks(c, y, left, p.y.ticks.positions, p.y.ticks.labels)
    c.text((left + pw / 2, bottom + 30), p.x.label, 7.5, anchor="ma")
    c.text((left - 55, top_px + ph / 2), p.y.label, 7.5, anchor="rm", rotate=True)
    for m in p.edge_marks:
        color = rgb(m.color)
        if m.side == "rows":
            py, x0 = y(m.position), left + pw + MARK_PX
            c.draw.polygon([(x0 - 4, py), (x0 + 4, py - 4.5), (x0 + 4, py + 4.5)], fill=color)
            if m.label:
                c.text((x0 + 7, py), m.label, 5.5, color=m.color, anchor="lm")
        else:
            px, y0 = x(m.position), top_px - MARK_PX
            c.draw.polygon([(px, y0 + 4), (px - 4.5, y0 - 4), (px + 4.5, y0 - 4)], fill=color)
            if m.label:
                c.text((px, y0 - 7), m.label, 5.5, color=m.color, anchor="md", rotate=True)
    for point in p.points:
        px, py = x(point.x), y(point.y)
        if not (math.isfinite(px) and math.isfinite(py)):
            continue
        c.draw.ellipse((px - 8, py - 8, px + 8, py + 8), outline=rgb(point.color), width=2)
    _colorbar(c, bar_left, top_px, p)


def _colorbar(c: Canvas, left: int, top: int, p: ImagePanel) -> None:
    width, ph = COLORBAR_PX[1], p.size[1]
    vmax = p.limit.vmax
    values = vmax * (1 - 2 * (np.arange(ph) + 0.5) / ph)  # top: +vmax
    column = colormap_table()[color_index(values, vmax)]
    c.image.paste(Image.fromarray(np.repeat(column[:, None], width, axis=1)), (left, top))
    tip = min(20.0, 0.05 * ph)
    high, low = (cast("RGB", tuple(colormap_table()[i].tolist())) for i in (LEVELS - 1, 0))
    if p.extend in ("max", "both"):
        c.draw.polygon([(left, top - 1), (left + width - 1, top - 1),
                        (left + (width - 1) / 2, top - 1 - tip)], fill=high)  # fmt: skip
    if p.extend in ("min", "both"):
        bottom = top + ph
        c.draw.polygon([(left, bottom), (left + width - 1, bottom),
                        (left + (width - 1) / 2, bottom + tip)], fill=low)  # fmt: skip
    c.frame(left, top, (width, ph))
    axis = Axis((-vmax, vmax), top, ph, flip=True)
    ticks = nice_ticks(-vmax, vmax, 8)
    labels = [tick_label(v, ticks) for v in ticks]
    for v, label in zip(ticks, labels, strict=True):
        py = round(axis(v))
        c.draw.line((left + width, py, left + width + 5, py), fill=BLACK)
        c.text((left + width + 8, py), label, 7, anchor="lm")
    room = max((font(7, c.dpi).getlength(label) for label in labels), default=0.0)
    c.text((left + width + 14 + room, top + ph / 2), p.colorbar_label, 7, anchor="lm", rotate=True)


def _polyline(d: ImageDraw.ImageDraw, xs: np.ndarray, ys: np.ndarray, color: RGB) -> None:
    finite = np.isfinite(ys)
    for run in np.split(np.arange(len(ys)), np.flatnonzero(np.diff(finite)) + 1):
        if run.size > 1 and finite[run[0]]:
            d.line(list(zip(xs[run].tolist(), ys[run].tolist(), strict=True)), fill=color)


def _dashed(d: ImageDraw.ImageDraw, x0: float, x1: float, y: float, color: RGB) -> None:
    for start in np.arange(x0, x1, 9.0):
        d.line((start, y, min(start + 5, x1), y), fill=color)


def _draw_strip(c: Canvas, left: int, top: float, p: StripPanel) -> None:
    pw, ph = p.size
    top_px = round(top)
    area = Image.new("RGB", p.size, WHITE)  # clips what is drawn to the data area
    d = ImageDraw.Draw(area)
    x = Axis(p.xaxis.lim, 0, pw, flip=False)
    y = Axis(p.ylim, 0, ph, flip=True)
    xs = np.array([x(v) for v in p.x])
    for level, words in p.references:
        line = _dashed if words != "0" else lambda d, a, b, yy, col: d.line((a, yy, b, yy), col)
        line(d, 0, pw, y(level), rgb("0.5"))
    if p.step == 1:
        ys = np.array([y(v) for v in p.lo])
        _polyline(d, xs, ys, rgb("0.35"))
        if p.x.size <= 4096:
            for px, py in zip(xs.tolist(), ys.tolist(), strict=True):
                if math.isfinite(py):
                    d.rectangle((px - 1, py - 1, px + 1, py + 1), fill=rgb(STRIP_BLUE))
    else:
        for px, lo, hi in zip(xs.tolist(), p.lo.tolist(), p.hi.tolist(), strict=True):
            if math.isfinite(lo) and math.isfinite(hi):
                d.line((px, y(hi), px, y(lo)), fill=rgb(STRIP_BLUE), width=max(1, pw // len(xs)))
    points = [m for m in p.points if math.isfinite(m.x) and math.isfinite(m.y)]
    for m in points:
        px, py = x(m.x), y(m.y)
        d.ellipse((px - 3.5, py - 3.5, px + 3.5, py + 3.5), fill=rgb(OUTLIER_COLOR))
    c.image.paste(area, (left, top_px))
    c.frame(left, top_px, p.size)
    for m in points:
        if m.label:
            c.text((left + x(m.x) + 6, top_px + y(m.y) - 6), m.label, 6, color=OUTLIER_COLOR,
                   anchor="ld")  # fmt: skip
    for level, words in p.references:
        if y.inside(level):
            c.text((left + pw + 4, top_px + y(level)), words, 6, color="0.35", anchor="lm")
    for v in p.nonfinite:
        px = left + x(v)
        c.draw.line((px, top_px + ph - 8, px, top_px + ph + 8), fill=rgb(NONFINITE_COLOR), width=2)
    bottom = top_px + ph
    shifted = Axis(p.xaxis.lim, left, pw, flip=False)
    _x_ticks(c, shifted, bottom, p.xaxis.ticks.positions, p.xaxis.ticks.labels)
    _value_ticks(c, Axis(p.ylim, top_px, ph, flip=True), left, 7)
    c.text((left + pw / 2, bottom + 30), p.xaxis.label, 7.5, anchor="ma")
    c.text((left - 55, top_px + ph / 2), p.ylabel, 7.5, anchor="rm", rotate=True)


def _draw_lines(c: Canvas, left: int, top: float, p: LinesPanel) -> None:
    """One thin row per channel, sharing the x axis (overlaid sinusoids are unreadable)."""
    pw, ph = p.size
    n = len(p.series)
    for k, s in enumerate(p.series):
        row_top = round(top + ph * k / n + ph / n * 0.14)
        size = (pw, round(ph / n * 0.86))
        x = Axis(p.xaxis.lim, left, pw, flip=False)
        finite = s.y[np.isfinite(s.y)]
        peak = float(np.abs(finite).max()) if finite.size else 1.0
        lim = (-peak, peak) if peak > 0 else (-1.0, 1.0)
        lim = (lim[0] * 1.05, lim[1] * 1.05)
        y = Axis(lim, row_top, size[1], flip=True)
        if len(p.x) != len(s.y):
            raise ValueError(f"x and y must have same first dimension, but have shapes "
                             f"({len(p.x)},) and ({len(s.y)},)")  # fmt: skip
        c.draw.line((left, y(0.0), left + pw, y(0.0)), fill=rgb("0.7"))
        _polyline(c.draw, np.array([x(v) for v in p.x]), np.array([y(v) for v in s.y]),
                  rgb(s.color))  # fmt: skip
        c.frame(left, row_top, size)
        _value_ticks(c, y, left, 2, symmetric=True, points=5.5)
        c.text((left + pw + 8, row_top + size[1] / 2), f"channel {s.label}", 6.5, color=s.color,
               anchor="lm")  # fmt: skip
        last = k == n - 1
        _x_ticks(c, x, row_top + size[1], p.xaxis.ticks.positions,
                 p.xaxis.ticks.labels if last else None)  # fmt: skip
        if last:
            c.text((left + pw / 2, row_top + size[1] + 30), p.xaxis.label, 7.5, anchor="ma")
        if k == 0:
            c.text((left, row_top - 4), f"{p.ylabel} against {p.xaxis.label}", 7, anchor="ld")


def _draw_panel(c: Canvas, left: int, top: float, panel: Panel, bar: int | None) -> None:
    if isinstance(panel, ImagePanel):
        assert bar is not None
        _draw_image(c, left, top, panel, bar)
    elif isinstance(panel, StripPanel):
        _draw_strip(c, left, top, panel)
    elif isinstance(panel, LinesPanel):
        _draw_lines(c, left, top, panel)
    else:
        pw, ph = panel.size
        c.text((left + pw / 2, top + ph / 2), "\n".join(panel.lines), 9, anchor="mm")


def build_image(spec: FigureSpec) -> Image.Image:
    """The figure of `spec` as a PIL RGB image."""
    plan: Layout = layout(spec)
    c = Canvas(plan.width, math.ceil(plan.height), spec.dpi)

    def text(box: TextBox, color: str, bold: bool = False) -> None:
        c.text((PAD_PX, box.top), box.text, box.pt, color=color, bold=bold)

    text(plan.title, "black", bold=True)
    for box in plan.subtitle:
        text(box, "0.25")
    for placed in plan.panels:
        try:
            _draw_panel(c, placed.left, placed.top, placed.panel, placed.colorbar_left)
        except Exception as exc:  # one broken panel must not lose the figure
            pw, ph = placed.panel.size
            top = round(placed.top)
            c.draw.rectangle((placed.left, top, placed.left + pw, top + ph), fill=WHITE)
            c.text((placed.left + pw / 2, top + ph / 2),
                   f"could not draw this panel:\n{type(exc).__name__}: {exc}", 8,
                   color="#b00000", anchor="mm")  # fmt: skip
    for box in plan.notes:
        text(box, "0.2")
    return c.image


def encode(image: Image.Image, out: BinaryIO) -> None:
    """A palette PNG of `image` (`palette_index`)."""
    indexed = Image.fromarray(palette_index(np.asarray(image)), mode="P")
    indexed.putpalette(palette_colors().reshape(-1).tolist())
    indexed.save(out, format="png", compress_level=PNG_COMPRESSION)


def draw_raster(spec: FigureSpec, path: str | os.PathLike[str]) -> None:
    """Write the figure of `spec` to `path` as PNG, atomically (a temp file, then a rename)."""
    image = build_image(spec)
    with atomic_file(Path(path)) as out:
        encode(image, cast("BinaryIO", out))


__all__ = ["build_image", "color_index", "colormap_table", "draw_raster", "image_pixels"]
