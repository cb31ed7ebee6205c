"""The quantization view: B's error per block of the storage format, and around each outlier.

A block format stores each run of `size` consecutive weights (along the fastest-varying stored
axis: the last axis of the tensor as striate reads it) with one scale, set by the block's largest
magnitude. A super weight in a block makes that scale large and can round its block-mates to
zero. For each tensor, with E = B - A in A's storage coordinates:

    block error      RMS of E over one block
    median           the tensor's typical (median) block error
    around a point finding of A (a hotspot or a norm outlier) at index i: the other weights of
    its block ("block-mates", the weights sharing its scale):
        others_error      RMS of E over them;  error_ratio = others_error / median
        others_rel_error  others_error / RMS of A over them (1.0: as if they were all set to 0)
        others_zeroed     how many were non-zero in A and are exactly 0 in B

Which blocks (`BlockGrid`): B's GGUF block type when B is a quantized GGUF tensor, else A's when
A is (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1: 32 weights; K-quants: the sub-block that has a scale of its
own, 16 or 32 weights, inside their super-blocks of 256; other GGUF types: the package's
`GGML_QUANT_SIZES` block), else a fixed block of `compare.block` (32) along B's last stored axis
(the last block of a line is shorter when the axis is not a multiple). Blocks are taken in A's
coordinates: along A's last axis, or its first when B stores A transposed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from striate.diff.matching import Pair
from striate.errors import require

#: K-quants: weights per scale inside a super-block of 256 (ggml-common.h `block_q*_K`)
SCALE_GROUPS = {"Q2_K": 16, "Q3_K": 16, "Q4_K": 32, "Q5_K": 32, "Q6_K": 16}

#: the columns of diff_blocks.parquet
BLOCK_COLUMNS = [
    "tensor", "kind", "index", "block_axis", "block_size", "block_format", "block_start",
    "value_a", "value_b", "error", "n_others", "others_rms_a", "others_error", "others_rel_error",
    "others_zeroed", "block_error", "block_error_median", "error_ratio", "detail",
]  # fmt: skip
_CHUNK = 1 << 20  # elements per float64 chunk of `block_rms`


@dataclass(frozen=True)
class BlockGrid:
    """The blocks of one tensor: `size` weights along `axis` of A's storage coordinates;
    `format` is the stored type whose blocks they are ("Q4_0"), or "fixed"."""

    size: int
    axis: int
    format: str


def format_block(fmt: str, dtype: str) -> int | None:
    """Weights per scale of the GGUF block type `dtype`, or None for a plain type or a
    format other than GGUF.

    >>> format_block("gguf", "Q4_K"), format_block("gguf", "F32"), format_block("npz", "Q8_0")
    (32, None, None)
    """
    if fmt != "gguf":
        return None
    if dtype in SCALE_GROUPS:
        return SCALE_GROUPS[dtype]
    gguf: Any = require("gguf", "gguf", purpose="reading GGUF block sizes")
    try:
        size = int(gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[dtype]][0])
    except KeyError:
        return None
    return size if size > 1 else None


def block_grid(pair: Pair, format_a: str, format_b: str, fallback: int) -> BlockGrid | None:
    """The blocks of `pair` (module docstring); None for a 0-d tensor."""
    ndim = len(pair.info_a.shape)
    if ndim == 0:
        return None
    along_b = 0 if pair.transposed else ndim - 1
    if size := format_block(format_b, pair.info_b.dtype):
        return BlockGrid(size, along_b, pair.info_b.dtype)
    if size := format_block(format_a, pair.info_a.dtype):
        return BlockGrid(size, ndim - 1, pair.info_a.dtype)
    return BlockGrid(fallback, along_b, "fixed")


def block_rms(a: np.ndarray, b: np.ndarray, grid: BlockGrid) -> np.ndarray:
    """RMS of B - A (`a`, `b` of one shape) over each block, float64 of shape (lines, blocks per
    line): the lines are the other axes in C order, the blocks run along `grid.axis`. Taken in
    float64 chunks of about a million weights: no copy of the whole tensor.

    >>> e = np.array([[3.0, 3.0, 4.0], [0.0, 0.0, 1.0]])
    >>> block_rms(np.zeros_like(e), e, BlockGrid(2, 1, "fixed"))
    array([[3., 4.],
           [0., 1.]])
    """
    length = a.shape[grid.axis]
    lines_a = np.moveaxis(a, grid.axis, -1).reshape(-1, length)
    lines_b = np.moveaxis(b, grid.axis, -1).reshape(-1, length)
    full, rest = divmod(length, grid.size)
    out = np.empty((lines_a.shape[0], full + (rest > 0)))
    step = max(1, _CHUNK // max(length, 1))
    for start in range(0, lines_a.shape[0], step):
        chunk = lines_b[start : start + step].astype(np.float64)
        chunk -= lines_a[start : start + step]
        np.square(chunk, out=chunk)
        if full:
            body = chunk[:, : full * grid.size].reshape(chunk.shape[0], full, grid.size)
            out[start : start + step, :full] = np.sqrt(body.mean(axis=2))
        if rest:
            out[start : start + step, full] = np.sqrt(chunk[:, full * grid.size :].mean(axis=1))
    return out


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else math.nan


def _ratio(x: float, typical: float) -> float:
    if typical > 0 or math.isnan(typical):
        return x / typical
    return 0.0 if x == 0 else math.inf  # B equals A in most blocks


def block_row(
    tensor: str,
    kind: str,
    index: tuple[int, ...],
    a: np.ndarray,
    b: np.ndarray,
    grid: BlockGrid,
    median: float,
) -> dict[str, Any]:
    """The row of diff_blocks for the weight at `index` (A's storage coordinates) of A `a` and
    B `b` (one shape) and its block-mates; `median` is the tensor's median block error."""
    start = index[grid.axis] // grid.size * grid.size
    stop = min(start + grid.size, a.shape[grid.axis])
    where: list[Any] = list(index)
    where[grid.axis] = slice(start, stop)
    block_a = np.asarray(a[tuple(where)], dtype=np.float64).reshape(-1)
    block_b = np.asarray(b[tuple(where)], dtype=np.float64).reshape(-1)
    mates = np.arange(block_a.size) != index[grid.axis] - start
    point_a, point_b = block_a[~mates][0], block_b[~mates][0]
    others_a, others_b = block_a[mates], block_b[mates]
    others_error, others_rms = _rms(others_b - others_a), _rms(others_a)
    zeroed = int(np.count_nonzero((others_a != 0) & (others_b == 0)))
    ratio = _ratio(others_error, median)
    n = int(others_a.size)
    what = "its largest weight" if kind == "worst" else kind
    at = f"{what} w[{', '.join(map(str, index))}] = {point_a:.4g} (B: {point_b:.4g})"
    unit = f"{'fixed' if grid.format == 'fixed' else grid.format} block of {grid.size}"
    if n and zeroed == n:
        detail = (f"the {unit} around {at} lost its other {n} weights (all 0 in B); their "
                  f"error is {ratio:.3g}x the tensor's median block error")  # fmt: skip
    else:
        share = others_error / others_rms if others_rms else math.nan
        detail = (f"the other {n} weights of the {unit} around {at}: error {ratio:.3g}x the "
                  f"tensor's median block error, {share:.0%} of their RMS, "
                  f"{zeroed} set to 0")  # fmt: skip
    return {
        "tensor": tensor,
        "kind": kind,
        "index": [int(i) for i in index],
        "block_axis": grid.axis,
        "block_size": grid.size,
        "block_format": grid.format,
        "block_start": int(start),
        "value_a": float(point_a),
        "value_b": float(point_b),
        "error": float(abs(point_b - point_a)),
        "n_others": n,
        "others_rms_a": others_rms,
        "others_error": others_error,
        "others_rel_error": others_error / others_rms if others_rms else math.nan,
        "others_zeroed": zeroed,
        "block_error": _rms(block_b - block_a),
        "block_error_median": median,
        "error_ratio": ratio,
        "detail": detail,
    }


def block_view(
    tensor: str,
    a: np.ndarray,
    b: np.ndarray,
    grid: BlockGrid,
    points: list[tuple[str, tuple[int, ...]]],
    worst: int,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The tensor's block columns of diff.parquet and its rows of diff_blocks: one per point
    finding of A (`points`: (kind, index)) and one for each of the `worst` blocks with the
    largest error that holds no point finding, kind "worst", at the block's largest |A|
    weight."""
    rms = block_rms(a, b, grid) if a.size else np.zeros((0, 0))
    finite = rms[np.isfinite(rms)]
    median = float(np.median(finite)) if finite.size else math.nan
    largest = float(finite.max()) if finite.size else math.nan
    summary = {
        "block_size": grid.size,
        "block_axis": grid.axis,
        "block_format": grid.format,
        "block_error_median": median,
        "block_error_max": largest,
        "block_error_ratio_max": _ratio(largest, median),
    }
    rows = [block_row(tensor, kind, index, a, b, grid, median) for kind, index in points]
    seen = {_block_of(index, grid) for _, index in points}
    flat = np.nan_to_num(rms, nan=-1.0).reshape(-1)
    n = min(worst + len(seen), flat.size)
    top = np.argpartition(flat, flat.size - n)[flat.size - n :] if worst and n else flat[:0]
    lines = np.moveaxis(a, grid.axis, -1)
    for k in sorted(top.tolist(), key=lambda k: (-flat[k], k)):
        line, j = divmod(int(k), rms.shape[1])
        other = [int(i) for i in np.unravel_index(line, lines.shape[:-1])] if lines.ndim > 1 else []
        where: tuple[Any, ...] = (*other, slice(j * grid.size, (j + 1) * grid.size))
        values = lines[where]
        other.insert(grid.axis, j * grid.size + int(np.argmax(np.abs(values))))
        if _block_of(tuple(other), grid) in seen or len(rows) - len(points) >= worst:
            continue
        rows.append(block_row(tensor, "worst", tuple(other), a, b, grid, median))
    return summary, rows


def _block_of(index: tuple[int, ...], grid: BlockGrid) -> tuple[int, ...]:
    """The block holding `index`, as its first weight's index."""
    return tuple(i // grid.size * grid.size if k == grid.axis else i for k, i in enumerate(index))
