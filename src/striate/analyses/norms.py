"""Norm outliers: entries of a LayerNorm / RMSNorm gain or bias that sit far from the rest.

In GPT-2 a few gain entries (e.g. dimension 447 of `h.*.ln_1.weight`) are tens of times the
typical gain; those are the "spectral lines" that run through the matrices fed by that norm.

Robust z-score of entry i, over the finite entries x of the vector:

    z_i = (x_i - median(x)) / scale,   scale = max(1.4826 * MAD, rel_floor * median(|x|))

1.4826 * MAD estimates the standard deviation of a Gaussian bulk without being moved by the
outliers. When more than half the entries are identical (a gain left at its init of all ones, a
zero bias with a few trained entries), MAD = 0; then scale falls back to the mean absolute
deviation from the median, times sqrt(pi / 2) = 1.2533 (again a Gaussian sigma), which is > 0 as
soon as any entry differs. `rel_floor` keeps float noise around a constant (1.0 vs 1.0001) from
becoming a z of thousands: deviations below 0.1% of the typical magnitude are never outliers.
A vector whose finite entries are all equal has no outliers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from striate.analyses.finding import Finding
from striate.analyses.robust import expected_count, median, robust_z

__all__ = ["NormsConfig", "find_norm_outliers"]


@dataclass(frozen=True)
class NormsConfig:
    """Thresholds for `find_norm_outliers`.

    z: |robust z| at or above which an entry is an outlier. Gaussian vectors never get there
        (P(|z| >= 8) ~ 1e-15 per entry), GPT-2's gain outliers score in the tens. Trained norms
        are heavy-tailed: on MiniLM's 26 LayerNorm vectors z >= 6 / 8 / 10 flags 92 / 58 / 43
        entries, on SmolLM2's 61 RMSNorm gains 382 / 225 / 158.
    max_per_tensor: the strongest outliers kept per vector. With 5 (and z = 8) MiniLM gives 51
        findings and SmolLM2 105, led by the dimensions that recur across layers (MiniLM 223,
        267, 319; SmolLM2 100, 446, 8).
    rel_floor: the scale is at least rel_floor * median(|x|) (see the module docstring).
    """

    z: float = 8.0  # |robust z| threshold
    max_per_tensor: int = 5  # strongest kept per vector
    rel_floor: float = 1e-3  # scale >= rel_floor * median|x|


def find_norm_outliers(g: np.ndarray, config: NormsConfig, *, label: str = "gain") -> list[Finding]:
    """Entries of a norm's gain or bias `g` whose |robust z| >= `config.z`, strongest first.

    g: shape [d] (any shape works: indices are reported in its storage coordinates).
    label: what `g` is, for the detail text ("gain", "bias").
    Non-finite entries are ignored (they are another analysis's finding, kind "nonfinite").

    Each finding: kind "norm_outlier", index (i,), score |z|, value g[i],
    extra {"median": median of the finite entries, "z": signed z}.

    >>> g = np.ones(768, np.float32); g[447] = 12.0
    >>> [f.index for f in find_norm_outliers(g, NormsConfig())]
    [(447,)]
    """
    flat = np.asarray(g).reshape(-1).astype(np.float64)
    (pos,) = np.nonzero(np.isfinite(flat))
    values = flat[pos]
    floor = config.rel_floor * median(np.abs(values)) if values.size else 0.0
    z, med, scale = robust_z(values, floor=floor)
    if scale == 0.0:
        return []
    (hits,) = np.nonzero(np.abs(z) >= config.z)
    hits = hits[np.argsort(-np.abs(z[hits]), kind="stable")][: config.max_per_tensor]
    findings = []
    for j in hits:
        index = tuple(int(i) for i in np.unravel_index(int(pos[j]), np.shape(g)))
        zj, v = float(z[j]), float(flat[pos[j]])
        where = ", ".join(map(str, index))
        findings.append(
            Finding(
                kind="norm_outlier",
                index=index,
                score=abs(zj),
                value=v,
                detail=f"{label}[{where}] = {v:.4g} vs median {med:.4g} (z={zj:.3g})",
                extra={"median": med, "z": zj},
                significance=-float(expected_count(zj, values.size)),
            )
        )
    return findings
