"""Figures of spectra: one matrix's eigenvalues on log-log axes, and spectral metrics by depth.

Drawn with matplotlib's Agg canvas in striate's style (`render.style`: no pyplot, no global
state) and written atomically. Every text, titles and tensor names included, is drawn verbatim,
never parsed as math. A panel that fails to draw shows its error; the rest of the figure renders.

    >>> from striate.analyses.spectrum import singular_values, spectrum_metrics
    >>> w = np.random.default_rng(0).normal(size=(1536, 384))
    >>> s = singular_values(w)
    >>> m = spectrum_metrics(s, w.shape)
    >>> draw_spectrum(s, m, "ffn", tmp / "s.png", shape=w.shape)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from striate.analyses.spectrum import mp_pdf
from striate.anatomy.records import ROLES
from striate.render.png import save_figure
from striate.render.spec import DPI
from striate.render.style import canvas, style

__all__ = ["DEPTH_METRICS", "depth_series", "draw_depth_metrics", "draw_spectrum", "esd_histogram"]

#: panels of `draw_depth_metrics`, in order, with their axis labels
DEPTH_METRICS: dict[str, str] = {
    "alpha": "alpha (power-law tail of the ESD)",
    "stable_rank": "stable rank ||W||F^2 / ||W||2^2",
    "effective_rank": "effective rank exp(entropy)",
    "spectral_norm": "spectral norm ||W||2",
    "n_spikes": "spikes above the MP edge",
    "energy_top10pct": "energy in the top 10% directions",
}
ESD_COLOR, FIT_COLOR, MP_COLOR, SPIKE_COLOR = "#1f4e79", "#d62728", "#2ca02c", "#ff7f0e"
ROLE_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip
ROLE_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*")
LOG_RANGE = 30.0  # a depth panel whose values span more than this factor gets a log axis


def esd_histogram(lam: np.ndarray, bins: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Density of the positive values of `lam` on `bins` log-spaced bins: (edges (bins + 1,),
    density (bins,)), the density normalised over all positive values (integrates to 1).

    >>> edges, dens = esd_histogram(np.array([1.0, 2.0, 4.0, 8.0]), bins=3)
    >>> edges.round(3).tolist(), float((dens * np.diff(edges)).sum())
    ([1.0, 2.0, 4.0, 8.0], 1.0)
    """
    v = np.asarray(lam, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return np.zeros(0), np.zeros(0)
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        lo, hi = lo / 1.1, hi * 1.1
    edges = np.geomspace(lo, hi, bins + 1)
    counts, _ = np.histogram(v, bins=edges)
    return edges, counts / (v.size * np.diff(edges))


def _finite(x: object) -> float:
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def _panel(ax: Axes, draw: Callable[[Axes], None], has_data: bool = True) -> None:
    """Run `draw` on `ax`; on failure (or without data) the panel says so instead."""
    try:
        if not has_data:
            raise ValueError("nothing to draw: no positive finite values")
        draw(ax)
    except Exception as exc:  # one broken panel must not lose the figure
        ax.clear()
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"could not draw this panel:\n{type(exc).__name__}: {exc}",
                ha="center", va="center", color="#b00000", parse_math=False, wrap=True)  # fmt: skip


def _legend(ax: Axes) -> None:
    if not ax.get_legend_handles_labels()[0]:
        return
    leg = ax.legend(fontsize=6, frameon=False, loc="lower left")
    for text in leg.get_texts():
        text.set_parse_math(False)


