"""Where everything of a `FigureSpec` goes, in pixels from the top left; nothing drawn.

Both lowerings of a spec share it: `render.raster` (PIL, the scan's default) and `render.png`
(matplotlib, antialiased). Each panel's data area has exactly the size the spec asks for, so an
image is never shrunk by the renderer (a shrunk image would drop pixels, hotspots among them).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from striate.render.spec import FigureSpec, ImagePanel, LinesPanel, Panel, StripPanel, TextPanel

# margins around each panel's data area, in pixels at 150 dpi: (left, right, top, bottom)
MARGINS = {
    ImagePanel: (100, 16, 28, 64),  # right: room for the row marks
    StripPanel: (100, 90, 16, 64),
    LinesPanel: (100, 120, 30, 64),  # right: "channel 99999" beside its row
    TextPanel: (20, 20, 10, 10),
}
COLORBAR_PX = (20, 16, 140)  # gap, bar width, room for ticks and the two-line label
LABEL_PX = 30  # room for index labels beside edge marks
MARK_PX = 7  # distance of an edge mark from the image
TITLE_PX, SUBTITLE_PX, NOTE_PX, PAD_PX = 26, 17, 16, 10
MIN_WIDTH_PX = 640
TITLE_PT, SUBTITLE_PT, NOTE_PT = 10.5, 7.0, 6.5


@dataclass(frozen=True)
class TextBox:
    """Lines of text (already wrapped to fit) at `pt` points, their top `top` pixels down."""

    text: str
    pt: float
    top: float


@dataclass(frozen=True)
class PanelBox:
    """A panel's data area: `left`, `top` in pixels; its size is `panel.size`. An image's
    colourbar starts `colorbar_left` pixels from the left (None for other panels)."""

    panel: Panel
    left: int
    top: float
    colorbar_left: int | None


@dataclass(frozen=True)
class Layout:
    width: int
    height: float
    title: TextBox
    subtitle: tuple[TextBox, ...]
    panels: tuple[PanelBox, ...]
    notes: tuple[TextBox, ...]


def labels_px(panel: ImagePanel, side: str) -> int:
    """Room for the index labels beside a side's edge marks, if there are any."""
    return LABEL_PX if any(m.side == side and m.label for m in panel.edge_marks) else 0


def margins(panel: Panel) -> tuple[int, int, int, int]:
    left, right, top, bottom = MARGINS[type(panel)]
    if isinstance(panel, ImagePanel):
        right += labels_px(panel, "rows") + sum(COLORBAR_PX)
        top += labels_px(panel, "cols")
    return left, right, top, bottom


def fit(text: str, width_px: float, points: float, dpi: int) -> tuple[str, float]:
    """Shrink a line's font (down to 5.5 pt), then wrap it, so it fits `width_px`."""
    char_px = 0.6 * points * dpi / 72  # DejaVu Sans averages ~0.6 em per character
    if len(text) * char_px > width_px:
        points = max(5.5, points * width_px / (len(text) * char_px))
        char_px = 0.6 * points * dpi / 72
    return textwrap.fill(text, max(10, int(width_px / char_px)), break_long_words=True), points


def _n_lines(text: str) -> int:
    return text.count("\n") + 1


def layout(spec: FigureSpec) -> Layout:
    """The pixel layout of `spec`: title, subtitle lines, panels top to bottom, notes."""
    boxes = [(p, margins(p)) for p in spec.panels]
    width = max([MIN_WIDTH_PX] + [m[0] + p.size[0] + m[1] for p, m in boxes])
    room = width - 2 * PAD_PX
    title, title_pt = fit(spec.title, room, TITLE_PT, spec.dpi)
    y = float(PAD_PX)
    head = TextBox(title, title_pt, y)
    y += TITLE_PX * _n_lines(title) * title_pt / TITLE_PT
    subtitle = []
    for line in spec.subtitle:
        text, pt = fit(line, room, SUBTITLE_PT, spec.dpi)
        subtitle.append(TextBox(text, pt, y))
        y += SUBTITLE_PX * _n_lines(text)
    panels = []
    for panel, (left, _, top, bottom) in boxes:
        y += top
        bar = None
        if isinstance(panel, ImagePanel):
            right = MARGINS[ImagePanel][1] + labels_px(panel, "rows") + COLORBAR_PX[0]
            bar = left + panel.size[0] + right
        panels.append(PanelBox(panel, left, y, bar))
        y += panel.size[1] + bottom
    y += PAD_PX / 2
    notes = []
    for line in spec.notes:
        text, pt = fit(line, room, NOTE_PT, spec.dpi)
        notes.append(TextBox(text, pt, y))
        y += NOTE_PX * _n_lines(text)
    return Layout(width, y + PAD_PX / 2, head, tuple(subtitle), tuple(panels), tuple(notes))


__all__ = ["COLORBAR_PX", "MARK_PX", "Layout", "PanelBox", "TextBox", "fit", "layout", "margins"]
