"""What the viewer looks at: one model (or a scan's run directory), its tensors as 2-D pictures.

Tiles are cut on demand from the tensor as stored, laid out as the report draws it
(`striate.render.view`), and shrunk with the report's outlier-preserving downsampling: at zoom
level L each tile cell is the signed largest-|w| value of a 2^L x 2^L block, so a single
hotspot stays visible at every zoom. Level 0 is the weights themselves, non-finite values
included. Memory is bounded: at most `cache_bytes` of tensors (always at least the one being
looked at) and `TILE_CACHE` tiles are kept, least recently used first out.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from striate.analyses.stats import summary_stats
from striate.anatomy import TensorAnatomy, anatomy_of
from striate.checkpoint import Checkpoint, open_checkpoint
from striate.errors import StriateError
from striate.render.downsample import block_extreme
from striate.render.scale import color_limit, format_limit
from striate.render.view import DisplayAxis, TensorView, axis_names, view_of
from striate.run import Run
from striate.store import read_manifest

TILE = 256  # cells per tile side
TILE_CACHE = 512  # tiles kept (256 KiB each at most)
LINE_POINTS = 8192  # longest row/column curve sent; longer ones are shrunk keeping extremes

V = TypeVar("V")


class LRU:
    """A thread-safe least-recently-used cache bounded by the total `size` of its values."""

    def __init__(self, budget: int, size: Callable[[Any], int] = lambda _: 1) -> None:
        self.budget, self.size = budget, size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                value: V = self._items[key]
                return value
        value = make()  # outside the lock: tiles of different tensors are cut in parallel
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            total = sum(self.size(v) for v in self._items.values())
            while total > self.budget and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                total -= self.size(old)
        return value

    def __len__(self) -> int:
        return len(self._items)


def display_view(shape: tuple[int, ...], layout: str | None) -> TensorView:
    """The report's 2-D view of a tensor; vectors and scalars become a single row."""
    try:
        return view_of(shape, layout)
    except ValueError:
        live = tuple(a for a, n in enumerate(shape) if n > 1)
        cols = DisplayAxis(live, tuple(shape[a] for a in live))
        return TensorView(shape, DisplayAxis((), ()), cols, False, "shown as one row")


