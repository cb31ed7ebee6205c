"""A figure described as plain data: what to draw, where, in which colours; nothing drawn yet.

`describe_figure` (numbers in) builds a `FigureSpec`; `draw_png` lowers it to pixels. Positions
are in *display units*: the coordinates of the 2-D picture of the tensor, where a plain matrix's
display units are its storage indices (row r is drawn centred at y = r) and a conv kernel's tile
grid has `unit` display positions per channel. Sizes are in pixels at `FigureSpec.dpi`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from striate.render.scale import ColorLimit

CMAP = "RdBu_r"  # diverging, white at 0: red positive, blue negative
NONFINITE_COLOR = "#00c000"  # NaN/Inf: a green no red-blue diverging map produces
MARK_COLOR = "black"  # findings on an image (lines, hotspots)
OUTLIER_COLOR = "#d62728"  # findings on a strip plot
KIND_COLORS = {"line": MARK_COLOR, "hotspot": MARK_COLOR, "periodic": "#6a3d9a"}
OTHER_KIND_COLOR = "#555555"
DPI = 150
#: longest side of a tensor image (after outlier-preserving downsampling): the report's pictures;
#: `striate view` zooms down to single weights
MAX_PIXELS = 512

Side = Literal["rows", "cols"]


@dataclass(frozen=True)
class Ticks:
    """Tick marks of one axis: `positions` in display units, `labels` in storage indices."""

    positions: tuple[float, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class AxisSpec:
    """One axis of a panel: its words, its visible range (low, high) and its ticks."""

    label: str
    lim: tuple[float, float]
    ticks: Ticks


@dataclass(frozen=True)
class EdgeMark:
    """A finding that spans one display axis (a row or column line), marked at the edge.

    Rows are marked at the image's right edge, columns at its top edge; `label` (the storage
    index, or empty) is written beside the mark.
    """

    side: Side
    position: float
    label: str
    kind: str
    color: str


@dataclass(frozen=True)
class PointMark:
    """A finding at one place: a hotspot on an image (a circle), an outlier on a strip (a dot)."""

    x: float
    y: float
    label: str
    kind: str
    color: str


@dataclass(frozen=True)
class Rule:
    """A thin line across an image: a head boundary, or the grid between conv kernel tiles.

    side 'rows' is a horizontal line at y = position, 'cols' a vertical one at x = position.
    """

    side: Side
    position: float
    kind: Literal["head", "tile"]


@dataclass(frozen=True, eq=False)
class ImagePanel:
    """A (downsampled) picture of the tensor with a symmetric colour scale.

    `image` of shape (h, w) holds NaN where the tensor has NaN/Inf; `extent` is
    (left, right, bottom, top) in display units (origin at the top left, as imshow takes it).
    `extend` says which colourbar ends saturate: 'neither', 'min', 'max' or 'both'.
    `size` is the image area's (width, height) in pixels, never smaller than the image.
    """

    image: np.ndarray
    extent: tuple[float, float, float, float]
    x: AxisSpec
    y: AxisSpec
    limit: ColorLimit
    colorbar_label: str
    extend: str
    edge_marks: tuple[EdgeMark, ...]
    points: tuple[PointMark, ...]
    rules: tuple[Rule, ...]
    size: tuple[int, int]


@dataclass(frozen=True, eq=False)
class StripPanel:
    """A vector as value against index; `lo`/`hi` are a min/max envelope where `step` > 1."""

    x: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    step: int
    xaxis: AxisSpec
    ylabel: str
    ylim: tuple[float, float]
    points: tuple[PointMark, ...]
    nonfinite: tuple[float, ...]
    references: tuple[tuple[float, str], ...]  # horizontal guides (y, words): zero, median
    size: tuple[int, int]


@dataclass(frozen=True, eq=False)
class Series:
    """One channel drawn as a line: values against the panel's x."""

    label: str
    y: np.ndarray
    color: str


@dataclass(frozen=True, eq=False)
class LinesPanel:
    """Chosen channels as line plots (a position embedding's sinusoids)."""

    x: np.ndarray
    series: tuple[Series, ...]
    xaxis: AxisSpec
    ylabel: str
    size: tuple[int, int]


@dataclass(frozen=True)
class TextPanel:
    """A card of text where no picture fits (a scalar, an empty tensor)."""

    lines: tuple[str, ...]
    size: tuple[int, int]


Panel = ImagePanel | StripPanel | LinesPanel | TextPanel


@dataclass(frozen=True, eq=False)
class FigureSpec:
    """A whole figure: a title (the tensor's name, shown verbatim), panels top to bottom, notes."""

    title: str
    subtitle: tuple[str, ...]
    panels: tuple[Panel, ...]
    notes: tuple[str, ...]
    dpi: int = DPI
