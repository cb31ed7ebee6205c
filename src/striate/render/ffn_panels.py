"""Painters of the FFN figures, each filling one matplotlib Axes, and their canvas helpers.

A 2-D histogram hides the few extreme neurons a reader most wants to see, so those (|robust z|
>= `FFNConfig.outlier_z` on either axis) are drawn on top as red points; one so far out that the
histogram would shrink into a corner sits on the border as a triangle, labelled with its neuron
and value (`axis_range`). No text is parsed as math, so tensor names stay verbatim.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure

from striate.analyses.ffn import FFNConfig, two_clusters
from striate.analyses.ffn_distribution import (
    SARLE_UNIFORM,
    bimodality_coefficient,
    fit_line,
    gaussian_mixture,
    pearson,
)
from striate.analyses.ffn_similarity import Similarity
from striate.analyses.robust import robust_z
from striate.render.spec import CMAP, DPI, OUTLIER_COLOR
from striate.render.style import canvas

__all__ = [
    "alignment_hist",
    "axis_range",
    "depth_panel",
    "gate_hist",
    "guarded",
    "hist2d",
    "new_figure",
    "note",
    "offdiag_hist",
    "similarity_matrix",
]

BULK_SPAN = 3.0  # axes reach at most this many central-98% spans beyond the central 98%
MAX_LABELS = 3  # outliers per panel labelled with their neuron
LABELS = {"in_norm": "input norm |M1 column|", "out_norm": "output norm |M2 row|",
          "gate_norm": "gate norm", "bias": "bias b",
          "alignment": "alignment cos(input, output)"}  # fmt: skip
VERBATIM: dict[str, Any] = {"parse_math": False}
CAPTION: dict[str, Any] = {"fontsize": 6.5, "loc": "left", "parse_math": False}
CURVE: dict[str, Any] = {"ms": 3, "lw": 1}
LEGEND: dict[str, Any] = {"fontsize": 6, "frameon": False, "loc": "upper left"}
NO_BIAS = "no bias in this model's FFN (bias is null)"


def axis_range(values: np.ndarray) -> tuple[float, float]:
    """(low, high) of an axis for `values` (n,): every finite value, unless some lie more than
    `BULK_SPAN` times the span of the central 98% (1st-99th percentile) beyond it; then the axis
    stops there. Padded by 6% of the span.

    >>> axis_range(np.linspace(0.0, 1.0, 101))
    (-0.06, 1.06)
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return -1.0, 1.0
    q_lo, q_hi = (float(q) for q in np.percentile(v, [1, 99]))
    reach = BULK_SPAN * (q_hi - q_lo)
    lo, hi = max(float(v.min()), q_lo - reach), min(float(v.max()), q_hi + reach)
    pad = 0.06 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.1
    return round(lo - pad, 12), round(hi + pad, 12)


def _bins(n: int) -> int:
    return int(np.clip(round(math.sqrt(n) / 1.5), 10, 100))


def new_figure(width_in: float, height_in: float, title: str) -> Figure:
    fig = canvas(width_in, height_in, dpi=DPI)
    fig.suptitle(title, x=0.01, ha="left", fontsize=10.5, weight="bold", **VERBATIM)
    return fig


def guarded(ax: Axes, draw: Callable[[Axes], None]) -> None:
    """Draw a panel; on failure, write the error in its place."""
    try:
        draw(ax)
    except Exception as exc:  # one broken panel must not lose the figure
        ax.clear()
        ax.set_axis_off()
        words = f"could not draw this panel:\n{type(exc).__name__}: {exc}"
        ax.text(0.5, 0.5, words, ha="center", va="center", color="#b00000", wrap=True, **VERBATIM)


