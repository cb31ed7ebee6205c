"""Metrics of the toy models. Pure functions of tensors, batched over any leading axes.

Vectors V of shape (..., p, m) are p vectors in the m-dimensional hidden space: the feature
directions W_i (rows of `model.features()`), or the hidden vectors h_t of the training points.

- superposition_i  = sum_{j != i} (V_i_hat . V_j)^2           (Elhage et al. 2022, the colour
                                                             of their "basic results" bars)
- dimensionality_i = ||V_i||^2 / sum_j (V_i_hat . V_j)^2      (their feature dimensionality;
                                                             Henighan et al. 2023 apply it to
                                                             the hidden vectors of the data)

Both use sum_j (u . V_j)^2 = u^T G u with G = V^T V (m x m): O(p m^2), never O(p^2).
Dimensionality is 1 for a vector orthogonal to all others, 1/2 for an antipodal pair, k/p
for p vectors spread evenly over k dimensions, and 0 for a zero vector.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: a feature counts as represented when its direction is at least this long
REPRESENTED_NORM = 0.5


def _interference(V: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(||V_i||^2, sum_j (V_i_hat . V_j)^2), each (..., p); `mask` (..., p) drops vectors j."""
    Vm = V if mask is None else V * (mask[..., None] > 0)
    G = Vm.transpose(-1, -2) @ Vm  # (..., m, m)
    sq = (V * V).sum(-1)  # (..., p)
    U = V / sq.clamp_min(1e-30).sqrt()[..., None]  # unit vectors; zero vectors stay zero
    q = torch.einsum("...pi,...ij,...pj->...p", U, G, U)
    return sq, q


def superposition(V: Tensor) -> Tensor:
    """sum_{j != i} (V_i_hat . V_j)^2 for each vector i: (..., p, m) -> (..., p)."""
    sq, q = _interference(V)
    return (q - sq).clamp_min(0.0) * (sq > 0)


def dimensionality(V: Tensor, mask: Tensor | None = None) -> Tensor:
    """||V_i||^2 / sum_j (V_i_hat . V_j)^2: (..., p, m) -> (..., p); 0 where V_i = 0.

    With `mask` (..., p) only vectors with mask > 0 take part (padding rows, unlabeled rows).

    >>> dimensionality(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, 0.0]]))
    tensor([0.5000, 0.5000, 1.0000, 0.0000])
    """
    sq, q = _interference(V, mask)
    return torch.where(sq > 0, sq / q.clamp_min(1e-30), torch.zeros_like(sq))


def norms(V: Tensor) -> Tensor:
    """||V_i||: (..., p, m) -> (..., p)."""
    return (V * V).sum(-1).sqrt()


def dims_per_feature(W: Tensor) -> Tensor:
    """m / ||W||_F^2 (Elhage et al. 2022): (..., n, m) -> (...)."""
    return W.shape[-1] / (W * W).sum((-1, -2)).clamp_min(1e-30)


def fraction_represented(W: Tensor, threshold: float = REPRESENTED_NORM) -> Tensor:
    """Share of features with ||W_i|| > threshold: (..., n, m) -> (...)."""
    return (norms(W) > threshold).float().mean(-1)


def mse(out: Tensor, y: Tensor, importance: Tensor) -> Tensor:
    """sum_i I_i (y_i - out_i)^2 per row: (K, B, n), importance (K, n) -> (K, B)."""
    return (importance[:, None, :] * (y - out) ** 2).sum(-1)


def cross_entropy(logits: Tensor, p: Tensor) -> Tensor:
    """-sum_i p_i log softmax(logits)_i per row: (K, B, n) -> (K, B)."""
    return -(p * F.log_softmax(logits, dim=-1)).sum(-1)


def weighted_mean(values: Tensor, w: Tensor) -> Tensor:
    """Mean over rows with weights w: (K, B) -> (K,)."""
    return (values * w).sum(-1) / w.sum(-1).clamp_min(1e-30)


def argmax_accuracy(out: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """Share of rows (w > 0, y not all zero) with argmax(out) == argmax(y): -> (K,); NaN if none."""
    valid = ((w > 0) & (y.abs().sum(-1) > 0)).float()
    hit = (out.argmax(-1) == y.argmax(-1)).float()
    count = valid.sum(-1)
    return torch.where(count > 0, (hit * valid).sum(-1) / count.clamp_min(1.0), torch.nan)
