"""Attention-head blocks: how much an attention projection is organised by head.

A q/k/v projection's output axis (an attention output projection's input axis) is n_blocks
contiguous blocks of head_size indices: n_heads blocks, 3 * n_heads for a fused qkv such as
GPT-2's `c_attn`, n_kv_heads for grouped k/v. In GPT-2 the heads show as bands: each head has
its own scale.

Score: the between-head share of the variance of per-index log-RMS (ANOVA eta^2). With
y_r = log(RMS of the finite entries of index r along head_axis) and h(r) its head,

    eta^2 = sum_h n_h (mean_h y - mean y)^2 / sum_r (y_r - mean y)^2      in [0, 1].

It is ~1 when each head has its own scale and the indices within a head agree, and for rows
that do not depend on the head (noise) its expectation is exactly (n_blocks - 1) / (N - 1),
N = number of indices (0.015 for GPT-2's c_attn: 36 blocks, 2304 columns): that is `null`.
`z` compares eta^2 with its permutation distribution (indices shuffled across heads, `perms`
times, seeded): z = (eta^2 - null) / std of the permuted eta^2. Log-RMS rather than RMS makes
a head at 2x and one at 0.5x equally far from the rest; indices with no finite or only zero
entries are left out.

Findings: heads whose Frobenius norm stands out from the other heads: robust z of log(norm)
(median and 1.4826 * MAD over the heads, the fallback of `striate.analyses.robust.robust_z` when
MAD = 0) with |z| >= z and a norm at least `ratio` times (or at most 1 / ratio times) the median
head. The ratio keeps heads of a trained model that differ by a few percent, but very
consistently, from being reported: in a noise matrix head norms differ by ~1 / sqrt(2 * numel
per head), a fraction of a percent. With fewer than 3 heads nothing is reported.

eta^2 sees scale differences between heads only. In RoPE models (SmolLM2) the rows of k_proj
vary strongly *within* each head, with the rotary frequency, so eta^2 can be near its null even
where whole heads differ in norm by 20%; the per-head findings still see those.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from striate.analyses.finding import Finding
from striate.analyses.robust import expected_count, robust_z

__all__ = ["HeadResult", "HeadsConfig", "head_blocks"]


@dataclass(frozen=True)
class HeadsConfig:
    """Thresholds for `head_blocks`.

    z: |robust z| of a head's log-norm among the heads at or above which it stands out. Lower
        than for single entries: there are only tens of heads, and `ratio` guards against noise.
    ratio: and its norm must be at least this factor above or below the median head's.
    max_per_tensor: strongest heads kept per tensor.
    perms: shuffles of the indices for the permutation null of eta^2 (0: no `z`).
    seed: seed of those shuffles.
    min_heads: fewer heads than this give no head findings: a robust z over 2-5 heads is
        unstable (SmolLM2's 3 key/value heads scored z=387 for a 0.64x head).
    """

    z: float = 4.0  # |robust z| of log head norm
    ratio: float = 1.5  # x the median head norm, either way
    max_per_tensor: int = 4  # strongest kept per tensor
    perms: int = 200  # permutations for the null of eta^2
    seed: int = 0  # seed of the permutations
    min_heads: int = 6  # judge single heads only among at least this many


@dataclass(frozen=True, eq=False)
class HeadResult:
    """What `head_blocks` measured.

    norms: Frobenius norm of each head's block over its finite entries, float64 [n_blocks].
    score: eta^2 of per-index log-RMS grouped by head, 0..1 (NaN if fewer than 2 usable heads).
    null: its expectation when the head partition explains nothing, (n_blocks - 1) / (N - 1).
    z: (score - null) / std of eta^2 over `perms` shuffles (NaN when perms = 0).
    findings: the heads that stand out, strongest first.
    """

    norms: np.ndarray
    score: float
    null: float
    z: float
    findings: list[Finding]


_ROWS = 1024  # indices per batch when summing squares in float64


def _sums(w: np.ndarray, head_axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(sum of squares, count) of the finite entries of each index along head_axis, [N] each."""
    x = np.moveaxis(w, head_axis, 0).reshape(w.shape[head_axis], -1)
    sumsq, count = np.zeros(x.shape[0]), np.zeros(x.shape[0])
    for start in range(0, x.shape[0], _ROWS):
        part = x[start : start + _ROWS].astype(np.float64)
        ok = np.isfinite(part)
        sumsq[start : start + _ROWS] = np.square(np.where(ok, part, 0.0)).sum(axis=1)
        count[start : start + _ROWS] = ok.sum(axis=1)
    return sumsq, count


def _eta2(y: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """eta^2 of each row of y [P, N] grouped by onehot [N, k]."""
    dev = y - y.mean(axis=1, keepdims=True)
    sizes = onehot.sum(axis=0)
    between = ((dev @ onehot) ** 2 / np.maximum(sizes, 1)).sum(axis=1)
    total = (dev**2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, between / total, 0.0)


def head_blocks(w: np.ndarray, n_blocks: int, head_axis: int, config: HeadsConfig) -> HeadResult:
    """Per-head norms, the head-structure score and the heads that stand out.

    w: any shape; axis `head_axis` (length N) is n_blocks contiguous blocks of N / n_blocks:
        GPT-2 c_attn [d, 3d] with head_axis=1, n_blocks=3 * n_heads; a LLaMA q_proj [d, d] with
        head_axis=0, n_blocks=n_heads; an o_proj [d, d] with head_axis=1.
    Each finding: kind "head", index = the block's first index on head_axis and None elsewhere,
    score |robust z|, value = the head's norm, extra {"head", "head_size", "start", "stop"
    (exclusive), "z" (signed), "ratio" (norm / median head norm)}.
    Raises ValueError when N is not divisible by n_blocks.

    >>> w = np.random.default_rng(0).standard_normal((768, 768)).astype(np.float32)
    >>> w[448:512] *= 3
    >>> r = head_blocks(w, 12, 0, HeadsConfig())
    >>> [f.extra["head"] for f in r.findings], r.score > 0.9
    ([7], True)
    """
    if not -w.ndim <= head_axis < w.ndim:
        raise ValueError(f"head_axis={head_axis} is out of range for shape {w.shape}")
    axis = head_axis % w.ndim
    n = w.shape[axis]
    if n_blocks < 1 or n % n_blocks:
        raise ValueError(
            f"axis {axis} of shape {w.shape} has {n} indices, not divisible into {n_blocks} heads"
        )
    size = n // n_blocks
    sumsq, count = _sums(np.asarray(w), axis)
    head = np.arange(n) // size
    norms = np.sqrt(np.bincount(head, sumsq, minlength=n_blocks))
    norms[np.bincount(head, count, minlength=n_blocks) == 0] = np.nan

    with np.errstate(divide="ignore", invalid="ignore"):
        rms = np.sqrt(sumsq / count)
    usable = (count > 0) & (rms > 0)
    y, groups = np.log(rms[usable]), head[usable]
    onehot = (groups[:, None] == np.unique(groups)[None, :]).astype(np.float64)
    score = null = z = float("nan")
    if onehot.shape[1] >= 2 and y.size > onehot.shape[1]:
        score = float(_eta2(y[None, :], onehot)[0])
        null = (onehot.shape[1] - 1) / (y.size - 1)
        if config.perms > 0:
            rng = np.random.default_rng(config.seed)
            shuffled = rng.permuted(np.broadcast_to(y, (config.perms, y.size)), axis=1)
            spread = float(_eta2(shuffled, onehot).std())
            z = (score - null) / spread if spread > 0 else float("nan")
    return HeadResult(norms, score, null, z, _standouts(norms, size, axis, w.ndim, config))


def _standouts(
    norms: np.ndarray, size: int, axis: int, ndim: int, config: HeadsConfig
) -> list[Finding]:
    """Heads whose log-norm has |robust z| >= config.z and ratio to the median >= config.ratio."""
    (heads,) = np.nonzero(np.isfinite(norms) & (norms > 0))
    if heads.size < max(3, config.min_heads):
        return []
    z, _, scale = robust_z(np.log(norms[heads]))
    median = float(np.median(norms[heads]))
    ratio = norms[heads] / median
    far = np.maximum(ratio, 1 / ratio) >= config.ratio
    (hits,) = np.nonzero((np.abs(z) >= config.z) & far) if scale > 0 else (np.zeros(0, int),)
    hits = hits[np.argsort(-np.abs(z[hits]), kind="stable")][: config.max_per_tensor]
    noun = ("rows", "columns")[axis] if ndim == 2 else f"indices on axis {axis}"
    findings = []
    for j in hits:
        h, zj, r = int(heads[j]), float(z[j]), float(ratio[j])
        start = h * size
        index = tuple(start if a == axis else None for a in range(ndim))
        findings.append(
            Finding(
                kind="head",
                index=index,
                score=abs(zj),
                value=float(norms[h]),
                detail=f"head {h} ({noun} {start}-{start + size - 1}) norm {r:.3g}x the "
                "median head",
                extra={
                    "head": h,
                    "head_size": size,
                    "start": start,
                    "stop": start + size,
                    "z": zj,
                    "ratio": r,
                },
                significance=-float(expected_count(zj, heads.size)),
            )
        )
    return findings
