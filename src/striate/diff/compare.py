"""A's findings in B: what B holds where A had a finding, and whether the finding survived.

Both tensors are analysed as the scan analyses one tensor (`striate.scan.analyse_tensor`), with
A's anatomy and the same settings, B in A's storage coordinates. A finding of A is found in B
when B's analysis reports one of the same kind at the same index. Its value in B is measured
the way A's was:

    hotspot       the weight at its index                 strength: the weight
    line          the line's scale / the median line's    strength: log(ratio) (0: an ordinary line)
                  (trimmed mean |w|, `analyses.lines`)
    norm_outlier  the gain (or bias) entry                strength: entry - median of the vector
    residual_dim  the pooled z of the dim in the group    strength: the z
                  (all / read / write) where A's is strongest

`retention` = strength in B / strength in A (1: unchanged, 0: gone, negative: reversed; a line
whose weights are all 0 in B has retention 0, quiet or loud), and

    lost      retention < compare.lost (0.2)
    kept      retention >= compare.kept (0.8) and B's analysis still reports the finding
    weakened  otherwise: 0.2 <= retention < 0.8, or the value is kept but B's analysis no longer
              reports it (its surroundings changed)
    new       reported by B's analysis, not by A's (value_a: A's value at that index)

Other kinds (periodic, head, nonfinite, banding) have no value to measure at an index: kept when
B's analysis reports the same finding, else lost (retention null).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from striate.analyses.finding import Finding
from striate.analyses.lines import POWER
from striate.analyses.robust import line_mean_abs, median
from striate.anatomy import TensorAnatomy
from striate.diff.config import CompareConfig

#: finding kinds whose value diff measures in B (see the module docstring)
MEASURED = ("hotspot", "line", "norm_outlier")
#: finding kinds that sit at one weight (their blocks are in diff_blocks)
POINTS = ("hotspot", "norm_outlier")
#: the statuses, in the order diff_findings lists them
STATUSES = ("lost", "weakened", "new", "kept")

#: the columns of diff_findings.parquet
FINDING_COLUMNS = [
    "kind", "tensor", "tensor_b", "index", "residual_dim", "layer", "role", "status",
    "value_a", "value_b", "rel_change", "retention", "found_in_a", "found_in_b",
    "significance_a", "significance_b", "score_a", "score_b", "block_error_ratio", "detail",
]  # fmt: skip


def status(retention: float, found_in_b: bool, config: CompareConfig) -> str:
    """The status of a finding of A from its retention in B and whether B's analysis reports
    it (module docstring); retention NaN: kept if reported, else lost.

    >>> c = CompareConfig()
    >>> status(0.95, True, c), status(0.95, False, c), status(0.5, True, c), status(0.1, True, c)
    ('kept', 'weakened', 'weakened', 'lost')
    """
    if math.isnan(retention):
        return "kept" if found_in_b else "lost"
    if retention < config.lost:
        return "lost"
    return "kept" if retention >= config.kept and found_in_b else "weakened"


def line_ratio(w: np.ndarray, axis: int, i: int) -> float:
    """Scale of line `i` along storage `axis` of `w` over the median line's, as
    `analyses.lines` defines a line finding's value (trimmed mean |w|, median taken on
    scale ** POWER); 0 for a dead line, NaN when no line of the axis has a scale."""
    n = w.shape[axis]
    scale = line_mean_abs(np.moveaxis(w, axis, 0).reshape(n, -1), axis=1)
    valid = np.isfinite(scale) & (scale > 0)
    if not valid.any() or not np.isfinite(scale[i]):
        return math.nan
    centre = float(np.median(scale[valid] ** POWER))
    return float((scale[i] ** POWER / centre) ** (1 / POWER))


def measure(kind: str, w: np.ndarray, index: tuple[int | None, ...], axis: int | None) -> float:
    """The value of a finding of `kind` at `index` in the tensor `w` (module docstring);
    `axis`: a line's storage axis. NaN for kinds without a measure."""
    if kind in POINTS:
        return float(w[tuple(int(i) for i in index if i is not None)])
    if kind == "line" and axis is not None:
        i = index[axis]
        return math.nan if i is None else line_ratio(w, axis, i)
    return math.nan