@dataclass(frozen=True)
class Entry:
    """One tensor of the specimen: what its header and anatomy say."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    part: TensorAnatomy

    def summary(self, n_findings: int) -> dict[str, Any]:
        return {
            "name": self.name, "shape": list(self.shape), "dtype": self.dtype,
            "role": self.part.role, "layer": self.part.layer, "n_findings": n_findings,
        }  # fmt: skip


class Specimen:
    """A model opened for viewing, with a scan's findings when `target` is a run directory."""

    def __init__(self, target: str | Path, *, cache_bytes: int = 1 << 30) -> None:
        path = Path(str(target)).expanduser()
        self.run: Run | None = None
        source: str | Path = target
        if path.is_dir() and (path / "manifest.json").is_file():
            if read_manifest(path).get("kind") == "diff":
                raise StriateError("a diff run is viewed alone: striate view DIR shows its A, B "
                                   "and B - A", path=path)  # fmt: skip
            self.run = Run.load(path)
            if self.run.manifest.get("kind", "scan") != "scan" or "source" not in self.run.manifest:
                raise StriateError(
                    "this run directory is not a scan: open its checkpoints instead", path=path
                )
            source = self.run.manifest["source"]
        self.label = str(target)
        self.ckpt: Checkpoint = open_checkpoint(source)
        self.anatomy = anatomy_of(self.ckpt)
        self.entries = {
            name: Entry(name, info.shape, info.dtype, self.anatomy[name])
            for name in self.ckpt.names()
            for info in [self.ckpt.info(name)]
        }
        self._read_lock = threading.Lock()
        self.cache_bytes = cache_bytes
        self._pictures = LRU(cache_bytes, size=nbytes)
        self._meta: LRU = LRU(4096)

    # -- what there is ---------------------------------------------------------------------------

    @property
    def findings(self) -> pd.DataFrame:
        return pd.DataFrame() if self.run is None else self.run.findings

    def entry(self, name: str) -> Entry:
        if name not in self.entries:
            raise KeyError(f"no tensor named {name!r} in {self.label}")
        return self.entries[name]

    def tensor_list(self) -> list[dict[str, Any]]:
        counts: dict[str, int] = {}
        if not self.findings.empty:
            counts = {str(k): int(v) for k, v in self.findings["tensor"].value_counts().items()}
        return [e.summary(int(counts.get(n, 0))) for n, e in self.entries.items()]

    def view(self, name: str) -> TensorView:
        e = self.entry(name)
        return display_view(e.shape, e.part.layout)

    # -- values ------------------------------------------------------------------------------------

    def pyramid(self, name: str) -> list[np.ndarray]:
        """The tensor's picture at every zoom level (float32), read once and cached."""
        view = self.view(name)

        def read() -> list[np.ndarray]:
            w = self.values(name)
            return pyramid(np.ascontiguousarray(view.arrange(w), dtype=np.float32), levels(view))

        p: list[np.ndarray] = self._pictures.get(name, read)
        return p

    def values(self, name: str) -> np.ndarray:
        """The tensor as stored (float32), read from the checkpoint."""
        with self._read_lock:
            return self.ckpt.read(name)

    def describe(self, name: str) -> dict[str, Any]:
        """Shape, layout, colour limit, statistics and findings of one tensor, for the page."""
        return dict(self._meta.get(name, lambda: self._describe(name)))

    def _describe(self, name: str) -> dict[str, Any]:
        e, view = self.entry(name), self.view(name)
        return {
            **e.summary(self._count(name)),
            **picture_facts(self.pyramid(name), view),
            "layout": e.part.layout,
            "residual_axis": e.part.residual_axis,
            "axis_names": {
                str(k): v
                for k, v in axis_names(
                    e.shape, e.part.layout, e.part.role, e.part.residual_axis
                ).items()
            },
            "findings": self.tensor_findings(name, view),
        }

    def _count(self, name: str) -> int:
        f = self.findings
        return 0 if f.empty else int((f["tensor"] == name).sum())

    def tensor_findings(self, name: str, view: TensorView) -> list[dict[str, Any]]:
        """The scan's findings in this tensor, each placed on the picture (row, col or None)."""
        f = self.findings
        if f.empty:
            return []
        return [finding_record(row, view) for _, row in f[f["tensor"] == name].iterrows()]

    def strongest_finding(self) -> dict[str, Any] | None:
        """The finding the viewer opens on: the most significant, then the highest score, of the
        tensors the model has; None without findings.

        findings.parquet is stored in this order already; ranking again keeps the promise for a
        table written any other way (a stable sort changes nothing in a ranked one).
        """
        f = self.findings
        keys = [k for k in ("significance", "score") if k in f.columns]
        if f.empty or not keys:
            return None
        ranked = f.sort_values(keys, ascending=False, kind="stable", na_position="last")
        for _, row in ranked.iterrows():
            name = str(row["tensor"])
            if name in self.entries:
                return finding_record(row, self.view(name))
        return None

    def all_findings(self) -> list[dict[str, Any]]:
        out = []
        for _, row in self.findings.iterrows():
            name = str(row["tensor"])
            view = self.view(name) if name in self.entries else None
            out.append(finding_record(row, view))
        return out

    def residual_dims(self) -> list[dict[str, Any]]:
        if self.run is None or self.run.residual_dims.empty:
            return []
        keep = ["residual_dim", "direction", "significance", "pooled_z", "n_tensors", "n_lines",
                "n_norm_outliers", "n_hotspots"]  # fmt: skip
        return [
            {k: jsonable(row[k]) for k in keep} | {"tensors": [str(t) for t in row["tensors"]]}
            for _, row in self.run.residual_dims.iterrows()
        ]


def levels(view: TensorView) -> int:
    """Zoom levels 0..n-1: the coarsest shows the whole picture in one tile."""
    side = max(view.rows.length, view.cols.length, 1)
    return max(0, math.ceil(math.log2(side / TILE))) + 1


def pyramid(m: np.ndarray, n_levels: int) -> list[np.ndarray]:
    """`m` and its shrunk copies: level L has one cell per 2^L x 2^L block, largest |w| kept.

    Each level is made from the one before (the largest |w| of 2 x 2 largest-|w| cells is the
    largest |w| of the 4 x 4 block), so all levels together cost a third more memory than `m`.
    Level 0 keeps ±Inf; shrunk levels show any non-finite block as NaN.
    """
    out = [m]
    for _ in range(1, n_levels):
        out.append(halve(out[-1]))
    return out


