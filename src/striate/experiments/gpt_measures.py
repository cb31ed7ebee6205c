"""What `gpt-specimen` measures on a GPT-2's weights, as seed 000 reads them. Pure functions:
arrays and scan tables in, plain numbers (for summary.json) out.

- `fit_sinusoid`, `wpe_components`: the top principal components of the position embedding
  over position, each fitted by a * sin(2 pi f t + phi) + c.
- `hypergeom_p`, `norm_line_overlap`: do LayerNorm-gain outlier dims fall on line dims?
- `attention_bias`: the q, k and v parts of a layer's `c_attn` bias.
- `embedding_by_frequency`: embedding rows of frequent against rare tokens.
- `ffn_summary`, `ffn_at_init`: FFN neuron statistics (the scan's `ffn` table) and what
  GPT-2's random init gives for them in closed form.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from striate.experiments.gpt_model import INIT_STD


@dataclass(frozen=True)
class SinusoidFit:
    """y[t] ~ amplitude * sin(2 pi frequency t + phase) + offset, t = 0..n-1."""

    frequency: float  # cycles per position
    cycles: float  # cycles over the n positions: frequency * n
    amplitude: float
    phase: float  # radians, in (-pi, pi]
    offset: float
    r2: float  # 1 - SS_residual / SS_total; NaN for a constant y

    def curve(self, n: int) -> np.ndarray:
        """The fitted curve at t = 0..n-1, shape (n,)."""
        y: np.ndarray = self.amplitude * np.sin(
            2 * np.pi * self.frequency * np.arange(n) + self.phase
        )
        return y + self.offset


def _sin_cos_fits(y: np.ndarray, freqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least squares of y on [sin, cos, 1] at each frequency: coefficients (F, 3), SS_res (F,)."""
    t = np.arange(y.size)
    phase = 2 * np.pi * freqs[:, None] * t  # (F, n)
    X = np.stack([np.sin(phase), np.cos(phase), np.ones_like(phase)], axis=2)  # (F, n, 3)
    beta: np.ndarray = np.linalg.pinv(X) @ y  # (F, 3): pinv copes with sin = 0 at f = 0.5
    residual = y - np.einsum("fnk,fk->fn", X, beta)
    return beta, np.einsum("fn,fn->f", residual, residual)


def fit_sinusoid(y: np.ndarray, *, min_cycles: float = 0.5, oversample: int = 8) -> SinusoidFit:
    """The sinusoid that fits y best: a grid over frequency, then least squares.

    y: shape (n,). Frequencies from `min_cycles` cycles over the n positions (a half cycle:
    below it a sinusoid is a ramp or a bend) to 0.5 (Nyquist), spaced 1 / (n * oversample);
    at each the amplitude, phase and offset are linear least squares on sin, cos and 1. The best
    grid frequency is refined by a bounded search within one grid step.

    >>> t = np.arange(100)
    >>> fit = fit_sinusoid(2.0 * np.sin(2 * np.pi * 0.037 * t + 1.0) + 0.5)
    >>> round(fit.frequency, 6), round(fit.amplitude, 6), round(fit.r2, 9)
    (0.037, 2.0, 1.0)
    """
    from scipy.optimize import minimize_scalar

    y = np.asarray(y, dtype=np.float64)
    n = y.size
    if n < 4 or not np.isfinite(y).all():
        raise ValueError(f"fit_sinusoid needs >= 4 finite values, got shape {y.shape}")
    step = 1.0 / (n * oversample)
    grid = np.arange(min_cycles / n, 0.5 + step / 2, step)
    _, ss = _sin_cos_fits(y, grid)
    best = float(grid[int(np.argmin(ss))])
    lo, hi = max(best - step, min_cycles / n), min(best + step, 0.5)
    found = minimize_scalar(
        lambda f: float(_sin_cos_fits(y, np.array([f]))[1][0]),
        bounds=(lo, hi), method="bounded", options={"xatol": 1e-10},
    )  # fmt: skip
    f = float(found.x) if found.fun <= ss.min() else best
    (beta,), (ss_res,) = _sin_cos_fits(y, np.array([f]))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(ss_res) / ss_tot if ss_tot > 0 else float("nan")
    s, c, offset = (float(b) for b in beta)
    return SinusoidFit(f, f * n, math.hypot(s, c), math.atan2(c, s), offset, r2)


