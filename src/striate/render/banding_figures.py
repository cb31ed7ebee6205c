"""NMF pictures of conv layers: one layer's neurons as RGB tiles, and layers side by side.

The tiles come from `striate.analyses.banding.nmf_view` (3 NMF factors over input channels as
R, G, B, each neuron scaled to its own maximum, neurons in similarity order). Pixels are the
kernel positions blown up `cell` times with nearest-neighbour, so a 3x3 kernel stays 3x3 cells.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from striate.analyses.banding import Banding, NMFView
from striate.render.png import save_figure
from striate.render.style import DRAWING, canvas, style

#: frame colour of a panel whose layer bands
BANDED = "#d62728"


def pick_neurons(view: NMFView, n: int | None) -> np.ndarray:
    """`n` neurons spread evenly over the similarity order (all of them when n is None)."""
    order = view.order
    if n is None or n >= len(order):
        return order
    return np.asarray(order[np.unique(np.linspace(0, len(order) - 1, n).round().astype(int))])


def nmf_grid(view: NMFView, neurons: np.ndarray, *, cell: int = 6, gap: int = 2) -> np.ndarray:
    """The tiles of `neurons` (in that order) in a near-square grid: float RGB [H, W, 3].

    >>> from striate.analyses.banding import nmf_view
    >>> v = nmf_view(np.random.default_rng(0).normal(size=(10, 4, 3, 3)))
    >>> nmf_grid(v, v.order, cell=2, gap=1).shape  # 4 columns, 3 rows of 6x6 tiles
    (20, 27, 3)
    """
    _, kh, kw, _ = view.rgb.shape
    cols = max(1, math.ceil(math.sqrt(len(neurons) * kh / kw)))
    rows = max(1, math.ceil(len(neurons) / cols))
    th, tw = kh * cell, kw * cell
    grid = np.ones((rows * (th + gap) - gap, cols * (tw + gap) - gap, 3))
    for slot, neuron in enumerate(neurons):
        r, c = divmod(slot, cols)
        tile = view.rgb[neuron].repeat(cell, axis=0).repeat(cell, axis=1)
        grid[r * (th + gap) : r * (th + gap) + th, c * (tw + gap) : c * (tw + gap) + tw] = tile
    return grid


def describe(b: Banding | None) -> str:
    """One line under a panel: direction, variance shares and z."""
    if b is None:
        return "not scored"
    return f"{b.direction} · rows {b.share_rows:.0%} cols {b.share_cols:.0%} · z {b.z:.0f}"


@dataclass(frozen=True)
class Panel:
    """One layer in an NMF figure."""

    title: str
    view: NMFView
    banding: Banding | None = None
    caption: str | None = None  # defaults to `describe(banding)`


def draw_panels(
    path: Path,
    panels: Sequence[Panel],
    *,
    title: str,
    neurons: int | None = 25,
    columns: int | None = None,
    note: str | None = None,
) -> None:
    """Layers side by side (`columns` per row), each as a grid of `neurons` tiles; layers
    that band framed in red. With `neurons=None` every neuron is drawn."""
    with DRAWING:  # built with matplotlib's default rcParams, which other threads may change
        columns = columns or min(len(panels), 6)
        n_rows = math.ceil(len(panels) / columns)
        size = 2.3 if neurons is not None else 4.5
        fig = canvas(size * columns, size * n_rows + 0.6 + (0.4 if note else 0), dpi=110)
        fig.suptitle(title, fontsize=11, x=0.01, ha="left", parse_math=False)
        for i, panel in enumerate(panels):
            ax = fig.add_subplot(n_rows, columns, i + 1)
            ax.imshow(nmf_grid(panel.view, pick_neurons(panel.view, neurons)),
                      interpolation="nearest")  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            banded = panel.banding is not None and panel.banding.direction != "none"
            for spine in ax.spines.values():
                spine.set_edgecolor(BANDED if banded else "0.7")
                spine.set_linewidth(2.5 if banded else 0.8)
            ax.set_title(_shorten(panel.title, 34), fontsize=8, loc="left", parse_math=False)
            caption = panel.caption if panel.caption is not None else describe(panel.banding)
            ax.set_xlabel(caption, fontsize=7, color=BANDED if banded else "0.25", parse_math=False)
        if note:
            note = textwrap.fill(note, width=int(15 * size * columns))
            fig.text(0.01, 0.005, note, fontsize=7, color="0.3", va="bottom", parse_math=False)
        lines = 0 if not note else note.count("\n") + 1
        fig.tight_layout(rect=(0, 0.12 * lines / fig.get_figheight(), 1, 0.97))
        with style():
            save_figure(fig, path)


def _shorten(name: str, width: int) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def draw_layer(path: Path, name: str, view: NMFView, b: Banding) -> None:
    """One conv layer's NMF picture with all its neurons (scan images, `striate banding`)."""
    out, kh, kw, _ = view.rgb.shape
    n_in = view.factors.shape[1] // 2
    note = (
        f"{out} neurons x {n_in} inputs x {kh}x{kw}; NMF of [W+, W-] over inputs to 3 factors "
        f"(R, G, B), relative error {view.relative_error:.0%}; sorted by similarity"
    )
    draw_panels(path, [Panel(name, view, b, describe(b))], title=name, neurons=None, note=note)