def note(ax: Axes, text: str) -> None:
    """A framed panel of words in place of a plot."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("0.7")
    words = textwrap.fill(text, 42)
    ax.text(0.5, 0.5, words, ha="center", va="center", fontsize=8, color="0.25", **VERBATIM)


def hist2d(ax: Axes, df: pd.DataFrame, xq: str, yq: str, config: FFNConfig, fit: bool) -> None:
    """Neurons per bin of (xq, yq), log-shaded; outliers on top; the line of yq on xq if `fit`."""
    x, y = df[xq].to_numpy(np.float64), df[yq].to_numpy(np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    zx, zy = (np.abs(np.nan_to_num(robust_z(v)[0])) for v in (x, y))
    far = np.flatnonzero(ok & ((zx >= config.outlier_z) | (zy >= config.outlier_z)))
    (x0, x1), (y0, y1) = axis_range(x[ok]), axis_range(y[ok])
    counts, xe, ye = np.histogram2d(x[ok], y[ok], _bins(int(ok.sum())), ((x0, x1), (y0, y1)))
    norm = LogNorm(1, max(2.0, counts.max()))
    mesh = ax.pcolormesh(xe, ye, np.ma.masked_equal(counts.T, 0), cmap="Blues", norm=norm)
    bar = ax.figure.colorbar(mesh, ax=ax, fraction=0.05, pad=0.02)
    bar.set_label("neurons per bin", size=6)
    bar.ax.minorticks_off()  # a log bar's minor ticks: a sixth of the figure's drawing time
    cx, cy = np.clip(x[far], x0, x1), np.clip(y[far], y0, y1)
    cut = (cx != x[far]) | (cy != y[far])
    ax.scatter(cx[~cut], cy[~cut], s=7, color=OUTLIER_COLOR, linewidths=0, zorder=3)
    ax.scatter(cx[cut], cy[cut], s=22, marker="^", facecolors="none", edgecolors=OUTLIER_COLOR,
               linewidths=0.8, zorder=3, clip_on=False)  # fmt: skip
    for j in np.argsort(-np.maximum(zx[far], zy[far]), kind="stable")[:MAX_LABELS]:
        i = far[j]
        beyond = [f"{q} {v:.3g}" for q, v, c in ((xq, x[i], cx[j]), (yq, y[i], cy[j])) if v != c]
        words = f"{df['neuron'].iat[i]}" + (f" ({', '.join(beyond)})" if beyond else "")
        right = cx[j] > (x0 + x1) / 2  # labels point inwards, away from the colour bar
        ax.annotate(words, (cx[j], cy[j]), xytext=(-3 if right else 3, 3), fontsize=5.5,
                    textcoords="offset points", ha="right" if right else "left",
                    color=OUTLIER_COLOR, annotation_clip=False, **VERBATIM)  # fmt: skip
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel(LABELS.get(xq, xq), **VERBATIM)
    ax.set_ylabel(LABELS.get(yq, yq), **VERBATIM)
    words = f"r = {pearson(x, y):.2f} · {far.size} outliers (|z| ≥ {config.outlier_z:g}) in red"
    if fit:
        slope, intercept, se, _ = fit_line(x, y)
        ax.plot([x0, x1], [intercept + slope * x0, intercept + slope * x1], color="black", lw=0.9)
        words += f"\nfit: slope {slope:.3g} ± {se:.2g} (SE), intercept {intercept:.3g}"
    ax.set_title(words, **CAPTION)


def alignment_hist(ax: Axes, df: pd.DataFrame, config: FFNConfig) -> None:
    """Histogram of alignment with the two-Gaussian fit, the mean and the cluster thresholds."""
    a = df["alignment"].to_numpy(np.float64)
    a, t = a[np.isfinite(a)], config.cluster_threshold
    lo, hi = min(-0.2, float(a.min())) - 0.02, max(0.2, float(a.max())) + 0.02
    edges = np.linspace(lo, hi, 2 * _bins(a.size) + 1)
    ax.hist(a, bins=edges.tolist(), color="#6baed6", edgecolor="none", histtype="stepfilled")
    mix, grid = gaussian_mixture(a), np.linspace(lo, hi, 400)
    parts = ((mix.mean_low, mix.sd_low, 1 - mix.weight_high),
             (mix.mean_high, mix.sd_high, mix.weight_high))  # fmt: skip
    for mean, sd, w in parts if np.isfinite(mix.mean_low) else ():
        dens = w * np.exp(-0.5 * ((grid - mean) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
        ax.plot(grid, dens * a.size * (edges[1] - edges[0]), color="#08306b", lw=0.9)
    for at, style in ((-t, "--"), (t, "--"), (0.0, "-")):
        ax.axvline(at, color="0.4", lw=0.7, ls=style)
    ax.axvline(float(a.mean()), color=OUTLIER_COLOR, lw=0.9)
    k = 2 if two_clusters(mix, config) else 1
    ax.set_title(
        f"mean {a.mean():.3f} (red) · {(a > t).mean():.0%} > +{t:g}, {(a < -t).mean():.0%} < "
        f"-{t:g}\nbimodality {bimodality_coefficient(a)[0]:.2f} (5/9 = {SARLE_UNIFORM:.2f}) · "
        f"2-Gaussian fit: {mix.mean_low:.2f}, {mix.mean_high:.2f} (D {mix.ashman_d:.1f}) → "
        f"{k} cluster{'s' if k == 2 else ''}",
        **CAPTION,
    )
    ax.set_xlabel(LABELS["alignment"], **VERBATIM)
    ax.set_ylabel("neurons", **VERBATIM)


def gate_hist(ax: Axes, df: pd.DataFrame) -> None:
    for which, color in (("in", "#2ca02c"), ("out", "#9467bd")):
        v = df[f"gate_{which}_alignment"].to_numpy(np.float64)
        v = v[np.isfinite(v)]
        mean = f"{np.abs(v).mean():.3f}" if v.size else "n/a (no finite values)"
        words = f"cos(gate, {which}): mean |cos| {mean}"
        ax.hist(v, bins=np.linspace(-1, 1, 81).tolist(), histtype="step", color=color, label=words)
    ax.legend(**LEGEND)
    ax.set_xlabel("cosine", **VERBATIM)
    ax.set_ylabel("neurons", **VERBATIM)
    ax.set_title("gate alignments (sign arbitrary per neuron in SwiGLU)", **CAPTION)


def depth_panel(ax: Axes, df: pd.DataFrame, which: str) -> None:
    """One panel of `draw_depthdepth_panel`."""
    x = df["layer"].to_numpy()

    def col(name: str) -> np.ndarray:
        return df[name].to_numpy(np.float64)

    if which == "slope":
        ax.errorbar(x, col("slope_alignment_on_bias"), yerr=1.96 * col("slope_se"), fmt="o-",
                    capsize=2, color="#08519c", label="slope ± 1.96 SE", **CURVE)  # fmt: skip
        ax.set_ylabel("slope of alignment\non bias", **VERBATIM)
    elif which in ("bias", "alignment"):
        m, s = col(f"{which}_mean"), col(f"{which}_std")
        ax.fill_between(x, m - s, m + s, color="#c6dbef", lw=0, label="±1 sd across neurons")
        ax.plot(x, m, "o-", color="#08519c", label="mean", **CURVE)
        two = col("n_clusters") == 2 if which == "alignment" else np.zeros(len(x), bool)
        for q in ("gmm_mean_low", "gmm_mean_high") if two.any() else ():
            label = "cluster means (2 clusters)" if q.endswith("low") else None
            ax.plot(x[two], col(q)[two], "_", ms=9, mew=1.5, color=OUTLIER_COLOR, label=label)
        ax.set_ylabel(f"mean {which}", **VERBATIM)
    elif which == "shares":
        for q, color, sign in (("positive", "#d62728", ">"), ("negative", "#1f77b4", "<")):
            label = f"alignment {sign} {'+' if sign == '>' else '-'}threshold"
            ax.plot(x, col(f"share_{q}"), "o-", color=color, label=label, **CURVE)
        ax.set_ylim(0, 1)
        ax.set_ylabel("share of neurons", **VERBATIM)
    else:
        ax.plot(x, col("bimodality"), "o-", color="0.2", label="Sarle's coefficient", **CURVE)
        ax.axhline(SARLE_UNIFORM, color="0.4", lw=0.7, ls="--", label="5/9 (a uniform)")
        ax.set_ylabel("bimodality of\nalignment", **VERBATIM)
    if which in ("slope", "bias", "alignment"):
        ax.axhline(0, color="0.5", lw=0.6)
    ax.legend(bbox_to_anchor=(1.01, 1.0), **LEGEND)


def similarity_matrix(ax: Axes, sim: Similarity, vmax: float, bar_label: str) -> None:
    m = sim.matrix.shape[0]
    im = ax.imshow(sim.matrix, cmap=CMAP, norm=Normalize(-vmax, vmax), interpolation="nearest")
    cuts = np.flatnonzero(np.diff(sim.clusters)) + 0.5  # between k-means clusters
    ax.hlines(cuts, -0.5, m - 0.5, colors="0.5", lw=0.3)
    ax.vlines(cuts, -0.5, m - 0.5, colors="0.5", lw=0.3)
    ax.set_xlabel("neuron (display order)", **VERBATIM)
    ax.set_ylabel("neuron (display order)", **VERBATIM)
    bar = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.02, extend="both")
    bar.set_label(bar_label, size=6.5, **VERBATIM)


def offdiag_hist(ax: Axes, sim: Similarity, off: np.ndarray, vmax: float) -> None:
    edges = np.linspace(-1.5 * vmax, 1.5 * vmax, 121)
    ax.hist(
        off,
        bins=edges.tolist(),
        density=True,
        color="#6baed6",
        label="off-diagonal cos",
        histtype="stepfilled",
    )  # one polygon, not 120 bars: the same picture, 10x faster
    sd = 1 / math.sqrt(sim.d_model)
    null = np.exp(-0.5 * (edges / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
    ax.plot(edges, null, color="black", lw=0.8, label="random vectors, N(0, 1/d)")
    ax.axvline(sim.mean_offdiag, color=OUTLIER_COLOR, lw=0.9, label="mean (all neurons)")
    ax.legend(**LEGEND)
    ax.set_xlabel("cosine similarity", **VERBATIM)
    ax.set_ylabel("density", **VERBATIM)
