"""striate's one figure style: the rcParams every figure is drawn with, and the drawing lock.

Every figure striate draws, from a tensor image to an experiment's curves, is drawn inside
`with style():`; the look does not depend on the user's matplotlib style or rc file, and
matplotlib's global state is touched by one thread at a time.

    >>> from striate.render.style import canvas, style
    >>> with style():            # doctest: +SKIP
    ...     fig = canvas(6, 3); ...; save_figure(fig, "curves.png")
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# the look does not depend on the user's matplotlib style or rc file
RC: dict[str, Any] = {
    "text.usetex": False,
    "font.family": "DejaVu Sans",
    "font.size": 7.5,
    "axes.titlesize": 8,
    "axes.labelsize": 7.5,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.linewidth": 0.6,
    "axes.edgecolor": "black",
    "axes.labelcolor": "black",
    "axes.facecolor": "white",
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "text.color": "black",
    "xtick.color": "black",
    "ytick.color": "black",
    "xtick.major.size": 3,
    "ytick.major.size": 3,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "axes.formatter.useoffset": False,
}


# matplotlib's rcParams are global: figures are drawn one at a time (scan --jobs draws from
# several threads; the numeric work around the drawing still runs in parallel)
DRAWING = threading.RLock()


@contextmanager
def style() -> Iterator[None]:
    """Draw with striate's rcParams, holding the drawing lock: one figure at a time."""
    with DRAWING, matplotlib.rc_context(RC):  # type: ignore[arg-type]
        yield


def canvas(width_in: float, height_in: float, *, dpi: float = 110) -> Figure:
    """A figure on its own Agg canvas, never registered with pyplot (no global figure list):
    draw on it inside `with style():` and write it with `render.png.save_figure`."""
    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


__all__ = ["DRAWING", "RC", "canvas", "style"]
