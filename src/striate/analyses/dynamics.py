"""Training dynamics of a weight matrix across checkpoints: what the updates look like and how
the top singular directions move.

For a series of checkpoints W_0, ..., W_T of one matrix (rows, cols) = (out, in):

    update0_*        the update from initialization D = W_t - W_0
    update_prev_*    the last step's update D = W_t - W_{t-1} (NaN at the first checkpoint)
                     norm ||D||_F; relative ||D||_F / ||W_from||_F; effective_rank and
                     stable_rank of D with `striate.analyses.spectrum`'s definitions (a low-rank
                     update has a small effective rank: the "low-rank dynamics" of training)
    overlap_*_final  how much of W_t's top-k left (output) / right (input) singular subspace
                     is already the final checkpoint's: `subspace_overlap`, in [0, 1]
    overlap_*_prev   the same against the previous checkpoint (NaN at the first)

`layer_alignment` compares consecutive layers: the output space of W_l (top-k left singular
vectors) against the input space of W_{l+1} (top-k right singular vectors).

Differences are taken in float64 (the difference of two float32 numbers is exact there). The
SVD is LAPACK's economy `gesdd` on float64 (`top_singular`), fine for the matrices of a checkpoint
series (a 4096 x 4096 matrix: a few seconds). A series needs one per checkpoint and matrix: keep
each one's top-k factors (`top_factors`) and pass them to `dynamics_from_factors` and
`alignment_from_factors`, as `striate track` does; an update's spectrum needs only singular
values (`striate.analyses.spectrum.singular_values`). A top-k subspace is only defined when
s_k > 0 and s_k > s_{k+1}: k is clipped to the smaller side and to the numerical rank
(spectrum's tolerance) of both matrices, so directions of the null space never enter an
overlap; near-equal s_k and s_{k+1} (e.g. a random init) make the overlap noisy, not wrong.
The overlaps depend on the subspaces only, not on the signs LAPACK gives singular vectors.
NaN/Inf weights give NaN.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np

from striate.analyses.spectrum import SpectrumConfig, singular_values, spectrum_metrics

__all__ = [
    "DYNAMICS_KEYS",
    "DynamicsConfig",
    "TopFactors",
    "alignment_from_factors",
    "checkpoint_dynamics",
    "dynamics_from_factors",
    "layer_alignment",
    "subspace_overlap",
    "top_factors",
    "top_singular",
    "update_metrics",
]

#: the keys of `checkpoint_dynamics`, in column order
DYNAMICS_KEYS = (
    "update0_norm", "update0_relative", "update0_effective_rank", "update0_stable_rank",
    "update_prev_norm", "update_prev_relative", "update_prev_effective_rank",
    "update_prev_stable_rank",
    "overlap_left_final", "overlap_right_final", "overlap_left_prev", "overlap_right_prev",
)  # fmt: skip
_UPDATE_KEYS = ("norm", "relative", "effective_rank", "stable_rank")
_NO_FIT = SpectrumConfig(fit_min_evals=sys.maxsize)  # ranks only: skip the power-law fit


@dataclass(frozen=True)
class DynamicsConfig:
    """Settings of the dynamics analysis (section `dynamics`)."""

    top_k: int = 8  # singular directions compared (clipped to min side and numerical ranks)


def top_singular(m: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The top-k singular triplets of the 2-D matrix `m` (rows, cols), float64:
    U_k (rows, k), S_k (k,) descending, Vh_k (k, cols); k clipped to min(rows, cols).
    All NaN when m holds NaN or Inf. Economy SVD of m in float64 (`np.linalg.svd`); the
    triplets are copies, so the full factors are freed.

    >>> u, s, vh = top_singular(np.diag([1.0, 3.0, 2.0]), 2)
    >>> s, np.abs(u[:, 0])
    (array([3., 2.]), array([0., 1., 0.]))
    """
    if m.ndim != 2:
        raise ValueError(f"top_singular needs a 2-D matrix, got shape {m.shape}")
    rows, cols = m.shape
    k = max(0, min(k, rows, cols))
    if not np.isfinite(m).all():
        return np.full((rows, k), np.nan), np.full(k, np.nan), np.full((k, cols), np.nan)
    u, s, vh = np.linalg.svd(np.asarray(m, dtype=np.float64), full_matrices=False)
    return u[:, :k].copy(), s[:k].copy(), vh[:k].copy()


@dataclass(frozen=True)
class TopFactors:
    """What the overlaps need of one matrix (rows, cols): its top-k singular triplets
    (`top_singular`) u (rows, k), s (k,), vh (k, cols), float64, and `rank`, how many of them
    are above the numerical-rank tolerance (0 for a zero or non-finite matrix)."""

    u: np.ndarray
    s: np.ndarray
    vh: np.ndarray
    rank: int

    @property
    def shape(self) -> tuple[int, int]:
        """The shape (rows, cols) of the matrix."""
        return self.u.shape[0], self.vh.shape[1]


