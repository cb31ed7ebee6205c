"""Where findings, head boundaries and kernel tiles are drawn on a tensor's picture.

Pure functions from a `TensorView` (or a vector) and the analyses' `Finding`s to marks in
display units. Only the strongest `MAX_MARKS` of each sort are drawn, the strongest
`MAX_LABELS` labelled with their storage index; the notes say how many there were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from striate.analyses.finding import Finding
from striate.render.spec import (
    KIND_COLORS,
    MARK_COLOR,
    OTHER_KIND_COLOR,
    OUTLIER_COLOR,
    EdgeMark,
    PointMark,
    Rule,
    Side,
)
from striate.render.view import SCATTERED, DisplayAxis, TensorView

MAX_MARKS = 40  # per sort of mark (row lines, column lines, points)
MAX_LABELS = 8  # marks of a sort that also get their index written beside them
TILE_GRID_MIN_PX = 6  # kernel tiles smaller than this on screen get no grid lines


@dataclass(frozen=True)
class Placed:
    """Findings placed on a picture, and words about those that could not be."""

    edges: tuple[EdgeMark, ...]
    points: tuple[PointMark, ...]
    notes: tuple[str, ...]


def _strongest(findings: Sequence[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: -f.score if np.isfinite(f.score) else np.inf)


def _pinned(f: Finding, axis: DisplayAxis) -> str:
    return ",".join(str(f.index[a]) for a in axis.axes if f.index[a] is not None)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _shown(n: int, total: int) -> str:
    return f" (the {n} strongest drawn)" if total > n else ""


def place_on_image(view: TensorView, findings: Sequence[Finding]) -> Placed:
    """Row/column lines as edge marks, one-place findings as circles, in display units.

    >>> v = TensorView((4, 6), DisplayAxis((0,), (4,)), DisplayAxis((1,), (6,)), False)
    >>> f = Finding("line", (None, 5), score=9.0, value=3.0, detail="")
    >>> place_on_image(v, [f]).edges[0].position
    5.0
    """
    rows: list[tuple[Finding, float]] = []
    cols: list[tuple[Finding, float]] = []
    points: list[tuple[Finding, float, float]] = []
    unplaced = whole = 0
    for f in _strongest(findings):
        if len(f.index) != len(view.shape):
            unplaced += 1
            continue
        r, c = view.rows.locate(f.index), view.cols.locate(f.index)
        if SCATTERED in (r, c):
            unplaced += 1
        elif isinstance(r, float) and isinstance(c, float):
            points.append((f, c, r))
        elif isinstance(r, float):
            rows.append((f, r))
        elif isinstance(c, float):
            cols.append((f, c))
        else:
            whole += 1
    sides: tuple[tuple[Side, DisplayAxis, list[tuple[Finding, float]]], ...] = (
        ("rows", view.rows, rows),
        ("cols", view.cols, cols),
    )
    edges = [
        EdgeMark(
            side,
            pos,
            _pinned(f, axis) if k < MAX_LABELS else "",
            f.kind,
            KIND_COLORS.get(f.kind, OTHER_KIND_COLOR),
        )
        for side, axis, found in sides
        for k, (f, pos) in enumerate(found[:MAX_MARKS])
    ]
    marks = tuple(
        PointMark(x, y, "", f.kind, KIND_COLORS.get(f.kind, MARK_COLOR))
        for f, x, y in points[:MAX_MARKS]
    )
    notes = []
    if rows:
        notes.append(
            f"◀ {_count(len(rows), 'row finding')} at the right edge" + _shown(MAX_MARKS, len(rows))
        )
    if cols:
        notes.append(
            f"▼ {_count(len(cols), 'column finding')} at the top edge"
            + _shown(MAX_MARKS, len(cols))
        )
    if points:
        f0 = points[0][0]
        where = ", ".join(str(i) for i in f0.index)
        notes.append(
            f"○ {_count(len(points), 'point finding')} circled"
            + _shown(MAX_MARKS, len(points))
            + f"; strongest {f0.kind} at ({where}), value {f0.value:.3g}"
        )
    if whole:
        notes.append(f"{_count(whole, 'finding')} about the whole tensor (not marked)")
    if unplaced:
        notes.append(f"{_count(unplaced, 'finding')} not placeable on this picture")
    return Placed(tuple(edges), marks, tuple(notes))


def place_on_strip(
    v: np.ndarray, axis: int, ndim: int, findings: Sequence[Finding]
) -> tuple[tuple[PointMark, ...], tuple[str, ...]]:
    """Findings pinned on the vector's `axis` as red points at (index, w[index]).

    `v` is the tensor flattened (all its other axes have length 1), `ndim` its stored rank.
    """
    found = [
        f
        for f in _strongest(findings)
        if len(f.index) == ndim and f.index[axis] is not None and 0 <= f.index[axis] < v.size  # type: ignore[operator]
    ]
    points = tuple(
        PointMark(float(i), float(v[i]), str(i) if k < MAX_LABELS else "", f.kind, OUTLIER_COLOR)
        for k, f in enumerate(found[:MAX_MARKS])
        for i in (int(f.index[axis]),)  # type: ignore[arg-type]
    )
    notes = []
    if found:
        notes.append(
            f"● {_count(len(found), 'finding')} in red, labelled by index"
            + _shown(MAX_MARKS, len(found))
        )
    if len(found) < len(findings):
        notes.append(f"{_count(len(findings) - len(found), 'finding')} not placeable")
    return points, tuple(notes)


def head_rules(
    view: TensorView, head_blocks: tuple[int, int] | None
) -> tuple[tuple[Rule, ...], tuple[str, ...]]:
    """Boundaries between `n_blocks` equal blocks of stored axis `head_axis`, as thin lines.

    >>> v = TensorView((6, 4), DisplayAxis((0,), (6,)), DisplayAxis((1,), (4,)), False)
    >>> [r.position for r in head_rules(v, (3, 0))[0]]
    [1.5, 3.5]
    """
    if head_blocks is None:
        return (), ()
    n_blocks, head_axis = head_blocks
    for side, axis in (("rows", view.rows), ("cols", view.cols)):
        if axis.axes[0] != head_axis:
            continue
        size = axis.sizes[0]
        if n_blocks < 1 or size % n_blocks:
            return (), (f"axis {head_axis} ({size}) does not split into {n_blocks} heads",)
        per = size // n_blocks * axis.unit
        rules = tuple(Rule(side, k * per - 0.5, "head") for k in range(1, n_blocks))  # type: ignore[arg-type]
        return rules, (
            f"thin lines: {n_blocks} blocks of {size // n_blocks} along axis {head_axis} (heads)",
        )
    return (), (f"head axis {head_axis} is not an outer axis of this picture; heads not drawn",)


def tile_rules(view: TensorView, size: tuple[int, int]) -> tuple[Rule, ...]:
    """Grid lines between the blocks of a composite display axis (kernel tiles, stacked
    matrices), where blocks are at least TILE_GRID_MIN_PX on screen (`size` = (width, height))."""
    rules: list[Rule] = []
    for side, axis, px in (("rows", view.rows, size[1]), ("cols", view.cols, size[0])):
        tile_px = axis.unit * px / axis.length
        if axis.unit > 1 and tile_px >= TILE_GRID_MIN_PX:
            rules += [Rule(side, k * axis.unit - 0.5, "tile") for k in range(1, axis.sizes[0])]  # type: ignore[arg-type]
    return tuple(rules)
