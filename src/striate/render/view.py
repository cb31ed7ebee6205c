"""How a stored tensor of any rank is laid out as one 2-D picture, in storage coordinates.

Each display axis (rows, columns) runs over one or more stored axes, outer to inner: a matrix
shows axis 0 down and axis 1 across; a conv kernel [out, in, kh, kw] shows rows (out, kh) and
columns (in, kw), a grid of kh x kw tiles; GPT-2-style [in, out] matrices stay as stored. A
finding's index (one entry per stored axis) is placed on a display axis by the stored axes it
pins, so marks land where the file has the value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: kernel sides up to this size are taken for spatial axes when no layout is given
KERNEL_MAX = 16

#: what each stored axis is, per layout
AXIS_NAMES: Mapping[str, Mapping[int, str]] = {
    "linear": {0: "out", 1: "in"},
    "conv1d": {0: "in", 1: "out"},
    "embedding": {0: "token"},
    "oihw": {0: "out", 1: "in", 2: "kh", 3: "kw"},
    "hwio": {0: "kh", 1: "kw", 2: "in", 3: "out"},
    "vector": {},
}

#: stored rank each layout applies to
LAYOUT_NDIM: Mapping[str, int] = {
    "linear": 2,
    "conv1d": 2,
    "embedding": 2,
    "oihw": 4,
    "hwio": 4,
    "vector": 1,
}

SPANS = "spans"  # a finding leaves all stored axes of a display axis free
SCATTERED = "scattered"  # it pins an inner axis only: a periodic pattern, not one place


@dataclass(frozen=True)
class DisplayAxis:
    """A display axis made of stored `axes` (outer to inner) of the given `sizes`."""

    axes: tuple[int, ...]
    sizes: tuple[int, ...]

    @property
    def length(self) -> int:
        return math.prod(self.sizes)

    @property
    def unit(self) -> int:
        """Display positions per index of the outermost stored axis (a tile side)."""
        return math.prod(self.sizes[1:])

    def locate(self, index: Sequence[int | None]) -> float | str:
        """Display position of a finding's index on this axis, or SPANS / SCATTERED.

        Pinned outer axes fix a block; the free inner axes after them put the mark at the
        block's centre (an input-channel line of a 3x3 conv sits mid-tile).

            >>> DisplayAxis((1, 3), (32, 3)).locate((None, 5, None, None))
            16.0
        """
        pos, stride = 0, self.length
        for k, (axis, n) in enumerate(zip(self.axes, self.sizes, strict=True)):
            stride //= n
            i = index[axis]
            if i is None:
                if any(index[a] is not None for a in self.axes[k + 1 :]):
                    return SCATTERED
                return SPANS if k == 0 else pos + (n * stride - 1) / 2.0
            pos += int(i) * stride
        return float(pos)


@dataclass(frozen=True)
class TensorView:
    """A stored tensor of shape `shape` seen as a (rows.length, cols.length) picture."""

    shape: tuple[int, ...]
    rows: DisplayAxis
    cols: DisplayAxis
    tiled: bool  # inner axes are kernel tiles (conv), described once instead of per axis
    note: str = ""  # why the view differs from the stated layout, if it does

    def arrange(self, w: np.ndarray) -> np.ndarray:
        """The picture: `w` transposed to (rows.axes + cols.axes) and reshaped to 2-D."""
        used = self.rows.axes + self.cols.axes
        perm = used + tuple(a for a in range(len(self.shape)) if a not in used)  # length-1 axes
        pic: np.ndarray = np.asarray(w).transpose(perm).reshape(self.rows.length, self.cols.length)
        return pic


def view_of(shape: tuple[int, ...], layout: str | None) -> TensorView:
    """The 2-D view of a tensor with at least two axes longer than 1, by layout (None: guess).

    Axes of length 1 are left out unless the layout names them (a 1x1 conv keeps its tiles).

    >>> v = view_of((64, 32, 3, 3), "oihw")
    >>> v.rows, v.cols
    (DisplayAxis(axes=(0, 2), sizes=(64, 3)), DisplayAxis(axes=(1, 3), sizes=(32, 3)))
    """
    nd = len(shape)
    note = ""
    if layout is not None and LAYOUT_NDIM.get(layout) != nd:
        note = f"layout {layout!r} does not fit rank {nd}; shown by shape"
        layout = None
    if nd == 4 and layout is None:
        if max(shape[2:]) <= KERNEL_MAX and min(shape[:2]) > 1:
            layout = "oihw"
        elif max(shape[:2]) <= KERNEL_MAX and min(shape[2:]) > 1:
            layout = "hwio"

    def axis(*axes: int) -> DisplayAxis:
        return DisplayAxis(axes, tuple(shape[a] for a in axes))

    def tiled(rows: DisplayAxis, cols: DisplayAxis) -> TensorView:
        return TensorView(shape, rows, cols, rows.unit * cols.unit > 1, note)

    if layout == "oihw":
        return tiled(axis(0, 2), axis(1, 3))
    if layout == "hwio":
        return tiled(axis(3, 0), axis(2, 1))
    if layout in ("linear", "conv1d", "embedding"):
        return TensorView(shape, axis(0), axis(1), False, note)
    live = [a for a in range(nd) if shape[a] > 1]
    if len(live) < 2:
        raise ValueError(f"shape {shape} has fewer than two axes longer than 1")
    if len(live) == 2:
        return TensorView(shape, axis(live[0]), axis(live[1]), False, note)
    if len(live) == 3 and shape[live[2]] <= KERNEL_MAX:  # [out, in, k]: k-wide tiles
        return tiled(axis(live[0]), axis(live[1], live[2]))
    # stacked matrices [E, out, in] and higher ranks: every axis but the last down the rows
    return TensorView(shape, axis(*live[:-1]), axis(live[-1]), False, note)


def axis_names(
    shape: tuple[int, ...], layout: str | None, role: str, residual_axis: int | None
) -> dict[int, str]:
    """What each stored axis is, where the layout or role says: {0: 'out', 1: 'in'}."""
    names = dict(AXIS_NAMES.get(layout or "", {}))
    if role == "position_embedding":
        live = [a for a in range(len(shape)) if shape[a] > 1 and a != residual_axis]
        names = {live[0]: "position"} if live else {}
    if residual_axis is not None:
        names[residual_axis] = (
            f"{names[residual_axis]}, residual" if residual_axis in names else "residual"
        )
    return names


def axis_label(axis: int, size: int, names: Mapping[int, str]) -> str:
    """Words for one stored axis: 'axis 1 — in, residual (768)'."""
    return f"axis {axis} — {names[axis]} ({size})" if axis in names else f"axis {axis} ({size})"