def top_factors(m: np.ndarray, k: int) -> TopFactors:
    """The `TopFactors` of the 2-D matrix `m` (rows, cols): one SVD (`top_singular`).

    >>> f = top_factors(np.diag([3.0, 2.0, 0.0]), 8)
    >>> f.s, f.rank, f.shape
    (array([3., 2., 0.]), 2, (3, 3))
    """
    u, s, vh = top_singular(m, k)
    return TopFactors(u, s, vh, _rank(s, m.shape))


def subspace_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared cosine of the principal angles between span(a) and span(b):
    ||a^T b||_F^2 / min(k_a, k_b), in [0, 1]; 1: one subspace contains the other, 0: orthogonal.
    Random k-dimensional subspaces of R^n give ~ k / n.

    a (n, k_a), b (n, k_b): orthonormal columns. NaN when either is empty or not finite.

    >>> subspace_overlap(np.eye(3)[:, :2], np.eye(3)[:, 1:])
    0.5
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"subspace_overlap needs (n, k) bases of one n, got {a.shape}, {b.shape}")
    k = min(a.shape[1], b.shape[1])
    if k == 0 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.nan
    c = a.astype(np.float64).T @ b.astype(np.float64)  # (k_a, k_b) cosines
    return float(np.clip(np.sum(c * c) / k, 0.0, 1.0))


def update_metrics(w_from: np.ndarray, w_to: np.ndarray) -> dict[str, float]:
    """Metrics of the update D = w_to - w_from (2-D, same shape), taken in float64:
    `norm` ||D||_F, `relative` ||D||_F / ||w_from||_F (NaN when w_from is 0),
    `effective_rank` and `stable_rank` of D as in `striate.analyses.spectrum` (NaN when D is 0).
    All NaN when either matrix holds NaN or Inf.

    >>> update_metrics(np.eye(2), 2 * np.eye(2))
    {'norm': 1.4142135623730951, 'relative': 1.0, 'effective_rank': 2.0, 'stable_rank': 2.0}
    """
    if w_from.shape != w_to.shape or w_from.ndim != 2:
        raise ValueError(f"update_metrics needs two 2-D matrices of one shape, got "
                         f"{w_from.shape} and {w_to.shape}")  # fmt: skip
    d = np.asarray(w_to, dtype=np.float64) - np.asarray(w_from, dtype=np.float64)
    if not np.isfinite(d).all():
        return dict.fromkeys(_UPDATE_KEYS, math.nan)
    r = spectrum_metrics(singular_values(d), d.shape, _NO_FIT)
    norm = float(np.linalg.norm(d))
    base = float(np.linalg.norm(np.asarray(w_from, dtype=np.float64)))
    return {
        "norm": norm,
        "relative": norm / base if base else math.nan,
        "effective_rank": float(r["effective_rank"]),
        "stable_rank": float(r["stable_rank"]),
    }


def _rank(s: np.ndarray, shape: tuple[int, ...]) -> int:
    """Numerical rank from the top singular values s (spectrum's default tolerance)."""
    if s.size == 0 or not np.isfinite(s).all() or s[0] == 0:
        return 0
    tol = max(shape) * float(np.finfo(np.float32).eps) * s[0]
    return int(np.count_nonzero(s > tol))


def _overlaps(a: TopFactors, b: TopFactors) -> tuple[float, float]:
    """(left, right) top-k subspace overlaps of two matrices of one shape; NaN if undefined."""
    k = min(a.rank, b.rank)
    if k == 0:
        return math.nan, math.nan
    return subspace_overlap(a.u[:, :k], b.u[:, :k]), subspace_overlap(a.vh[:k].T, b.vh[:k].T)


def checkpoint_dynamics(
    w_t: np.ndarray,
    w_0: np.ndarray,
    w_prev: np.ndarray | None,
    w_final: np.ndarray,
    config: DynamicsConfig | None = None,
) -> dict[str, float]:
    """Dynamics of one matrix at checkpoint t, keyed by `DYNAMICS_KEYS` (module docstring).

    w_t, w_0, w_prev, w_final: 2-D (rows, cols), one shape, any real dtype: the matrix at t, at
    the first checkpoint, at the previous one (None at the first: its keys are NaN) and at the
    last. Overlaps use k = config.top_k directions. Three SVDs: along a series, keep each
    checkpoint's `top_factors` and call `dynamics_from_factors` instead.

    >>> w = np.diag([3.0, 2.0, 1.0])
    >>> r = checkpoint_dynamics(w, np.zeros((3, 3)), None, w, DynamicsConfig(top_k=2))
    >>> r["update0_relative"], r["overlap_left_final"], r["overlap_left_prev"]
    (nan, 1.0, nan)
    """
    k = (config or DynamicsConfig()).top_k
    _check_shapes(w_t, [w_0, w_final] + ([] if w_prev is None else [w_prev]))
    top_prev = None if w_prev is None else top_factors(w_prev, k)
    return dynamics_from_factors(
        w_t, w_0, w_prev, top_factors(w_t, k), top_prev, top_factors(w_final, k)
    )


