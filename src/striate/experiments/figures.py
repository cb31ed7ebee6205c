"""The figures of the lab and the experiments; each a matplotlib Figure on its own Agg canvas,
drawn inside `striate.render.style.style()` and written by `striate.render.png.save_figure`.

Toy models: painters take arrays and fill one Axes; `guarded` turns a failing panel into its
error message so the rest of a figure still renders. Colours: weights on the diverging red-blue
map (white at 0), superposition from black (none) to yellow (much), features blue and data
points red as in Henighan et al. (2023).

Experiments: curves against step per condition (`draw_curves`), and sweeps (`draw_sweep`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from striate.experiments.harness import Tracked
from striate.experiments.measures import weight_matrices
from striate.render.ffn_panels import VERBATIM, guarded, new_figure, note
from striate.render.png import save_figure
from striate.render.spec import CMAP
from striate.render.style import canvas, style

FEATURE_COLOR = "#1f4e9c"
POINT_COLOR = "#c0392b"
SUPERPOSITION_CMAP = "inferno"  # black: no superposition, yellow: much

Markers = dict[str, dict[str, int | None]]  # condition -> label -> step

# --- the toy models ----------------------------------------------------------------------------


def save(fig: Figure, out_dir: Path, name: str) -> str:
    """Write under figures/; the path relative to the run directory."""
    rel = f"figures/{name}"
    save_figure(fig, out_dir / rel)
    return rel


def weight_matrix(ax: Axes, M: np.ndarray, title: str, vmax: float | None = None) -> None:
    """A matrix on the diverging map, symmetric about 0."""
    limit = vmax or float(np.abs(M).max()) or 1.0
    ax.imshow(M, cmap=CMAP, norm=Normalize(-limit, limit), interpolation="nearest", aspect="auto")
    ax.set_title(title, fontsize=7, **VERBATIM)
    ax.set_xticks([])
    ax.set_yticks([])


def norm_bars(ax: Axes, norms: np.ndarray, superposition: np.ndarray) -> None:
    """||W_i|| per feature (top = feature 0), coloured by sum_{j != i} (W_i_hat . W_j)^2."""
    colors = matplotlib.colormaps[SUPERPOSITION_CMAP](np.clip(superposition, 0, 1) * 0.9)
    ax.barh(np.arange(norms.size), norms, color=colors, height=0.8)
    ax.set_ylim(norms.size - 0.5, -0.5)
    ax.set_xlim(0, max(1.2, float(norms.max()) * 1.05))
    ax.axvline(0.5, color="0.6", lw=0.5, ls="--")
    ax.set_xticks([0, 0.5, 1])
    ax.set_yticks([])
    ax.set_xlabel("||W_i||", fontsize=6, **VERBATIM)


def draw_basic_results(
    columns: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]], title: str
) -> Figure:
    """Elhage et al.'s "basic results": per column (label, W (n, m), bias (n,), superposition
    (n,)): W W^T with the bias beside it, and below the feature norms coloured by superposition.
    """
    with style():
        fig = new_figure(max(5.5, 2.1 * len(columns) + 0.4), 4.6, title)
        grid = fig.add_gridspec(  # per column: W^T W, its bias, a gap
            2, 3 * len(columns), width_ratios=[8, 1, 1.6] * len(columns), wspace=0.1,
            hspace=0.3, top=0.86, bottom=0.18, left=0.04, right=0.99,
        )  # fmt: skip
        for c, (label, W, b, sup) in enumerate(columns):
            gram, bias = W @ W.T, b[:, None]
            limit = max(1.0, float(np.abs(gram).max()))
            top, side = fig.add_subplot(grid[0, 3 * c]), fig.add_subplot(grid[0, 3 * c + 1])
            guarded(top, partial(weight_matrix, M=gram, title=label, vmax=limit))
            guarded(side, partial(weight_matrix, M=bias, title="b", vmax=limit))
            bars = fig.add_subplot(grid[1, 3 * c : 3 * c + 2])
            guarded(bars, partial(norm_bars, norms=np.linalg.norm(W, axis=1), superposition=sup))
        caption = ("top: W^T W and the bias b (red +, blue -)\nbottom: ||W_i||, feature 0 on "
                   "top, coloured by superposition (black none, yellow >= 1)")  # fmt: skip
        fig.text(0.01, 0.01, caption, fontsize=6.5, **VERBATIM)
    return fig


def stack_plot(ax: Axes, W: np.ndarray) -> None:
    """Neuron stack plot of W (m, n): per neuron, |weights| stacked, coloured by feature,
    positive above 0 and negative below (Elhage et al. 2022, privileged basis)."""
    m, n = W.shape
    colors = matplotlib.colormaps["viridis"](np.linspace(0, 1, n))
    up, down = np.zeros(m), np.zeros(m)
    for i in range(n):
        pos, neg = np.clip(W[:, i], 0, None), np.clip(W[:, i], None, 0)
        ax.bar(np.arange(m), pos, bottom=up, color=colors[i], width=0.8, lw=0)
        ax.bar(np.arange(m), neg, bottom=down, color=colors[i], width=0.8, lw=0)
        up, down = up + pos, down + neg
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xticks(range(m))
    ax.set_xlabel("neuron", fontsize=6, **VERBATIM)


def draw_privileged(columns: Sequence[tuple[str, np.ndarray]], title: str) -> Figure:
    """Per column (label, W (m, n)): W as a matrix (neurons x features), and its stack plot."""
    with style():
        fig = new_figure(max(5.5, 1.7 * len(columns) + 0.4), 4.4, title)
        axes = fig.subplots(
            2, len(columns), squeeze=False, gridspec_kw={"top": 0.86, "bottom": 0.16}
        )
        limit = max(float(np.abs(W).max()) for _, W in columns) or 1.0
        for c, (label, W) in enumerate(columns):
            guarded(axes[0, c], partial(weight_matrix, M=W, title=label, vmax=limit))
            guarded(axes[1, c], partial(stack_plot, W=W))
        caption = "top: W, neurons x features\nbottom: weights per neuron, one colour per feature"
        fig.text(0.01, 0.01, caption + " (feature 0 darkest)", fontsize=6.5, **VERBATIM)
    return fig


def vectors_2d(ax: Axes, features: np.ndarray, hidden: np.ndarray | None, label: str) -> None:
    """Feature directions W_i (blue lines from 0) and hidden vectors h_t (red points) in 2-D."""
    for w in features:
        ax.plot([0, w[0]], [0, w[1]], color=FEATURE_COLOR, lw=0.5, alpha=0.6)
    if hidden is not None and hidden.size:
        ax.scatter(hidden[:, 0], hidden[:, 1], s=4, color=POINT_COLOR, lw=0, zorder=3)
    reach = [np.abs(features).max(initial=0.0)]
    if hidden is not None and hidden.size:
        reach.append(np.abs(hidden).max())
    r = 1.08 * max(max(reach), 1e-6)
    ax.set_xlim(-r, r)
    ax.set_ylim(-r, r)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(label, fontsize=7, **VERBATIM)


def draw_geometry(
    panels: Sequence[tuple[str, np.ndarray, np.ndarray | None]], title: str
) -> Figure:
    """Per panel (label, W (n, 2), H (T, 2)): the memorization-to-generalization progression."""
    cols = min(6, len(panels))
    rows = math.ceil(len(panels) / cols)
    with style():
        fig = new_figure(1.8 * cols + 0.3, 1.9 * rows + 0.7, title)
        axes = fig.subplots(
            rows, cols, squeeze=False, gridspec_kw={"top": 1 - 0.5 / (1.9 * rows + 0.7)}
        )
        for ax in axes.flat[len(panels) :]:
            ax.set_axis_off()
        for ax, (label, W, H) in zip(axes.flat, panels, strict=False):
            guarded(ax, partial(vectors_2d, features=W, hidden=H, label=label))
        fig.text(0.01, 0.01, "blue: feature directions W_i; red: hidden vectors of the training "
                 "points", fontsize=6.5, **VERBATIM)  # fmt: skip
    return fig


def curves(
    ax: Axes,
    x: np.ndarray,
    series: Sequence[tuple[str, np.ndarray, str]],
    ylabel: str,
    log_y: bool,
    mark: float | None = None,
) -> None:
    """Lines against x (log scale), one per (label, y, colour); a dashed line at `mark`."""
    for label, y, color in series:
        ax.plot(x, y, marker="o", ms=3, lw=1.1, color=color, label=label)
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    if mark is not None:
        ax.axvline(mark, color="0.5", lw=0.7, ls="--")
    ax.set_xlabel("dataset size T", **VERBATIM)
    ax.set_ylabel(ylabel, **VERBATIM)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, frameon=False)


def dimensionality_scatter(
    ax: Axes, sizes: Sequence[int], feats: Sequence[np.ndarray], points: Sequence[np.ndarray]
) -> None:
    """Feature (blue) and data-point (red) dimensionalities at each dataset size."""
    rng = np.random.default_rng(0)  # jitter only, for legibility
    for T, f, p in zip(sizes, feats, points, strict=True):
        for values, color, side in ((f, FEATURE_COLOR, -1), (p, POINT_COLOR, 1)):
            if values.size:
                jitter = T * np.exp(side * 0.06 + 0.04 * rng.standard_normal(values.size))
                ax.scatter(jitter, values, s=2, color=color, alpha=0.35, lw=0)
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.05)
    ax.set_xlabel("dataset size T", **VERBATIM)
    ax.set_ylabel("dimensionality", **VERBATIM)
    ax.grid(alpha=0.3)


def size_heatmap(
    ax: Axes, values: np.ndarray, sizes: Sequence[int], hidden: Sequence[int], label: str
) -> None:
    """values (len(hidden), len(sizes)) over dataset size (x) and hidden size (y)."""
    im = ax.imshow(values, cmap="viridis", aspect="auto", origin="lower", interpolation="nearest")
    ax.set_xticks(range(len(sizes)), [str(s) for s in sizes], rotation=90, fontsize=5.5)
    ax.set_yticks(range(len(hidden)), [str(m) for m in hidden])
    ax.set_xlabel("dataset size T", **VERBATIM)
    ax.set_ylabel("hidden size m", **VERBATIM)
    ax.figure.colorbar(im, ax=ax, fraction=0.05, pad=0.02).set_label(label, size=6)


def grid_heatmap(
    ax: Axes,
    values: np.ndarray,
    xs: Sequence[object],
    ys: Sequence[object],
    xlabel: str,
    ylabel: str,
    title: str,
    vlim: tuple[float, float],
    cmap: str,
) -> None:
    """values (len(ys), len(xs)) with each cell's number written in it."""
    norm = Normalize(*vlim)
    ax.imshow(values, cmap=cmap, norm=norm, aspect="auto", origin="lower")
    for (r, c), v in np.ndenumerate(values):
        if np.isfinite(v):  # dark text on the light end of the map, light text on the dark end
            color = "0.1" if norm(v) > 0.55 else "white"
            ax.text(c, r, f"{v:.2g}", ha="center", va="center", fontsize=5, color=color)
    ax.set_xticks(range(len(xs)), [str(x) for x in xs], fontsize=5.5)
    ax.set_yticks(range(len(ys)), [str(y) for y in ys], fontsize=5.5)
    ax.set_xlabel(xlabel, **VERBATIM)
    ax.set_ylabel(ylabel, **VERBATIM)
    ax.set_title(title, fontsize=7, **VERBATIM)


