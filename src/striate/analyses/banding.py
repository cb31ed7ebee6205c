"""Weight banding: conv kernels whose weights depend on vertical position only (or horizontal).

In the last conv layer of vision models with global average pooling, every neuron's weights vary
with the row of the kernel and hardly with the column: horizontal bands (Petrov et al., "Weight
Banding", Distill 2021). Two views of it:

**Banding score.** Each kernel slice k = W[o, i] of shape [kh, kw] is centred (its own mean
removed: a constant kernel has no spatial structure). Its spatial variance splits like a two-way
ANOVA without replication: the part explained by the row means (vertical position alone),

    rows = kw * sum_r (mean_c k[r, c] - mean k)^2,

the part explained by the column means (horizontal position alone), `cols` likewise, and the
rest. Summed over all kernels of the layer (so strong kernels weigh more) and divided by the total:

    share_rows = sum rows / sum total,   share_cols = sum cols / sum total,
    score = share_rows - share_cols      (in [-1, 1])

Row-constant kernels (horizontal bands) have share_rows = 1, share_cols = 0, score = 1; their
transpose scores -1. Kernels of independent noise explain (kh - 1) / (kh * kw - 1) by rows and
(kw - 1) / (kh * kw - 1) by columns in expectation: 0.25 each for 3x3, score 0. The null
distribution of the score comes from the same kernels with their kh * kw positions shuffled
independently per kernel (a seeded sample of at most `max_kernels` kernels, which makes the null
wider than for the whole layer: conservative). A layer bands when |score| >= `min_score` and its
z against the null >= `z`, where "score" means its excess over the null mean (0 for square
kernels; noise in 3x5 kernels scores -1/7); direction `horizontal` (excess > 0), `vertical` (< 0)
or `none`.

**Banding index** (`banding_index`, the column `banding_bh`). A second, bounded measure on the
same kernel slices k = W[o, i] (each neuron's spatial kernel from one input channel): with
v_rows(k) the variance of k's kh row means and v_cols(k) the variance of its kw column means
(both over positions, ddof 0), pooled over all slices of the layer (strong kernels weigh more),

    B_h = sum_k v_rows(k) / sum_k (v_rows(k) + v_cols(k))      (in [0, 1])

1 for horizontal bands (every row constant), 0 for vertical bands, 0.5 for square kernels whose
rows and columns vary alike (noise, a centre-surround or a diagonal pattern). Since
`rows = kh * kw * v_rows` and `cols = kh * kw * v_cols`, B_h = share_rows / (share_rows +
share_cols): the score's two shares with the rest (the interaction) left out. For kernels of
independent Gaussian noise, sum rows / sigma^2 and sum cols / sigma^2 are independent chi-square
with n (kh - 1) and n (kw - 1) degrees of freedom (n kernels), so B_h ~ Beta(n (kh - 1) / 2,
n (kw - 1) / 2): mean (kh - 1) / (kh + kw - 2), 0.5 for square kernels, sd 1 / (2 sqrt(2 n + 1))
for 3x3 (0.0055 for a 64 x 64 x 3 x 3 layer).

**NMF view** (`nmf_view`). As in the article (after "Visualizing Weights", Voss et al. 2021): NMF
needs non-negative input, so each weight is split into its positive and negative parts, kept as
separate input channels ([max(W, 0), max(-W, 0)], 2 * in channels). Every (neuron, row, column)
position is one sample of those 2 * in channel values; one NMF with 3 factors is fitted per layer
(seeded), so a factor means the same channel mix in every neuron and the colours are consistent
across neurons by construction. Factors are scaled to unit-norm channel loadings and ordered by
their total weight (largest red, then green, blue): any permutation of the fitted factors gives
the same image. A neuron's [kh, kw, 3] tile shows each factor minus its minimum over the tile,
divided by the tile's largest remaining value: the part every position shares (most of the first
factor) is dropped, because banding is about how positions differ, and the tile is stretched to
full brightness (a display choice; the banding score never sees it). Neurons are sorted by
similarity of their reduced forms (average-linkage clustering of cosine distances, leaves in
order).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from striate.analyses.finding import Finding
from striate.analyses.robust import expected_count

__all__ = [
    "Banding",
    "BandingConfig",
    "NMFView",
    "as_oihw",
    "banding_finding",
    "banding_index",
    "banding_score",
    "nmf_view",
    "rgb_from_factors",
    "skip_reason",
]


@dataclass(frozen=True)
class BandingConfig:
    """Settings of the banding analysis (score, null distribution and NMF images).

    min_score: |score - null mean| a layer needs to band. Noise scores 0. On the packaged
        convnets: VGG16's last conv 0.22 (block5 conv 2: 0.15), EfficientNet-Lite0's last
        depthwise conv 0.26, every other layer of VGG16, the CIFAR-10 CNN (no global pooling) and
        the face-recognition ResNet below 0.13 (docs/reproductions/banding).
    z: how far above the shuffled null the score must be. With thousands of kernels the null is
        narrow, so `min_score` is what decides in practice.
    """

    enabled: bool = True  # score every conv kernel of at least min_kernel x min_kernel
    min_kernel: int = 3  # smallest kh and kw analysed (1x1 and 1x7 have no 2-D structure)
    min_score: float = 0.15  # |share_rows - share_cols| needed for a finding
    z: float = 6.0  # ... and this many null standard deviations
    n_null: int = 100  # spatially shuffled copies of the layer for the null distribution
    max_kernels: int = 16384  # kernels (a seeded sample) shuffled for the null
    seed: int = 0  # null sample and NMF initialisation
    images: bool = True  # NMF RGB image per conv layer in images/banding/ (when images are on)


@dataclass(frozen=True)
class Banding:
    """The banding score of one conv layer (see the module docstring)."""

    share_rows: float  # share of spatial variance explained by vertical position alone
    share_cols: float  # ... by horizontal position alone
    score: float  # share_rows - share_cols
    null_mean: float  # of the score over spatially shuffled kernels
    null_std: float
    z: float  # (score - null_mean) / null_std, signed
    p: float  # two-sided permutation p-value, (1 + #{|null| >= |score|}) / (1 + n_null)
    direction: str  # "horizontal", "vertical" or "none"
    n_kernels: int  # kernels with spatial variance that entered the score
    kernel: tuple[int, int]  # (kh, kw)
    index_h: float = math.nan  # B_h, `banding_index` (NaN: no row or column variance at all)

    def row(self) -> dict[str, float | int | str]:
        """The columns a scan writes into tensors.parquet."""
        return {
            "banding_rows": self.share_rows,
            "banding_cols": self.share_cols,
            "banding_score": self.score,
            "banding_z": self.z,
            "banding_p": self.p,
            "banding_direction": self.direction,
            "banding_bh": self.index_h,
        }


def as_oihw(w: np.ndarray, layout: str | None) -> np.ndarray:
    """A conv kernel as [out, in, kh, kw]: PyTorch/ONNX as is, Keras/TF.js ("hwio") transposed."""
    if w.ndim != 4:
        raise ValueError(f"a conv kernel has 4 axes, got shape {w.shape}")
    return w.transpose(3, 2, 0, 1) if layout == "hwio" else w


def skip_reason(kernels: np.ndarray, config: BandingConfig) -> str | None:
    """Why a [out, in, kh, kw] kernel is not analysed, or None."""
    kh, kw = kernels.shape[2:]
    if kh < config.min_kernel or kw < config.min_kernel:
        return f"kernel {kh}x{kw} is smaller than {config.min_kernel}x{config.min_kernel}"
    if kernels.size == 0:
        return "empty"
    return None


def _shares(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-kernel (total, rows, cols) sums of squares of centred kernels c [n, kh, kw]."""
    kh, kw = c.shape[1:]
    total = np.einsum("nij,nij->n", c, c)
    rows = kw * np.square(c.mean(axis=2)).sum(axis=1)
    cols = kh * np.square(c.mean(axis=1)).sum(axis=1)
    return total, rows, cols


