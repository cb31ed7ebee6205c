"""NaN and ±Inf weights: reported as findings, and kept out of every other statistic."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from striate.analyses.finding import Finding


@dataclass(frozen=True)
class NonfiniteConfig:
    first: int = 5  # how many first indices of non-finite values the detail lists


def find_nonfinite(w: np.ndarray, config: NonfiniteConfig) -> list[Finding]:
    """One `kind="nonfinite"` finding if `w` (any shape) holds NaN or ±Inf, else none.

    `index` is the first non-finite element; `value` the count; `score` the share of the tensor.
    """
    bad = ~np.isfinite(w)
    count = int(bad.sum())
    if count == 0:
        return []
    first = np.argwhere(bad)[: config.first]
    n_nan = int(np.isnan(w).sum())
    listed = ", ".join(str(tuple(int(i) for i in idx)) for idx in first)
    return [
        Finding(
            kind="nonfinite",
            index=tuple(int(i) for i in first[0]),
            score=count / w.size,
            value=float(count),
            detail=f"{count} non-finite values ({n_nan} NaN, {count - n_nan} ±Inf), "
            f"first at {listed}",
            extra={"n_nan": n_nan, "n_inf": count - n_nan},
            significance=math.inf,  # no weight of a finite tensor is NaN by chance
        )
    ]