def strength(kind: str, value: float, w: np.ndarray) -> float:
    """How far `value` stands out in `w`, on the scale retention compares (module docstring)."""
    if kind == "line":
        return math.log(value) if value > 0 else (-math.inf if value == 0 else math.nan)
    if kind == "norm_outlier":
        return value - median(np.asarray(w).reshape(-1))
    return value


def retention(kind: str, value_a: float, value_b: float, a: np.ndarray, b: np.ndarray) -> float:
    """Strength in B over strength in A (NaN where a kind has no measure or A's is 0)."""
    if kind not in MEASURED:
        return math.nan
    if kind == "line" and value_b == 0:  # all its weights are 0 in B: gone, quiet or loud
        return 0.0
    base = strength(kind, value_a, a)
    if not base or not math.isfinite(base):
        return math.nan
    return strength(kind, value_b, b) / base


def _key(f: Finding) -> tuple[str, tuple[int | None, ...]]:
    return f.kind, tuple(None if i is None else int(i) for i in f.index)


def _axis(f: Finding) -> int | None:
    axis = f.extra.get("axis")
    return int(axis) if isinstance(axis, (int, np.integer)) else None


def _rel(value_a: float, value_b: float) -> float:
    return (value_b - value_a) / abs(value_a) if value_a else math.nan


def compare_findings(
    pair_names: tuple[str, str],
    part: TensorAnatomy,
    a: np.ndarray,
    b: np.ndarray,
    found_a: list[Finding],
    found_b: list[Finding],
    config: CompareConfig,
) -> list[dict[str, Any]]:
    """The rows of diff_findings for one tensor: each finding of A (`found_a`, from `a`) with
    its value and status in B (`b`, A's coordinates; `found_b` its findings), then each finding
    only B has, status "new". `pair_names`: the tensor's names in A and B."""
    in_a = {_key(f): f for f in found_a}
    in_b = {_key(f): f for f in found_b}
    rows = []
    for key, f in in_a.items():
        mine = in_b.get(key)
        value_b = measure(f.kind, b, f.index, _axis(f))
        if f.kind not in MEASURED:
            value_b = math.nan if mine is None else float(mine.value)
        kept = retention(f.kind, float(f.value), value_b, a, b)
        rows.append(_row(pair_names, part, f, mine, float(f.value), value_b, kept,
                         status(kept, mine is not None, config)))  # fmt: skip
    for key, f in in_b.items():
        if key in in_a:
            continue
        value_a = measure(f.kind, a, f.index, _axis(f))
        rows.append(_row(pair_names, part, f, f, value_a, float(f.value), math.nan, "new"))
    return rows


def _row(
    names: tuple[str, str],
    part: TensorAnatomy,
    f: Finding,
    in_b: Finding | None,
    value_a: float,
    value_b: float,
    kept: float,
    verdict: str,
) -> dict[str, Any]:
    new = verdict == "new"
    return {
        "kind": f.kind,
        "tensor": names[0],
        "tensor_b": names[1],
        "index": [None if i is None else int(i) for i in f.index],
        "residual_dim": f.residual_dim(part.residual_axis),
        "layer": part.layer,
        "role": part.role,
        "status": verdict,
        "value_a": value_a,
        "value_b": value_b,
        "rel_change": _rel(value_a, value_b),
        "retention": kept,
        "found_in_a": not new,
        "found_in_b": in_b is not None,
        "significance_a": math.nan if new else float(f.significance),
        "significance_b": math.nan if in_b is None else float(in_b.significance),
        "score_a": math.nan if new else float(f.score),
        "score_b": math.nan if in_b is None else float(in_b.score),
        "block_error_ratio": math.nan,
        "detail": f.detail,
    }