def _score(total: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> float:
    t = total.sum()
    return float((rows.sum() - cols.sum()) / t) if t > 0 else 0.0


def banding_score(kernels: np.ndarray, config: BandingConfig | None = None) -> Banding:
    """Banding score of a conv layer, with its null distribution from shuffled kernels.

    kernels: of shape (out, in, kh, kw) (use `as_oihw`). Kernels holding a non-finite value are
    left out (they are reported as `nonfinite` findings by that analysis).

    >>> rng = np.random.default_rng(0)
    >>> rows = rng.normal(size=(64, 32, 3, 1)).repeat(3, axis=3)  # constant along each row
    >>> b = banding_score(rows)
    >>> b.direction, round(b.share_rows, 3), round(b.share_cols, 3)
    ('horizontal', 1.0, 0.0)
    >>> banding_score(rows.transpose(0, 1, 3, 2)).direction
    'vertical'
    >>> banding_score(rng.normal(size=(64, 32, 3, 3))).direction
    'none'
    """
    config = config or BandingConfig()
    kh, kw = kernels.shape[2:]
    k = np.asarray(kernels, dtype=np.float64).reshape(-1, kh, kw)
    finite = np.asarray(np.isfinite(k).all(axis=(1, 2)))
    c = np.where(finite[:, None, None], k, 0.0)
    c = c - c.mean(axis=(1, 2), keepdims=True)
    total, rows, cols = _shares(c)
    score = _score(total, rows, cols)
    t = total.sum()
    share_rows = float(rows.sum() / t) if t > 0 else 0.0
    share_cols = float(cols.sum() / t) if t > 0 else 0.0
    null = _null(c[total > 0], config)
    null_mean, null_std = float(null.mean()), float(null.std())
    z = (score - null_mean) / null_std if null_std > 0 else 0.0
    p = (1 + int((np.abs(null) >= abs(score)).sum())) / (1 + len(null))
    excess = score - null_mean  # 0 for square kernels; noise in 3x5 kernels scores -1/7
    bands = abs(excess) >= config.min_score and abs(z) >= config.z
    direction = "none" if not bands else "horizontal" if excess > 0 else "vertical"
    return Banding(share_rows, share_cols, score, null_mean, null_std, float(z), p, direction,
                   int((total > 0).sum()), (kh, kw), _index(rows, cols))  # fmt: skip


def _index(rows: np.ndarray, cols: np.ndarray) -> float:
    """B_h from per-kernel variances of the row and column means, or from any common multiple
    of them (`_shares` gives kh * kw times them)."""
    t = float(rows.sum() + cols.sum())
    return float(rows.sum() / t) if t > 0 else math.nan


def banding_index(kernels: np.ndarray) -> float:
    """The banding index B_h of a conv layer (see the module docstring), in [0, 1].

    kernels: of shape (out, in, kh, kw) (use `as_oihw`). Each slice W[o, i] is one kernel;
    B_h = sum of the variances of its row means / sum of (those + the variances of its column
    means). Kernels holding a non-finite value are left out; NaN when no kernel has row or
    column variance (all constant).

    >>> rng = np.random.default_rng(0)
    >>> bands = rng.normal(size=(64, 32, 3, 1)).repeat(3, axis=3)  # each row one value
    >>> noise = 0.5 * rng.normal(size=(64, 32, 3, 3))
    >>> # expected sums of squares per kernel: rows 3 * 2 + 0.25 * 2, columns 0.25 * 2
    >>> round(banding_index(bands + noise), 2)  # horizontal bands: 6.5 / 7 = 0.93
    0.93
    >>> round(banding_index(bands.transpose(0, 1, 3, 2) + noise), 2)  # vertical: 0.5 / 7
    0.07
    >>> round(banding_index(rng.normal(size=(64, 32, 3, 3))), 1)  # noise: mean 0.5, sd 0.0055
    0.5
    """
    kh, kw = kernels.shape[2:]
    k = np.asarray(kernels, dtype=np.float64).reshape(-1, kh, kw)
    k = k[np.isfinite(k).all(axis=(1, 2))]
    return _index(k.mean(axis=2).var(axis=1), k.mean(axis=1).var(axis=1))  # (n,), (n,)


def _null(c: np.ndarray, config: BandingConfig) -> np.ndarray:
    """Scores of `n_null` copies of (a sample of) the centred kernels c, positions shuffled.

    Shuffling keeps each kernel's mean (0) and total sum of squares, so only the row and column
    sums change: they are one matrix product with the row and column indicators.
    """
    rng = np.random.default_rng(config.seed)
    if len(c) > config.max_kernels:
        c = c[rng.choice(len(c), config.max_kernels, replace=False)]
    n, kh, kw = c.shape
    total = float(np.square(c).sum())
    if n == 0 or total == 0:
        return np.zeros(1)
    flat = c.reshape(n, kh * kw)
    grid = np.arange(kh * kw)
    indicators = np.concatenate(
        [grid[:, None] // kw == np.arange(kh), grid[:, None] % kw == np.arange(kw)], axis=1
    ).astype(np.float64)  # [kh * kw, kh + kw]: which row, which column
    scores = np.empty(config.n_null)
    for j in range(config.n_null):
        sums = rng.permuted(flat, axis=1) @ indicators
        rows = np.square(sums[:, :kh]).sum() / kw
        cols = np.square(sums[:, kh:]).sum() / kh
        scores[j] = (rows - cols) / total
    return scores


def banding_finding(b: Banding) -> Finding | None:
    """A `banding` finding for a layer that bands; score = z against the shuffled null."""
    if b.direction == "none":
        return None
    kh, kw = b.kernel
    expected = (kh - 1) / (kh * kw - 1), (kw - 1) / (kh * kw - 1)
    detail = (
        f"{b.direction} bands: vertical position alone explains {b.share_rows:.0%} of the "
        f"kernels' spatial variance, horizontal {b.share_cols:.0%} (noise: {expected[0]:.0%} and "
        f"{expected[1]:.0%}); z = {b.z:.0f} against shuffled kernels"
    )
    extra: dict[str, float | int | str] = {
        "direction": b.direction,
        "share_rows": b.share_rows,
        "share_cols": b.share_cols,
        "null_mean": b.null_mean,
        "null_std": b.null_std,
    }
    significance = -float(expected_count(b.z, 1))
    return Finding(
        "banding", (None, None, None, None), abs(b.z), b.score, detail, extra, significance
    )


@dataclass(frozen=True)
class NMFView:
    """A conv layer reduced over its input channels to 3 NMF factors, as RGB tiles."""

    rgb: np.ndarray  # of shape (out, kh, kw, 3) in [0, 1], in file order (see nmf_view)
    order: np.ndarray  # of shape (out,): neurons sorted by similarity of their reduced forms
    factors: np.ndarray  # of shape (k, 2 * in), k = 3 (2 for one input channel): unit-norm
    # loadings on the [W+, W-] channels, in colour order R, G, B
    error: float  # Frobenius norm of X - A @ factors, X the [W+, W-] position-by-channel matrix
    relative_error: float  # error / ||X||


def rgb_from_factors(a: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical colours: factors scaled to unit-norm rows of h and ordered by total weight.

    a: of shape (n_samples, k), h: of shape (k, n_channels), a @ h ~ X. Returns (a', h') with
    a' @ h' == a @ h, rows of h' of unit norm, and a' columns in decreasing sum: the result
    does not depend on the order the factors came in.
    """
    norms = np.linalg.norm(h, axis=1)
    norms = np.where(norms > 0, norms, 1.0)
    a, h = a * norms, h / norms[:, None]
    order = np.lexsort((-h.sum(axis=1), -a.sum(axis=0)))  # ties broken by the loadings
    return a[:, order], h[order]


def nmf_view(kernels: np.ndarray, *, n_factors: int = 3, seed: int = 0) -> NMFView:
    """The article's NMF view of a conv layer (see the module docstring).

    kernels: of shape (out, in, kh, kw) (use `as_oihw`); non-finite weights count as 0.

    >>> rng = np.random.default_rng(0)
    >>> v = nmf_view(rng.normal(size=(8, 4, 3, 3)))
    >>> v.rgb.shape, v.factors.shape, sorted(v.order.tolist()) == list(range(8))
    ((8, 3, 3, 3), (3, 8), True)
    """
    from sklearn.decomposition import NMF
    from sklearn.exceptions import ConvergenceWarning

    out, n_in, kh, kw = kernels.shape
    w = np.nan_to_num(np.asarray(kernels, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    x = np.concatenate([np.maximum(w, 0), np.maximum(-w, 0)], axis=1)  # [out, 2in, kh, kw]
    x = x.transpose(0, 2, 3, 1).reshape(out * kh * kw, 2 * n_in)  # one row per position
    # float32 halves the time at the same error to 1e-5 (VGG16's 512x512x3x3: 0.6 s)
    n_factors = min(n_factors, *x.shape)  # one input channel gives 2 columns: 2 factors
    model = NMF(n_components=n_factors, init="nndsvda", random_state=seed, max_iter=400, tol=1e-4)
    with warnings.catch_warnings():  # a slow last digit is no reason to warn: error is returned
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = model.fit_transform(x.astype(np.float32)).astype(np.float64)
    a, h = rgb_from_factors(a, model.components_)
    error = float(np.linalg.norm(x - a @ h))
    norm_x = float(np.linalg.norm(x))
    tiles = a.reshape(out, kh, kw, n_factors)
    spread = tiles - tiles.min(axis=(1, 2), keepdims=True)
    peak = spread.max(axis=(1, 2, 3), keepdims=True)
    rgb = np.divide(spread, peak, out=np.zeros_like(spread), where=peak > 0)
    if n_factors < 3:  # the missing colours stay dark
        rgb = np.concatenate([rgb, np.zeros((out, kh, kw, 3 - n_factors))], axis=3)
    return NMFView(rgb[..., :3], _similarity_order(tiles.reshape(out, -1)), h, error,
                   error / norm_x if norm_x > 0 else 0.0)  # fmt: skip


def _similarity_order(features: np.ndarray) -> np.ndarray:
    """Leaf order of an average-linkage clustering of the rows' cosine distances."""
    from scipy.cluster.hierarchy import leaves_list, linkage

    if len(features) < 3:
        return np.arange(len(features))
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    unit = np.divide(features, norms, out=np.zeros_like(features), where=norms > 0)
    distance = np.clip(1.0 - unit @ unit.T, 0.0, 2.0)
    condensed = distance[np.triu_indices(len(unit), k=1)]
    return np.asarray(leaves_list(linkage(condensed, method="average")))