def dynamics_from_factors(
    w_t: np.ndarray,
    w_0: np.ndarray,
    w_prev: np.ndarray | None,
    top_t: TopFactors,
    top_prev: TopFactors | None,
    top_final: TopFactors,
) -> dict[str, float]:
    """`checkpoint_dynamics` with the `top_factors` of W_t, W_{t-1} and W_T given (one k): no
    SVD of a checkpoint, only the spectra of the two updates. Along a series each checkpoint's
    factors are computed once: at t they are top_t, at t + 1 top_prev, and the last ones are
    every step's top_final.

    w_t, w_0, w_prev: 2-D (rows, cols), one shape; w_prev and top_prev None at the first
    checkpoint (its `*_prev` keys are NaN).

    >>> w = np.diag([3.0, 2.0, 1.0])
    >>> top = top_factors(w, 2)
    >>> dynamics_from_factors(w, np.eye(3), None, top, None, top)["overlap_right_final"]
    1.0
    """
    _check_shapes(w_t, [w_0] + ([] if w_prev is None else [w_prev]))
    if (w_prev is None) != (top_prev is None):
        raise ValueError("dynamics_from_factors needs w_prev and top_prev both or neither")
    tops = [top_t, top_final] + ([] if top_prev is None else [top_prev])
    if any(top.shape != w_t.shape for top in tops):
        shapes = [top.shape for top in tops]
        raise ValueError(f"dynamics_from_factors: factors of shapes {shapes} for a matrix "
                         f"of shape {w_t.shape}")  # fmt: skip
    u0 = update_metrics(w_0, w_t)
    out = {f"update0_{key}": u0[key] for key in _UPDATE_KEYS}
    up = dict.fromkeys(_UPDATE_KEYS, math.nan) if w_prev is None else update_metrics(w_prev, w_t)
    out.update({f"update_prev_{key}": up[key] for key in _UPDATE_KEYS})
    out["overlap_left_final"], out["overlap_right_final"] = _overlaps(top_t, top_final)
    prev = (math.nan, math.nan) if top_prev is None else _overlaps(top_t, top_prev)
    out["overlap_left_prev"], out["overlap_right_prev"] = prev
    return {key: out[key] for key in DYNAMICS_KEYS}


def _check_shapes(w_t: np.ndarray, others: list[np.ndarray]) -> None:
    if w_t.ndim != 2 or any(o.shape != w_t.shape for o in others):
        raise ValueError(f"checkpoint_dynamics needs 2-D matrices of one shape, got "
                         f"{[w_t.shape, *(o.shape for o in others)]}")  # fmt: skip


def layer_alignment(
    w_l: np.ndarray, w_next: np.ndarray, config: DynamicsConfig | None = None
) -> float:
    """How much of layer l's output space the next layer reads: the overlap of w_l's top-k
    LEFT singular subspace with w_next's top-k RIGHT singular subspace, in [0, 1] (~ k / out_l
    for unrelated layers). NaN for NaN/Inf weights or a zero matrix.

    w_l (out_l, in_l), w_next (out_next, in_next), nn.Linear layout, with out_l == in_next;
    ValueError otherwise. k = config.top_k, clipped to both numerical ranks. Two SVDs: with
    the matrices' `top_factors` at hand, `alignment_from_factors` needs none.

    >>> layer_alignment(np.diag([2.0, 1.0, 0.0]), np.eye(3)[:2], DynamicsConfig(top_k=2))
    1.0
    """
    k = (config or DynamicsConfig()).top_k
    if w_l.ndim != 2 or w_next.ndim != 2 or w_l.shape[0] != w_next.shape[1]:
        raise ValueError(_chain_error(w_l.shape, w_next.shape))
    return alignment_from_factors(top_factors(w_l, k), top_factors(w_next, k))


def alignment_from_factors(top_l: TopFactors, top_next: TopFactors) -> float:
    """`layer_alignment` from the two matrices' `top_factors` (one k).

    >>> top_l = top_factors(np.diag([2.0, 1.0, 0.0]), 2)  # output space: e1, e2
    >>> alignment_from_factors(top_l, top_factors(np.diag([1.0, 3.0, 2.0]), 2))  # input: e2, e3
    0.5
    """
    if top_l.shape[0] != top_next.shape[1]:
        raise ValueError(_chain_error(top_l.shape, top_next.shape))
    k = min(top_l.rank, top_next.rank)
    if k == 0:
        return math.nan
    return subspace_overlap(top_l.u[:, :k], top_next.vh[:k].T)


def _chain_error(shape_l: tuple[int, ...], shape_next: tuple[int, ...]) -> str:
    return (
        f"layer_alignment: shapes {shape_l} -> {shape_next} do not chain "
        "(need w_l [out, in] and w_next [out_next, out], nn.Linear layout; "
        "transpose [in, out] weights first)"
    )