def draw_spectrum(
    s: np.ndarray,
    metrics: Mapping[str, float | int],
    title: str,
    path: Path,
    *,
    shape: tuple[int, int] | None = None,
) -> None:
    """Two log-log panels of the eigenvalues lambda = s^2 of one matrix, PNG at `path`.

    Left: the ESD as a density on log-spaced bins, the fitted power law from x_min (scaled by
    the tail's share of the eigenvalues), the Marchenko-Pastur density for `mp_sigma` (when
    `shape`, the matrix's (rows, cols), is given) and its bulk edge. Right: lambda against its
    rank, spikes above the edge highlighted. `s` (M,) singular values; `metrics` from
    `spectrum_metrics` (missing or NaN entries are left out of the drawing).
    """
    lam = np.sort(np.asarray(s, dtype=np.float64).reshape(-1) ** 2)[::-1]
    get = {k: _finite(metrics.get(k)) for k in
           ("alpha", "alpha_xmin", "alpha_ks", "alpha_n_tail", "mp_edge", "mp_sigma",
            "n_spikes", "stable_rank", "effective_rank")}  # fmt: skip
    positive = lam[np.isfinite(lam) & (lam > 0)]
    edge, xmin, alpha = get["mp_edge"], get["alpha_xmin"], get["alpha"]

    def esd(ax: Axes) -> None:
        edges, dens = esd_histogram(positive)
        ax.stairs(dens, edges, fill=True, color=ESD_COLOR, alpha=0.55, label="ESD")
        if math.isfinite(alpha) and math.isfinite(xmin):
            x = np.geomspace(xmin, positive.max(), 100)
            share = get["alpha_n_tail"] / positive.size
            y = share * (alpha - 1) / xmin * (x / xmin) ** -alpha
            ax.plot(x, y, color=FIT_COLOR, lw=1.4, label=f"power law, alpha {alpha:.2f}")
            ax.axvline(xmin, color=FIT_COLOR, lw=0.8, ls=":", label=f"x_min {xmin:.3g}")
        if shape is not None and math.isfinite(get["mp_sigma"]) and get["mp_sigma"] > 0:
            x = np.geomspace(edges[0], edges[-1], 400)
            p = mp_pdf(x, shape, get["mp_sigma"])
            ax.plot(x[p > 0], p[p > 0], color=MP_COLOR, lw=1.0, ls="--", label="MP bulk")
        if math.isfinite(edge) and edge > 0:
            ax.axvline(edge, color=MP_COLOR, lw=1.0, label=f"MP edge {edge:.3g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(bottom=max(dens[dens > 0].min() / 3, 1e-300))
        ax.set_xlabel("eigenvalue of W^T W  (lambda = s^2)", parse_math=False)
        ax.set_ylabel("density", parse_math=False)
        _legend(ax)

    def ranks(ax: Axes) -> None:
        k = np.arange(1, positive.size + 1)
        ax.plot(k, positive, color=ESD_COLOR, lw=1.0)
        if math.isfinite(edge) and edge > 0:
            spikes = int(get["n_spikes"]) if math.isfinite(get["n_spikes"]) else 0
            ax.axhline(edge, color=MP_COLOR, lw=1.0, label="MP edge")
            if spikes:
                ax.plot(k[:spikes], positive[:spikes], ls="none", marker="o", ms=2.5,
                        color=SPIKE_COLOR, label=f"{spikes} spikes")  # fmt: skip
        if math.isfinite(xmin):
            ax.axhline(xmin, color=FIT_COLOR, lw=0.8, ls=":", label="x_min")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rank k", parse_math=False)
        ax.set_ylabel("lambda_k", parse_math=False)
        _legend(ax)

    with style():
        fig = canvas(1200 / DPI, 520 / DPI, dpi=DPI)
        fig.text(0.01, 0.985, title, fontsize=10, weight="bold", va="top", parse_math=False)
        words = [f"{positive.size} of {lam.size} eigenvalues > 0"]
        words += [f"{label} {get[key]:.3g}" for key, label in
                  (("alpha", "alpha"), ("alpha_ks", "KS"), ("stable_rank", "stable rank"),
                   ("effective_rank", "effective rank"), ("mp_sigma", "MP sigma"))
                  if math.isfinite(get[key])]  # fmt: skip
        fig.text(0.01, 0.925, " · ".join(words), fontsize=7, color="0.25", va="top",
                 parse_math=False)  # fmt: skip
        for i, draw in enumerate((esd, ranks)):
            _panel(fig.add_axes((0.07 + 0.5 * i, 0.12, 0.41, 0.72)), draw, positive.size > 0)
        save_figure(fig, path)


def depth_series(table: pd.DataFrame) -> list[str]:
    """The line each row of `table` (columns name, role, layer) belongs to: its role, or where
    a role has several matrices in one layer (a convnet's expand, depthwise and project convs)
    its role and the parts of its name that differ, the layer's index taken out.

    >>> depth_series(pd.DataFrame({"name": ["b.0.dw.w", "b.0.pw.w", "b.1.dw.w", "h.1.q"],
    ...     "role": ["conv", "conv", "conv", "attn_q"], "layer": [0, 0, 1, 1]}))
    ['conv dw', 'conv pw', 'conv dw', 'attn_q']
    """
    labels = [str(r) for r in table["role"]]
    crowded = table.groupby(["role", "layer"]).size().loc[lambda n: n > 1].index
    for role in {r for r, _ in crowded}:
        pick = np.flatnonzero((table["role"] == role).to_numpy())
        parts = [[p if p != str(layer) else "N" for p in str(name).split(".")]
                 for name, layer in zip(table["name"].iloc[pick], table["layer"].iloc[pick],
                                        strict=True)]  # fmt: skip
        head = 0  # components shared by every name of the role, dropped from the labels
        while all(len(p) > head + 1 and p[head] == parts[0][head] for p in parts):
            head += 1
        tail = 0
        while all(len(p) > head + tail + 1 and p[-1 - tail] == parts[0][-1 - tail] for p in parts):
            tail += 1
        for i, p in zip(pick, parts, strict=True):
            labels[i] = f"{role} " + ".".join(p[head : len(p) - tail])
    return labels


def _layered(table: pd.DataFrame) -> pd.DataFrame:
    rows = table.loc[table["layer"].notna()].astype({"layer": "int64"})
    ordered: pd.DataFrame = rows.sort_values("layer", kind="stable")
    return ordered


def draw_depth_metrics(
    table: pd.DataFrame, path: Path, *, metrics: Sequence[str] = tuple(DEPTH_METRICS)
) -> None:
    """One panel per metric against layer, one line per role, PNG at `path`.

    `table` has columns `name, role, layer` and the metric columns (as `tensors.parquet`);
    rows without a layer (embeddings, heads) and metrics absent from the table are left out
    (the title says how many), and so are rows with no finite value in any panel (vectors): a
    line, and its legend entry, only where there are points. A positive metric spanning more
    than `LOG_RANGE` gets a log axis.
    """
    rows = _layered(table) if {"role", "layer"} <= set(table.columns) else table.iloc[0:0]
    shown = [m for m in metrics if m in rows.columns] or list(metrics)[:1]
    if not rows.empty:
        rows = rows.assign(series=depth_series(rows))
    # a series is drawn, and in the legend, only where it has a finite value in a panel (the
    # tensors table has a row per norm and bias too, without spectra)
    finite = pd.Series(False, index=rows.index)
    for metric in (m for m in shown if m in rows.columns):
        finite |= np.isfinite(pd.to_numeric(rows[metric], errors="coerce").astype("float64"))
    present = list(dict.fromkeys(rows.loc[finite, "series"])) if not rows.empty else []
    rank = {r: i for i, r in enumerate(ROLES)}
    roles = sorted(present, key=lambda x: (rank.get(x.split(" ")[0], len(ROLES)), x))
    looks = {r: (ROLE_COLORS[i % len(ROLE_COLORS)], ROLE_MARKERS[i % len(ROLE_MARKERS)])
             for i, r in enumerate(roles)}  # fmt: skip
    cols = 2 if len(shown) > 1 else 1
    n_rows = math.ceil(len(shown) / cols)
    legend_px = max(150, 45 + 7 * max((len(r) for r in roles), default=0))
    width, panel_h = 560 * cols + legend_px, 300

    def metric_panel(metric: str) -> Callable[[Axes], None]:
        def draw(ax: Axes) -> None:
            if metric not in rows.columns or rows.empty:
                raise ValueError(f"no layered rows with {metric!r}")
            values = pd.to_numeric(rows[metric], errors="coerce")
            for role in roles:
                pick = (rows["series"] == role) & values.notna()
                if pick.any():
                    color, marker = looks[role]
                    ax.plot(rows.loc[pick, "layer"], values[pick], color=color, marker=marker,
                            ms=3.5, lw=1.0, label=role)  # fmt: skip
            good = values[np.isfinite(values)]
            if good.size and good.min() > 0 and good.max() / good.min() > LOG_RANGE:
                ax.set_yscale("log")
                ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                ax.yaxis.set_minor_formatter(NullFormatter())
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(DEPTH_METRICS.get(metric, metric), fontsize=8, loc="left",
                         parse_math=False)  # fmt: skip
            ax.set_xlabel("layer", parse_math=False)
            ax.grid(alpha=0.3, lw=0.5)

        return draw

    with style():
        height = 70 + n_rows * panel_h
        fig = canvas(width / DPI, height / DPI, dpi=DPI)
        left_out = len(table) - len(rows)
        head = f"spectral metrics by depth · {int(finite.sum())} matrices in layers"
        if left_out:
            head += f" · {left_out} row{'s' * (left_out > 1)} without a layer left out"
        fig.text(0.01, 1 - 12 / height, head, fontsize=9, weight="bold", va="top",
                 parse_math=False)  # fmt: skip
        for i, metric in enumerate(shown):
            r, c = divmod(i, cols)
            top = 50 + r * panel_h + 30  # room for the panel's title
            box = ((70 + c * 560) / width, 1 - (top + panel_h - 90) / height,
                   470 / width, (panel_h - 90) / height)  # fmt: skip
            _panel(fig.add_axes(box), metric_panel(metric))
        if roles:
            handles = [Line2D([], [], color=c, marker=m, ms=3.5, lw=1.0) for c, m in looks.values()]
            legend = fig.legend(handles, roles, loc="upper right", fontsize=6.5, frameon=False,
                                bbox_to_anchor=(1.0, 1 - 45 / height))  # fmt: skip
            for text in legend.get_texts():
                text.set_parse_math(False)
        save_figure(fig, path)