def halve(a: np.ndarray) -> np.ndarray:
    """One cell per 2 x 2 block of `a`: the signed value of largest |w| (+x wins a tie with -x).

    An odd side is padded by repeating its edge, which changes no block's extremes. A block
    holding NaN or ±Inf becomes NaN, as in `block_extreme` (whose row loop is slow for this).
    """
    h, w = a.shape
    if h % 2 or w % 2:
        a = np.pad(a, ((0, h % 2), (0, w % 2)), mode="edge")
    top, bottom = a[0::2], a[1::2]
    hi_rows, lo_rows = np.maximum(top, bottom), np.minimum(top, bottom)
    hi = np.maximum(hi_rows[:, 0::2], hi_rows[:, 1::2])
    lo = np.minimum(lo_rows[:, 0::2], lo_rows[:, 1::2])
    out: np.ndarray = np.where(hi >= -lo, hi, lo).astype(np.float32, copy=False)
    out[~np.isfinite(out)] = np.nan
    return out


def nbytes(levels: list[np.ndarray]) -> int:
    return sum(int(a.nbytes) for a in levels)


def cut_tile(levels: list[np.ndarray], level: int, ty: int, tx: int) -> np.ndarray:
    """Tile (ty, tx) of zoom `level`: at most TILE x TILE cells of that level's picture."""
    tile = levels[level][ty * TILE : (ty + 1) * TILE, tx * TILE : (tx + 1) * TILE]
    if tile.size == 0 or ty < 0 or tx < 0:
        raise KeyError(f"tile ({ty}, {tx}) of level {level} is outside the tensor")
    return np.ascontiguousarray(tile)


def cut_line(m: np.ndarray, axis: str, i: int) -> dict[str, Any]:
    """Display row or column `i` as a curve; longer than LINE_POINTS: shrunk keeping extremes."""
    values = m[i] if axis == "row" else m[:, i]
    d = block_extreme(values[None, :], LINE_POINTS)
    return {
        "axis": axis,
        "index": i,
        "step": d.col_step,
        "values": [jsonable(v) for v in d.image[0]],
    }


def picture_facts(levels: list[np.ndarray], view: TensorView) -> dict[str, Any]:
    """Size, layout and statistics of a picture, and the colour limit of each zoom level.

    Each level is scaled by the report's rule applied to its own cells (a shrunk level by its
    |pixels|, each the largest |w| of its block), so the whole-tensor view looks like the
    report's image and typical cells stay mid-tone at every zoom.
    """
    m = levels[0]
    limits = [color_limit(a, of="|w|" if k == 0 else "|pixels|") for k, a in enumerate(levels)]
    stats = summary_stats(m)
    return {
        "rows": axis_json(view.rows), "cols": axis_json(view.cols),
        "height": int(m.shape[0]), "width": int(m.shape[1]), "tile": TILE,
        "levels": len(levels), "vmax": [c.vmax for c in limits],
        "scale": [format_limit(c) for c in limits],
        "note": view.note,
        "stats": {k: jsonable(stats[k]) for k in ("min", "max", "mean", "std", "n_nan", "n_inf")},
    }  # fmt: skip


def axis_json(axis: DisplayAxis) -> dict[str, list[int]]:
    return {"axes": list(axis.axes), "sizes": list(axis.sizes)}


def finding_record(row: pd.Series, view: TensorView | None) -> dict[str, Any]:
    index = [None if i is None or pd.isna(i) else int(i) for i in row["index"]]
    place: dict[str, Any] = {"row": None, "col": None}
    if view is not None and len(index) == len(view.shape):
        for side, axis in (("row", view.rows), ("col", view.cols)):
            pos = axis.locate(index) if axis.axes else 0.0
            place[side] = pos if isinstance(pos, float) else None
    return {
        "kind": str(row["kind"]), "tensor": str(row["tensor"]), "index": index,
        "significance": jsonable(row.get("significance")),
        "score": jsonable(row["score"]), "value": jsonable(row.get("value")),
        "residual_dim": jsonable(row.get("residual_dim")), "detail": str(row.get("detail", "")),
        "layer": jsonable(row.get("layer")), "role": str(row.get("role", "")), **place,
    }  # fmt: skip


def jsonable(v: Any) -> Any:
    """A JSON-safe scalar: numpy numbers to Python, NaN/Inf/NA to None."""
    if v is None or v is pd.NA:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    return v
