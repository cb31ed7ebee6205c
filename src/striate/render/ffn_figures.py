"""Figures of FFN neurons: per-layer histograms, depth curves and similarity matrices.

Each is a matplotlib Figure on its own Agg canvas in striate's style (`render.png`), filled by
the painters of `render.ffn_panels` and written atomically. A panel that fails to draw shows its
error; the rest of the figure still renders.

    >>> draw_layer_figure(neurons, 0, out / "ffn_layer0.png", title="minilm")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from striate.analyses.ffn import FFNConfig
from striate.analyses.ffn_similarity import Similarity
from striate.render.ffn_panels import (
    NO_BIAS,
    VERBATIM,
    alignment_hist,
    depth_panel,
    gate_hist,
    guarded,
    hist2d,
    new_figure,
    note,
    offdiag_hist,
    similarity_matrix,
)
from striate.render.png import save_figure
from striate.render.scale import color_limit, format_limit
from striate.render.style import style

__all__ = ["draw_depth_curves", "draw_layer_figure", "draw_similarity"]

COLUMNS = 4  # panels per row of a layer figure


def draw_layer_figure(
    neurons: pd.DataFrame,
    layer: int,
    path: Path,
    *,
    title: str = "",
    config: FFNConfig | None = None,
) -> None:
    """The neurons of one layer (rows of `ffn.parquet`; other layers are ignored) as a PNG.

    Panels: input norm against output norm; bias against each norm and against alignment (with
    the fitted line), or one panel saying the model has no bias; alignment against input and
    output norm; the alignment histogram with the two-Gaussian fit and the cluster thresholds;
    for gated FFNs the gate norm against both norms and the gate alignments.
    """
    config = config or FFNConfig()
    df = neurons[neurons["layer"] == layer].reset_index(drop=True)
    if df.empty:
        raise ValueError(
            f"no neurons of layer {layer}; layers: {sorted(neurons['layer'].unique())}"
        )

    def pair(xq: str, yq: str, fit: bool = False) -> Callable[[Axes], None]:
        return partial(hist2d, df=df, xq=xq, yq=yq, config=config, fit=fit)

    panels = [pair("in_norm", "out_norm")]
    if np.isfinite(df["bias"].to_numpy(np.float64)).any():
        panels += [
            pair("bias", q, fit=q == "alignment") for q in ("in_norm", "out_norm", "alignment")
        ]
    else:
        panels.append(partial(note, text=NO_BIAS + ": no bias panels, no fit of alignment on bias"))
    panels += [pair(q, "alignment") for q in ("in_norm", "out_norm")]
    panels.append(partial(alignment_hist, df=df, config=config))
    if "gate_norm" in df.columns:
        panels += [pair("gate_norm", q) for q in ("in_norm", "out_norm")]
        panels.append(partial(gate_hist, df=df))
    rows = math.ceil(len(panels) / COLUMNS)
    height = 0.8 + 3.5 * rows  # inches: the title, then 3.5 per row of panels
    with style():
        heading = f"{title + ' · ' if title else ''}FFN layer {layer}: {len(df)} neurons"
        fig = new_figure(16.0, height, heading)
        grid = fig.add_gridspec(rows, COLUMNS, left=0.05, right=0.97, top=1 - 0.9 / height,
                                bottom=0.55 / height, hspace=0.6, wspace=0.35)  # fmt: skip
        for k, draw in enumerate(panels):
            guarded(fig.add_subplot(grid[k // COLUMNS, k % COLUMNS]), draw)
        save_figure(fig, path)


def draw_depth_curves(layers: pd.DataFrame, path: Path, *, title: str = "") -> None:
    """Per-layer curves from `ffn_layers.parquet` rows: the slope of alignment on bias (error
    bars ±1.96 SE) and the mean bias (both left out when the model has no bias), the mean
    alignment (band ±1 sd across neurons, with the two Gaussian means where a layer has two
    clusters), the shares beyond ±cluster_threshold and the bimodality coefficient."""
    df = layers.sort_values("layer")
    has_bias = bool(np.isfinite(df["bias_mean"].to_numpy(np.float64)).any())
    panels = (["slope", "bias"] if has_bias else []) + ["alignment", "shares", "bimodality"]
    height = 1.9 * len(panels) + 0.9
    with style():
        fig = new_figure(8.5, height, f"{title + ' · ' if title else ''}FFN neurons by layer")
        axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
        fig.subplots_adjust(left=0.13, right=0.74, top=1 - 0.75 / height, bottom=0.45 / height,
                            hspace=0.15)  # fmt: skip
        if not has_bias:
            words = NO_BIAS + ": the slope of alignment on bias and the mean bias are left out"
            fig.text(0.01, 1 - 0.45 / height, words, fontsize=7, color="0.25", va="top", **VERBATIM)
        for ax, which in zip(axes, panels, strict=True):
            guarded(ax, partial(depth_panel, df=df, which=which))
        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[-1].set_xlabel("layer", **VERBATIM)
        save_figure(fig, path)


def draw_similarity(sim: Similarity, title: str, path: Path) -> None:
    """The sorted cosine-similarity matrix of one matrix's neurons, beside the histogram of its
    off-diagonal values and the spread of random vectors, N(0, 1/d)."""
    m = sim.matrix.shape[0]
    off = sim.matrix[~np.eye(m, dtype=bool)]
    limit = color_limit(off, of="|cos|")
    shown = "all" if m == sim.n_neurons else f"a seeded sample of {m}"
    words = (
        f"{sim.n_neurons} neurons in d = {sim.d_model} ({shown} shown) · mean off-diagonal cos "
        f"{sim.mean_offdiag:.4f} (random: 0) · the top direction holds {sim.top_share:.1%} of "
        f"sum sigma^2 (random: {sim.top_share_null:.1%})\nsorted by spherical k-means clusters "
        "(grey lines) along the top direction; faint diagonal blocks appear for any clustering"
    )
    with style():
        fig = new_figure(12, 6.4, title)
        fig.text(0.01, 0.905, words, fontsize=7, color="0.25", va="top", **VERBATIM)
        label = "cos, " + format_limit(limit)
        guarded(
            fig.add_axes((0.06, 0.08, 0.5, 0.74)),
            partial(similarity_matrix, sim=sim, vmax=limit.vmax, bar_label=label),
        )
        guarded(
            fig.add_axes((0.7, 0.08, 0.27, 0.74)),
            partial(offdiag_hist, sim=sim, off=off, vmax=limit.vmax),
        )
        save_figure(fig, path)
