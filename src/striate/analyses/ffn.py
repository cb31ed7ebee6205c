"""FFN neurons: each neuron's input vector, output vector and bias, and how they relate.

An FFN computes sigma(x M1 + b) M2. Neuron j reads the residual stream with its input vector
(column j of M1), is shifted by its bias b_j, and writes its output vector (row j of M2) back.
`neuron_vectors` puts both in the residual basis, one row per neuron, whatever the layout:
GPT-2 Conv1D `c_fc` [d, F] / `c_proj` [F, d], nn.Linear `up` [F, d] / `down` [d, F], and GGUF,
which striate presents like nn.Linear. Gated FFNs (SwiGLU: silu(x G) * (x U) D) have a third
vector per neuron, the gate's; their "input" is the up projection U. The vectors are the stored
weights: a norm gain before the FFN (LayerNorm / RMSNorm weight), which rescales each residual
dimension on the input side, is not folded in.

Per neuron (`ffn_neurons`, one row of `ffn.parquet`):

    in_norm, out_norm, gate_norm   Euclidean norms of the vectors
    alignment                      cos(input, output) in [-1, 1]: > 0 writes back (a copy of)
                                   what it reads, < 0 erases it; NaN if a vector is zero
    gate_in_alignment,             cos(gate, input), cos(gate, output). In a SwiGLU FFN flipping
    gate_out_alignment             the signs of U_j and D_j together leaves the model unchanged,
                                   so each of these has an arbitrary sign per neuron (their
                                   magnitudes and `alignment` do not)

Per layer (`ffn_layer_summary`, one row of `ffn_layers.parquet`): see its docstring. The
clusters of the alignment distribution are judged three ways, as no single number is reliable:
shares beyond a fixed cosine (`cluster_threshold`), Sarle's bimodality coefficient, and a
two-component 1-D Gaussian mixture (`gaussian_mixture`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from striate.analyses.ffn_distribution import (
    Mixture,
    bimodality_coefficient,
    bootstrap_pearson,
    fit_line,
    gaussian_mixture,
    pearson,
    spearman,
)

__all__ = ["FFNConfig", "ffn_layer_summary", "ffn_neurons", "neuron_vectors", "two_clusters"]

_CHUNK_VALUES = 1 << 17  # float64 values per matrix and chunk of rows (1 MB: in cache)


@dataclass(frozen=True)
class FFNConfig:
    """Settings of the FFN analyses.

    outlier_z: a neuron is drawn as a point on a 2-D histogram when either coordinate's robust
        z (median / 1.4826 MAD) reaches this; histograms hide a few extreme neurons.
    cluster_threshold: a neuron is in the positive (negative) cluster when its alignment is above
        +threshold (below -threshold). Random vectors in d dimensions have cosines of sd
        1/sqrt(d): 0.05 for d = 384, so 0.1 is two of those sds there.
    bic_margin, min_separation, min_cluster_share: `n_clusters` is 2 when the two-Gaussian fit
        beats one Gaussian by this BIC margin, its components are this far apart (Ashman's D;
        above 2 the mixture's density has two peaks) and the smaller holds this share.
    similarity_max: most neurons in a similarity matrix; more are sampled without replacement.
    similarity_clusters: clusters (spherical k-means) that order the similarity matrix.
    seed: seed of that sample, of the k-means start and of the bootstrap.
    bootstrap: resamples of the bootstrap intervals of r(|M1_i|, b_i) and r(|M2_i|, b_i);
        0 leaves the intervals out (NaN).
    enabled: run the FFN analysis in `striate scan` (where the anatomy finds FFN triples).
    layers: layers that get figures and column-similarity matrices; empty: first, middle, last.
    """

    outlier_z: float = 4.0  # |robust z| on either axis of a 2-D histogram
    cluster_threshold: float = 0.1  # |cos(input, output)| of a cluster member
    bic_margin: float = 10.0  # BIC(1 Gaussian) - BIC(2 Gaussians) for two clusters
    min_separation: float = 2.0  # Ashman's D of the two components
    min_cluster_share: float = 0.1  # weight of the smaller component
    similarity_max: int = 512  # neurons in a similarity matrix (sampled beyond)
    similarity_clusters: int = 16  # k of the spherical k-means ordering
    seed: int = 0  # sample, k-means and bootstrap seed
    bootstrap: int = 1000  # resamples of the correlation intervals; 0: none
    enabled: bool = True  # part of striate scan
    layers: tuple[int, ...] = ()  # figure / similarity layers; () = first, middle and last


def neuron_vectors(w: np.ndarray, residual_axis: int) -> np.ndarray:
    """One row per neuron in the residual basis: shape (n_neurons, d_model), a view of `w`.

    w: a stored FFN matrix, shape (d, F) or (F, d); `residual_axis` (from the anatomy) says which
    axis is the residual stream: 0 for GPT-2 `c_fc` [d, F] and nn.Linear `down_proj` [d, F],
    1 for GPT-2 `c_proj` [F, d] and nn.Linear `up_proj` / `gate_proj` [F, d].

    >>> neuron_vectors(np.zeros((384, 1536)), residual_axis=0).shape
    (1536, 384)
    """
    w = np.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"an FFN matrix must be 2-D, got shape {w.shape}")
    if residual_axis not in (0, 1, -1, -2):
        raise ValueError(f"residual_axis={residual_axis} is out of range for shape {w.shape}")
    return w if residual_axis % 2 == 1 else w.T


def _row_grams(mats: list[np.ndarray]) -> np.ndarray:
    """out[i, j, r] = <mats[i][r], mats[j][r]> in float64, shape (k, k, n), chunk by chunk of
    rows small enough to stay in cache, each pair once."""
    n, d = mats[0].shape
    k = len(mats)
    out = np.empty((k, k, n))
    step = max(1, _CHUNK_VALUES // max(d, 1))
    for s in range(0, n, step):
        rows = [m[s : s + step].astype(np.float64) for m in mats]  # k x (c, d)
        for i in range(k):
            for j in range(i + 1):
                out[i, j, s : s + step] = out[j, i, s : s + step] = np.einsum(
                    "cd,cd->c", rows[i], rows[j]
                )
    return out


def _cosine(g: np.ndarray, i: int, j: int) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = g[i, j] / np.sqrt(g[i, i] * g[j, j])
    return np.clip(np.where(np.isfinite(cos), cos, np.nan), -1.0, 1.0)


def ffn_neurons(
    layer: int,
    w_in: np.ndarray,
    w_out: np.ndarray,
    bias: np.ndarray | None,
    *,
    w_gate: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per neuron of one FFN layer: the rows of `ffn.parquet`.

    w_in, w_out (and w_gate): the neurons' vectors, shape (n_neurons, d_model) each, as given by
    `neuron_vectors`; bias: the input bias b, shape (n_neurons,), or None (then `bias` is NaN,
    stored as null). Columns: layer, neuron, in_norm, out_norm, bias, alignment, and with a gate
    gate_norm, gate_in_alignment, gate_out_alignment (definitions in the module docstring).
    Sums are in float64.

    >>> v = np.eye(3)
    >>> ffn_neurons(0, v, -2 * v, None)[["in_norm", "out_norm", "alignment"]].iloc[0].tolist()
    [1.0, 2.0, -1.0]
    """
    mats = [np.asarray(w_in), np.asarray(w_out)]
    if w_gate is not None:
        mats.append(np.asarray(w_gate))
    names = ("w_in", "w_out", "w_gate")
    if mats[0].ndim != 2 or any(m.shape != mats[0].shape for m in mats):
        shapes = ", ".join(f"{n} {m.shape}" for n, m in zip(names, mats, strict=False))
        raise ValueError(
            f"layer {layer}: FFN vectors must share one 2-D shape (n_neurons, d_model), got "
            f"{shapes}; pass each matrix through neuron_vectors(w, residual_axis) first"
        )
    n = mats[0].shape[0]
    if bias is not None and np.shape(bias) != (n,):
        raise ValueError(f"layer {layer}: bias has shape {np.shape(bias)}, expected ({n},)")
    g = _row_grams(mats)
    out: pd.DataFrame = pd.DataFrame(
        {
            "layer": np.full(n, layer, dtype=np.int64),
            "neuron": np.arange(n, dtype=np.int64),
            "in_norm": np.sqrt(g[0, 0]),
            "out_norm": np.sqrt(g[1, 1]),
            "bias": np.full(n, np.nan) if bias is None else np.asarray(bias, dtype=np.float64),
            "alignment": _cosine(g, 0, 1),
        }
    )
    if w_gate is not None:
        out["gate_norm"] = np.sqrt(g[2, 2])
        out["gate_in_alignment"] = _cosine(g, 2, 0)
        out["gate_out_alignment"] = _cosine(g, 2, 1)
    return out


QUANTITIES = ("in_norm", "out_norm", "bias", "alignment")
GATE_QUANTITIES = ("gate_norm",)


def ffn_layer_summary(neurons: pd.DataFrame, config: FFNConfig) -> dict[str, float | int]:
    """One row of `ffn_layers.parquet`: the neurons of one layer (rows of `ffn_neurons`) summed up.

    Keys, in order (NaN where undefined, e.g. every bias statistic of a model without biases):
      layer, n_neurons, has_bias (0/1), gated (0/1)
      {q}_mean, {q}_std        for q in in_norm, out_norm, bias, alignment (+ gate_norm when
                               gated); std with ddof 0; alignment_median too
      pearson_{a}_{b}, spearman_{a}_{b}   for each pair of those quantities, in that order
                               (e.g. pearson_in_norm_out_norm, spearman_bias_alignment)
      pearson_in_norm_bias_ci_low, _ci_high, pearson_out_norm_bias_ci_low, _ci_high
                               95% percentile bootstrap intervals of r(|M1_i|, b_i) and
                               r(|M2_i|, b_i) (`bootstrap` resamples of the neurons)
      slope_alignment_on_bias, intercept_alignment_on_bias, slope_se, intercept_se
                               least squares alignment = intercept + slope * bias (`fit_line`)
      share_positive, share_negative    alignment > +cluster_threshold, < -cluster_threshold
      bimodality, alignment_skew, alignment_kurtosis   Sarle's coefficient, G1, G2
      gmm_mean_low, gmm_mean_high, gmm_sd_low, gmm_sd_high, gmm_weight_high, gmm_delta_bic,
      gmm_ashman_d             the two-Gaussian fit of the alignments (`gaussian_mixture`)
      n_clusters               2 when that fit passes the config's three tests, else 1
      gate_in_abs_alignment_mean, gate_out_abs_alignment_mean   (gated only) mean |cos|
    """
    layers = neurons["layer"].unique()
    if len(layers) != 1:
        raise ValueError(f"ffn_layer_summary takes one layer's neurons, got layers {layers}")
    gated = "gate_norm" in neurons.columns
    names = QUANTITIES + (GATE_QUANTITIES if gated else ())
    col = {q: neurons[q].to_numpy(dtype=np.float64) for q in names}
    align = col["alignment"]
    row: dict[str, float | int] = {
        "layer": int(layers[0]),
        "n_neurons": len(neurons),
        "has_bias": int(bool(np.isfinite(col["bias"]).any())),
        "gated": int(gated),
    }
    for q in names:
        finite = col[q][np.isfinite(col[q])]
        row[f"{q}_mean"] = float(finite.mean()) if finite.size else math.nan
        row[f"{q}_std"] = float(finite.std()) if finite.size else math.nan
    finite_align = align[np.isfinite(align)]
    row["alignment_median"] = float(np.median(finite_align)) if finite_align.size else math.nan
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            row[f"pearson_{a}_{b}"] = pearson(col[a], col[b])
            row[f"spearman_{a}_{b}"] = spearman(col[a], col[b])
    for a in ("in_norm", "out_norm"):
        low, high = bootstrap_pearson(col[a], col["bias"], config.bootstrap, config.seed)
        row[f"pearson_{a}_bias_ci_low"], row[f"pearson_{a}_bias_ci_high"] = low, high
    fit = ("slope_alignment_on_bias", "intercept_alignment_on_bias", "slope_se", "intercept_se")
    row |= dict(zip(fit, fit_line(col["bias"], align), strict=True))
    n_align = max(finite_align.size, 1)
    row["share_positive"] = float((finite_align > config.cluster_threshold).sum()) / n_align
    row["share_negative"] = float((finite_align < -config.cluster_threshold).sum()) / n_align
    shape = ("bimodality", "alignment_skew", "alignment_kurtosis")
    row |= dict(zip(shape, bimodality_coefficient(align), strict=True))
    mix = gaussian_mixture(align)
    row |= {f"gmm_{k}": v for k, v in vars(mix).items()}
    row["n_clusters"] = 2 if two_clusters(mix, config) else 1
    if gated:
        for which in ("gate_in", "gate_out"):
            cos = np.abs(neurons[f"{which}_alignment"].to_numpy(dtype=np.float64))
            cos = cos[np.isfinite(cos)]
            row[f"{which}_abs_alignment_mean"] = float(cos.mean()) if cos.size else math.nan
    return row


def two_clusters(mix: Mixture, config: FFNConfig) -> bool:
    """Whether a mixture is two clusters: BIC margin, Ashman's D and the smaller share."""
    return bool(
        mix.delta_bic > config.bic_margin
        and mix.ashman_d > config.min_separation
        and min(mix.weight_high, 1 - mix.weight_high) >= config.min_cluster_share
    )