def principal_components(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top `k` principal components of the rows of x (n, d), centred over the rows: their
    scores (n, k) = U[:, :k] * S[:k] and their shares of the total variance (k,). Signs are
    fixed so that each score's largest |value| is positive."""
    xc = np.asarray(x, dtype=np.float64) - np.mean(x, axis=0)
    U, S, _ = np.linalg.svd(xc, full_matrices=False)
    scores = U[:, :k] * S[:k]
    signs = np.sign(scores[np.argmax(np.abs(scores), axis=0), np.arange(scores.shape[1])])
    return scores * np.where(signs == 0, 1.0, signs), S[:k] ** 2 / np.sum(S**2)


def wpe_components(wpe: np.ndarray, k: int = 3) -> dict[str, Any]:
    """The top `k` principal components of a position embedding wpe (n_ctx, d) over position,
    each with its sinusoid fit; `mean_r2` over them."""
    scores, share = principal_components(wpe, k)
    comps = [{"component": i, "variance_share": float(share[i]),
              **asdict(fit_sinusoid(scores[:, i]))} for i in range(scores.shape[1])]  # fmt: skip
    return {"components": comps, "mean_r2": float(np.mean([c["r2"] for c in comps]))}


def hypergeom_p(overlap: int, d: int, n_lines: int, n_outliers: int) -> float:
    """P(X >= overlap) for X hypergeometric: `n_outliers` dims drawn at random among d, of which
    `n_lines` are line dims. 1 when either set is empty.

    >>> round(hypergeom_p(2, 10, 3, 2), 12)  # C(3,2) / C(10,2) = 3 / 45
    0.066666666667
    """
    from scipy.stats import hypergeom

    if n_lines == 0 or n_outliers == 0:
        return 1.0
    return float(hypergeom.sf(overlap - 1, d, n_lines, n_outliers))


def norm_line_overlap(
    findings: pd.DataFrame, tensors: pd.DataFrame, links: pd.DataFrame, hidden_size: int
) -> dict[str, Any]:
    """Seed 000's "the spectral lines might correspond to the layernorm values", over the
    whole model: O, the residual dims where any LayerNorm gain has an outlier (the scan's
    `norm_outlier` findings); L, the residual dims of the `line` findings in the matrices those
    gains feed (`norm_links`' `fed`); the overlap O & L and its hypergeometric p-value among
    `hidden_size` dims. `findings`, `tensors`, `links` are one scan's tables. With `per_norm`,
    each gain's own row of `norm_links`.
    """
    gains = set(tensors.loc[tensors["role"] == "norm", "name"])
    gain_links = links[links["kind"] == "gain"] if len(links) else links
    fed = {str(t) for row in gain_links.get("fed", []) for t in row}
    pinned = findings[findings["residual_dim"].notna()]
    outliers = pinned[(pinned["kind"] == "norm_outlier") & pinned["tensor"].isin(gains)]
    lines = pinned[(pinned["kind"] == "line") & pinned["tensor"].isin(fed)]
    o = {int(x) for x in outliers["residual_dim"]}
    li = {int(x) for x in lines["residual_dim"]}
    both = sorted(o & li)
    columns = ["norm", "n_outlier_dims", "n_line_dims", "overlap", "p_value"]
    per_norm = gain_links[columns].to_dict("records") if len(gain_links) else []
    return {
        "hidden_size": hidden_size,
        "n_gains": len(gains),
        "n_fed_matrices": len(fed),
        "outlier_dims": sorted(o),
        "n_outlier_dims": len(o),
        "n_line_dims": len(li),
        "overlap": len(both),
        "overlap_dims": both,
        "expected_overlap": len(o) * len(li) / hidden_size,
        "p_value": hypergeom_p(len(both), hidden_size, len(li), len(o)),
        "n_gain_outliers": len(outliers),  # findings, several per dim possible
        "per_norm": per_norm,
    }


def attention_bias(bias: np.ndarray, top: int = 5) -> dict[str, Any]:
    """The q, k and v thirds of a `c_attn` bias (3d,): each part's norm and its `top` largest
    |entries| (index in the stored (3d,) vector, value)."""
    b = np.asarray(bias, dtype=np.float64)
    d = b.size // 3
    out: dict[str, Any] = {}
    for i, part in enumerate("qkv"):
        x = b[i * d : (i + 1) * d]
        order = np.argsort(-np.abs(x), kind="stable")[:top]
        top_entries = [{"index": int(i * d + j), "value": float(x[j])} for j in order]
        out[part] = {"norm": float(np.linalg.norm(x)), "max_abs": float(np.abs(x).max()),
                     "top": top_entries}  # fmt: skip
    return out


def frequency_groups(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokens that occur, most frequent first (ties: lower id first); the most frequent quarter
    of them and the rarest quarter. counts: (vocab,) occurrences in the training text."""
    counts = np.asarray(counts)
    order = np.argsort(-counts, kind="stable")
    order = order[counts[order] > 0]
    q = len(order) // 4
    return order, order[:q], order[len(order) - q :]


def _mean_cos_to_mean(rows: np.ndarray) -> float:
    centre = rows.mean(axis=0)
    cos = rows @ centre / (np.linalg.norm(rows, axis=1) * np.linalg.norm(centre))
    return float(np.mean(cos))


def embedding_by_frequency(wte: np.ndarray, counts: np.ndarray) -> dict[str, Any]:
    """Embedding rows (vocab, d) of the most frequent quarter of the tokens that occur against
    the rarest quarter: mean row norm, its ratio (frequent / rare), and the mean cosine of each
    row to its quarter's mean row (rows that share a pattern, "vertical stripes", score high);
    the Spearman correlation of count and row norm over all tokens that occur."""
    from scipy.stats import spearmanr

    w = np.asarray(wte, dtype=np.float64)
    order, frequent, rare = frequency_groups(counts)
    norms = np.linalg.norm(w, axis=1)
    out: dict[str, Any] = {"n_occurring": len(order), "quarter": len(frequent)}
    for name, group in (("frequent", frequent), ("rare", rare)):
        out[name] = {"mean_norm": float(norms[group].mean()),
                     "mean_cos_to_mean": _mean_cos_to_mean(w[group]),
                     "tokens": [int(t) for t in group]}  # fmt: skip
    out["norm_ratio"] = out["frequent"]["mean_norm"] / out["rare"]["mean_norm"]
    out["cos_difference"] = out["frequent"]["mean_cos_to_mean"] - out["rare"]["mean_cos_to_mean"]
    rho = spearmanr(np.asarray(counts)[order], norms[order]).statistic
    out["spearman_count_norm"] = float(rho)
    return out


def ffn_summary(ffn: pd.DataFrame) -> dict[str, Any]:
    """Per layer and over all layers, from a scan's `ffn` table: mean in_norm, out_norm and
    |alignment| (the cosine of a neuron's input and output vectors)."""

    def stats(rows: pd.DataFrame) -> dict[str, float]:
        return {"mean_in_norm": float(rows["in_norm"].mean()),
                "mean_out_norm": float(rows["out_norm"].mean()),
                "mean_abs_alignment": float(rows["alignment"].abs().mean()),
                "mean_alignment": float(rows["alignment"].mean())}  # fmt: skip

    layers = {str(layer): stats(rows) for layer, rows in ffn.groupby("layer")}
    return {"all": stats(ffn), "layers": layers}


def _mean_chi(d: int) -> float:
    """E||x|| for x ~ N(0, I_d): sqrt(2) Gamma((d + 1) / 2) / Gamma(d / 2)."""
    return math.sqrt(2) * math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2))


def ffn_at_init(d: int, n_layer: int) -> dict[str, float]:
    """What GPT-2's init gives `ffn_summary` in expectation: c_fc's neuron vectors N(0, 0.02^2 I_d),
    c_proj's N(0, (0.02 / sqrt(2 n_layer))^2 I_d), independent; the cosine of two independent
    Gaussian vectors has E|cos| = Gamma(d / 2) / (sqrt(pi) Gamma((d + 1) / 2)) ~ sqrt(2 / (pi d))
    and E cos = 0."""
    return {
        "mean_in_norm": INIT_STD * _mean_chi(d),
        "mean_out_norm": INIT_STD / math.sqrt(2 * n_layer) * _mean_chi(d),
        "mean_abs_alignment": math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2))
        / math.sqrt(math.pi),
        "mean_alignment": 0.0,
    }  # fmt: skip


__all__ = [
    "SinusoidFit",
    "attention_bias",
    "embedding_by_frequency",
    "ffn_at_init",
    "ffn_summary",
    "fit_sinusoid",
    "frequency_groups",
    "hypergeom_p",
    "norm_line_overlap",
    "principal_components",
    "wpe_components",
]
