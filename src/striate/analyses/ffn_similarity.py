"""Cosine similarity among the neurons of one FFN matrix: do its vectors share a direction?

For the unit vectors u_i = v_i / |v_i| of one matrix's neurons (rows of `neuron_vectors`),
C_ij = <u_i, u_j>. Two numbers summarise C over all n neurons, exactly and without forming it:

    mean_offdiag = (|sum_i u_i|^2 - n) / (n (n - 1))      mean of C_ij over i != j
    top_share    = lambda_max(U^T U) / n                   the share of sum sigma_k^2 (= n) of U
                                                           held by its top singular direction

top_share is uncentred, so a direction that all neurons lean towards counts. For random
isotropic vectors mean_offdiag is 0 and top_share is about (n^-1/2 + d^-1/2)^2
(Marchenko-Pastur; `top_share_null`): 0.0059 for n = 1536 neurons in d = 384.

The matrix itself is drawn for at most `similarity_max` neurons (a seeded sample), computed a
block of rows at a time in float64 and stored as float32. Its order: spherical k-means
(`similarity_clusters` clusters, k-means++ start, seeded), clusters in the order of their
centroid's projection on the top direction, members by their own projection. Ordering by any
clustering makes faint diagonal blocks appear even for random vectors (members of a cluster
agree by construction); the summary numbers do not depend on the order.

In a SwiGLU FFN the signs of U_j and D_j can flip together without changing the model, so the
mean off-diagonal cosine of the up or down matrix is 0 up to noise whatever training did (top_share
does not see signs). There the gate matrix, whose signs are fixed, is the one that can show a
shared direction: SmolLM2's gate rows do (mean cos +0.026 in layer 0), its up rows cannot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from striate.analyses.ffn import FFNConfig

__all__ = ["Similarity", "column_similarity", "cosine_matrix", "spherical_kmeans"]

_BLOCK = 512  # rows of the similarity matrix per block
_KMEANS_ITERATIONS = 50


@dataclass(frozen=True, eq=False)
class Similarity:
    """Cosine similarity among the neuron vectors of one matrix.

    matrix: float16 (m, m), C between the shown neurons in display order (ones on the diagonal),
        for drawing (float16 keeps |C_ij| to 5e-4 at half the bytes of a scan's cache).
    order: int64 (m,), the neuron (row of the input) shown at each position.
    clusters: int64 (m,), the k-means cluster at each position, numbered 0.. in display order.
    mean_offdiag, top_share: over all n usable neurons (module docstring); top_share_null: the
        random-vector value of top_share for this n and d.
    mean_abs_offdiag: mean |C_ij|, i != j, over the shown neurons.
    top_direction: float64 (d,), unit, the top singular direction, signed so that the neurons'
        mean projection on it is >= 0.
    n_neurons: usable neurons (finite, nonzero vectors); d_model: their dimension.
    """

    matrix: np.ndarray
    order: np.ndarray
    clusters: np.ndarray
    mean_offdiag: float
    mean_abs_offdiag: float
    top_share: float
    top_share_null: float
    top_direction: np.ndarray
    n_neurons: int
    d_model: int


def cosine_matrix(unit: np.ndarray) -> np.ndarray:
    """unit @ unit.T for rows `unit` (m, d), a block of rows at a time: float32 (m, m)."""
    u = np.asarray(unit, dtype=np.float64)
    out = np.empty((u.shape[0], u.shape[0]), dtype=np.float32)
    for s in range(0, u.shape[0], _BLOCK):
        out[s : s + _BLOCK] = u[s : s + _BLOCK] @ u.T
    return out


def spherical_kmeans(unit: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Cluster labels (m,) of unit rows (m, d) by spherical k-means (cosine), k-means++ start.

    Deterministic for a given seed; an emptied cluster is restarted at the row least similar to
    its own centroid.
    """
    m = unit.shape[0]
    k = max(1, min(k, m))
    rng = np.random.default_rng(seed)
    centres = [int(rng.integers(m))]
    far = 1 - unit @ unit[centres[0]]
    for _ in range(1, k):  # k-means++: the next centre drawn in proportion to 1 - cos
        p = np.clip(far, 0, None)
        nxt = int(rng.choice(m, p=p / p.sum())) if p.sum() > 0 else int(rng.integers(m))
        centres.append(nxt)
        far = np.minimum(far, 1 - unit @ unit[nxt])
    c = unit[centres].copy()
    labels = np.full(m, -1)
    for _ in range(_KMEANS_ITERATIONS):
        sim = unit @ c.T  # (m, k)
        new = sim.argmax(axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = labels == j
            if not members.any():
                worst = int(np.argmin(sim[np.arange(m), labels]))
                labels[worst], members = j, labels == j
            total = unit[members].sum(axis=0)
            c[j] = total / max(float(np.linalg.norm(total)), 1e-12)
    return labels


def column_similarity(vectors: np.ndarray, config: FFNConfig) -> Similarity:
    """Cosine similarity among the neuron vectors (n, d) of one matrix (`neuron_vectors`).

    Neurons with a zero or non-finite vector are left out. See the module docstring for the
    numbers, the sample and the order.

    >>> rng = np.random.default_rng(0)
    >>> shared = rng.standard_normal((1000, 64)) + 2.0       # every vector leans along (1, ..., 1)
    >>> round(column_similarity(shared, FFNConfig()).mean_offdiag, 1)
    0.8
    """
    v = np.asarray(vectors)
    if v.ndim != 2 or v.shape[0] < 2:
        raise ValueError(f"need at least 2 neuron vectors (n, d), got shape {v.shape}")
    norms = np.sqrt(np.einsum("nd,nd->n", v, v, dtype=np.float64))
    usable = np.flatnonzero(np.isfinite(norms) & (norms > 0))
    n, d = usable.size, v.shape[1]
    if n < 2:
        raise ValueError(f"fewer than 2 of the {v.shape[0]} neuron vectors are finite and nonzero")
    total = np.zeros(d)
    gram = np.zeros((d, d))
    for s in range(0, n, _BLOCK):
        rows = usable[s : s + _BLOCK]
        u = v[rows].astype(np.float64) / norms[rows, None]
        total += u.sum(axis=0)
        gram += u.T @ u
    eigenvalues, eigenvectors = np.linalg.eigh(gram)
    top = eigenvectors[:, -1] * (1.0 if eigenvectors[:, -1] @ total >= 0 else -1.0)

    shown = usable
    if n > config.similarity_max:
        rng = np.random.default_rng(config.seed)
        shown = np.sort(rng.choice(usable, size=config.similarity_max, replace=False))
    unit = v[shown].astype(np.float64) / norms[shown, None]
    _, labels = np.unique(spherical_kmeans(unit, config.similarity_clusters, config.seed),
                          return_inverse=True)  # fmt: skip
    projection = unit @ top
    cluster_rank = np.argsort(np.argsort(-np.bincount(labels, projection) / np.bincount(labels)))
    position = np.lexsort((-projection, cluster_rank[labels]))
    matrix = cosine_matrix(unit[position])
    m = matrix.shape[0]
    off_abs = (np.abs(matrix, dtype=np.float64).sum() - np.trace(np.abs(matrix))) / (m * (m - 1))
    return Similarity(
        matrix=matrix.astype(np.float16),
        order=shown[position].astype(np.int64),
        clusters=cluster_rank[labels][position].astype(np.int64),
        mean_offdiag=float((total @ total - n) / (n * (n - 1))),
        mean_abs_offdiag=float(off_abs),
        top_share=float(eigenvalues[-1] / n),
        top_share_null=(1 / math.sqrt(n) + 1 / math.sqrt(d)) ** 2,
        top_direction=top,
        n_neurons=int(n),
        d_model=int(d),
    )