# --- the experiments: curves against step, sweeps --------------------------------------------


def _x_log(ax: Axes, steps: np.ndarray) -> None:
    if steps.size and steps.max() >= 100:
        ax.set_xscale("symlog", linthresh=10)
    ax.grid(alpha=0.3)


def _mark(ax: Axes, marks: dict[str, int | None]) -> None:
    for i, (label, step) in enumerate(marks.items()):
        if step is not None:
            ax.axvline(step, color=f"C{i + 3}", ls="--", lw=1, label=f"{label} (step {step})")


def _by_seed(table: pd.DataFrame) -> list[tuple[int, pd.DataFrame]]:
    """`table`'s rows per seed (a table over seeds has a `seed` column), or the whole table."""
    if "seed" not in table.columns:
        return [(0, table)]
    return [(int(str(s)), rows) for s, rows in table.groupby("seed", sort=True)]


def draw_curves(tracked: Tracked, markers: Markers, path: Path, title: str) -> str:
    """One column per condition: accuracy (top) and the effective rank of every weight
    matrix (bottom) against step, with the marked steps as dashed lines. Tables over seeds
    (a `seed` column, `harness.over_seeds`) draw every seed, thinner. Returns the path
    relative to the run directory's parent folder of `figures/`."""
    names = list(dict.fromkeys(tracked.metrics["condition"]))
    several = "seed" in tracked.metrics.columns
    lw, alpha = (0.8, 0.6) if several else (1.2, 1.0)
    with style():
        fig = canvas(4.4 * len(names), 6.4, dpi=110)
        fig.suptitle(title, x=0.01, ha="left", fontsize=10, weight="bold", parse_math=False)
        axes = fig.subplots(2, len(names), squeeze=False, sharex="col", sharey="row")
        for col, name in enumerate(names):
            m = tracked.metrics[tracked.metrics["condition"] == name]
            t = tracked.trajectories[tracked.trajectories["condition"] == name]
            top, bottom = axes[0, col], axes[1, col]
            for n, (_, ms) in enumerate(_by_seed(m)):
                for key, color in (("train_acc", "C0"), ("test_acc", "C1")):
                    if key in ms:
                        top.plot(ms["step"], ms[key], color=color, lw=lw, alpha=alpha,
                                 label=key.replace("_", " ") if n == 0 else None)  # fmt: skip
            top.set_title(name, fontsize=9, loc="left", parse_math=False)
            top.set_ylim(-0.02, 1.02)
            for n, (_, ts) in enumerate(_by_seed(t)):
                for i, matrix in enumerate(weight_matrices(t)):
                    rows = ts[ts["name"] == matrix].sort_values("step")
                    bottom.plot(rows["step"], rows["effective_rank"], color=f"C{i % 10}",
                                lw=lw, alpha=alpha, marker="." if not several else None, ms=3,
                                label=matrix if n == 0 else None)  # fmt: skip
            bottom.set_xlabel("step")
            for ax in (top, bottom):
                _x_log(ax, m["step"].to_numpy())
                _mark(ax, markers.get(name, {}))
            top.legend(fontsize=7, loc="center left")
            bottom.legend(fontsize=7, loc="best")
        axes[0, 0].set_ylabel("accuracy")
        axes[1, 0].set_ylabel("effective rank")
        fig.subplots_adjust(left=0.07, right=0.98, top=0.9, bottom=0.08, hspace=0.12, wspace=0.2)
        save_figure(fig, path)
    return f"figures/{path.name}"


def draw_sweep(
    table: pd.DataFrame,
    x: str,
    panels: list[str],
    path: Path,
    title: str,
    *,
    hue: str | None = None,
    log_x: bool = False,
    reference: dict[str, float] | None = None,
) -> str:
    """One panel per column in `panels`, `x` on the horizontal axis, one line per `hue`.
    `reference` draws a dotted horizontal line per panel (e.g. chance level). A table over
    seeds (a `seed` column) draws the mean over seeds with a band of ± 1 sd."""
    with style():
        # wide enough for the title on one line (about 0.08 inch per character at size 10)
        fig = canvas(max(4.2 * len(panels), 0.08 * len(title)), 3.6, dpi=110)
        fig.suptitle(title, x=0.01, ha="left", fontsize=10, weight="bold", parse_math=False)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        groups = list(table.groupby(hue, sort=False)) if hue else [("", table)]
        for ax, column in zip(axes, panels, strict=True):
            for i, (label, rows) in enumerate(groups):
                stats = rows.groupby(x)[column].agg(["mean", "std"]).sort_index()
                ax.plot(stats.index, stats["mean"], color=f"C{i % 10}", marker="o", ms=4,
                        lw=1.2, label=str(label) or None)  # fmt: skip
                if "seed" in rows.columns and rows["seed"].nunique() > 1:
                    sd = stats["std"].fillna(0.0)
                    ax.fill_between(stats.index, stats["mean"] - sd, stats["mean"] + sd,
                                    color=f"C{i % 10}", alpha=0.2, lw=0)  # fmt: skip
            if reference and column in reference:
                ax.axhline(reference[column], color="grey", ls=":", lw=1, label="chance")
            if log_x:
                positive = table[x].to_numpy(dtype=float)
                ax.set_xscale("symlog", linthresh=float(np.min(positive[positive > 0], initial=1)))
            ax.set_title(column, fontsize=9, loc="left", parse_math=False)
            ax.set_xlabel(x, parse_math=False)
            ax.grid(alpha=0.3)
        if axes[0].get_legend_handles_labels()[1]:
            axes[0].legend(fontsize=7)
        fig.subplots_adjust(left=0.07, right=0.98, top=0.84, bottom=0.16, wspace=0.25)
        save_figure(fig, path)
    return f"figures/{path.name}"


__all__ = [
    "Markers",
    "curves",
    "dimensionality_scatter",
    "draw_basic_results",
    "draw_curves",
    "draw_geometry",
    "draw_privileged",
    "draw_sweep",
    "grid_heatmap",
    "guarded",
    "new_figure",
    "note",
    "save",
    "size_heatmap",
]
