"""Per-layer curves of the tensor metrics, with the layers that stand out marked.

A series is one kind of tensor across depth: the tensors of one role whose names differ only in
the layer number (`h.*.ln_1.weight`), so a layer's two norms are two series. A point stands out
when its modified z-score over its series (Iglewicz & Hoaglin: 0.6745 (x - median) / MAD, on
log values for a positive series spanning more than a factor 10) exceeds 3.5 in absolute
value; series of fewer than 5 layers are not judged. Figures are drawn with matplotlib's Agg
canvas (no pyplot) into `images/report/`; beside each, `<metric>.key` holds the digest of the
points it shows and of its PNG, so rebuilding a report over unchanged tensors draws nothing.

    >>> robust_z(np.array([1.0, 1.02, 0.99, 1.01, 5.0, 1.0])).round(1).tolist()
    [-0.3, 1.0, -1.0, 0.3, 269.5, -0.3]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from striate._version import __version__
from striate.render.png import save_figure
from striate.render.spectrum_figures import ROLE_COLORS
from striate.render.style import canvas, style
from striate.store import atomic_file, digest

#: tensors.parquet columns drawn against layer, with their axis labels
CURVE_METRICS: dict[str, str] = {
    "frobenius_norm": "Frobenius norm ||W||F",
    "spectral_norm": "spectral norm ||W||2",
    "std": "standard deviation of the entries",
    "abs_max": "largest |w|",
    "stable_rank": "stable rank ||W||F^2 / ||W||2^2",
    "effective_rank": "effective rank exp(entropy)",
    "alpha": "alpha (power-law tail of the ESD)",
    "kurtosis": "excess kurtosis of the entries",
}
Z_LIMIT = 3.5  # Iglewicz & Hoaglin's cut for the modified z-score
MIN_LAYERS = 5  # a series shorter than this is drawn but not judged
MIN_SCALE = 0.01  # relative: iid noise of 1% between layers is no anomaly
LOG_SPAN = 10.0  # a positive series spanning more than this factor is judged on a log scale
ANOMALY_COLOR = "#d62728"


def robust_z(values: np.ndarray) -> np.ndarray:
    """Modified z-scores of `values` (shape (n,)): 0.6745 (v - median) / MAD of v, where v is
    log(values) when all are positive and span more than a factor `LOG_SPAN` (a norm that grows
    geometrically with depth is then a straight line, not an outlier at its end). When the MAD
    is 0 the mean absolute deviation (x 1.2533) stands in. The scale is at least `MIN_SCALE` of
    the typical |v| (`MIN_SCALE` in log units): a point must differ from the median by more than
    3.5% to stand out, however alike the other layers are. NaN where `values` is NaN."""
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x)
    z = np.full(x.shape, np.nan)
    if finite.sum() < 2:
        return z
    kept = x[finite]
    log = bool((kept > 0).all() and kept.max() > LOG_SPAN * kept.min())
    v = np.log(x[finite]) if log else x[finite]
    med = float(np.median(v))
    dev = np.abs(v - med)
    scale = 1.4826 * float(np.median(dev))
    if scale == 0.0:
        scale = 1.2533 * float(dev.mean())
    floor = MIN_SCALE * (1.0 if log else max(abs(med), float(np.median(np.abs(v))), 1e-12))
    z[finite] = (v - med) / max(scale, floor)
    return z


def anomalies(
    values: np.ndarray, *, limit: float = Z_LIMIT, min_points: int = MIN_LAYERS
) -> np.ndarray:
    """Boolean mask (shape (n,)) of the values whose |robust_z| exceeds `limit`; all False for a
    series of fewer than `min_points` finite values."""
    x = np.asarray(values, dtype=np.float64)
    if np.isfinite(x).sum() < min_points:
        return np.zeros(x.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        return np.asarray(np.abs(robust_z(x)) > limit)


def series_key(name: str, layer: int) -> str:
    """`name` with its layer number replaced by `*`: `h.3.ln_1.weight` -> `h.*.ln_1.weight`."""
    return re.sub(rf"(?<![0-9]){layer}(?![0-9])", "*", name, count=1)


def metric_series(tensors: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rows of `tensors` with a layer and a finite `metric`, with `series` (see `series_key`),
    `z` (robust z within the series) and `anomaly`; columns name, role, layer, series, value,
    z, anomaly; sorted by series and layer."""
    columns = ["name", "role", "layer", "series", "value", "z", "anomaly"]
    empty: pd.DataFrame = pd.DataFrame(columns=columns)
    if metric not in tensors or "layer" not in tensors:
        return empty
    values = pd.to_numeric(tensors[metric], errors="coerce").astype("float64")
    keep = tensors["layer"].notna() & np.isfinite(values)
    rows = tensors.loc[keep, ["name", "role", "layer"]].assign(value=values[keep])
    if rows.empty:
        return empty
    rows["layer"] = rows["layer"].astype(int)
    rows["series"] = [series_key(n, ly) for n, ly in zip(rows["name"], rows["layer"], strict=True)]
    rows = rows.sort_values(["series", "layer"], ignore_index=True)
    z = np.full(len(rows), np.nan)
    flag = np.zeros(len(rows), dtype=bool)
    for _, idx in rows.groupby("series", sort=False).indices.items():
        v = rows["value"].to_numpy()[idx]
        z[idx] = robust_z(v)
        flag[idx] = anomalies(v)
    judged: pd.DataFrame = rows.assign(z=z, anomaly=flag)[columns]
    return judged


@dataclass(frozen=True)
class CurveFigure:
    """One metric's figure: its image (relative to the run directory) and the marked points."""

    metric: str
    image: str
    marked: pd.DataFrame  # rows of `metric_series` with anomaly True


def draw_metric(tensors: pd.DataFrame, metric: str, out_dir: Path) -> CurveFigure | None:
    """The figure of one metric of `CURVE_METRICS`, written to `out_dir/images/report/<metric>.png`;
    None when no series has the metric over 2+ layers."""
    rows = metric_series(tensors, metric)
    if rows.empty or rows.groupby("series")["layer"].nunique().max() < 2:
        return None
    rel = f"images/report/{metric}.png"
    path = out_dir / rel
    points = pd.util.hash_pandas_object(rows, index=True).to_numpy().tobytes()
    shows = digest(__version__, metric, data=points)
    if not _still_drawn(path, shows):
        _draw(rows, CURVE_METRICS[metric], path)
        with atomic_file(path.with_suffix(".key"), "w") as fh:
            fh.write(f"{shows} {digest(data=path.read_bytes())}")
    return CurveFigure(metric, rel, rows[rows["anomaly"]].reset_index(drop=True))


def _still_drawn(path: Path, shows: str) -> bool:
    """The figure at `path` exists, unchanged, and shows the points of digest `shows`."""
    try:
        key = path.with_suffix(".key").read_text()
        return key == f"{shows} {digest(data=path.read_bytes())}"
    except OSError:
        return False


def _draw(rows: pd.DataFrame, label: str, path: Path) -> None:
    roles = list(dict.fromkeys(rows["role"]))
    color = {r: ROLE_COLORS[i % len(ROLE_COLORS)] for i, r in enumerate(roles)}
    with style():
        fig = canvas(8.0, 3.4, dpi=110)
        ax = fig.add_axes((0.08, 0.15, 0.68, 0.72))
        for _, s in rows.groupby("series", sort=False):
            ax.plot(
                s["layer"], s["value"], color=color[s["role"].iloc[0]], lw=1.0, marker=".", ms=3
            )
        marked = rows[rows["anomaly"]]
        ax.scatter(marked["layer"], marked["value"], s=90, facecolors="none",
                   edgecolors=ANOMALY_COLOR, linewidths=1.4, zorder=3)  # fmt: skip
        values = rows["value"].to_numpy()
        positive = values[values > 0]
        if (values >= 0).all() and positive.size and positive.max() / positive.min() > 30:
            ax.set_yscale("log")  # all-zero tensors (a zero bias's std) drop off the axis
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer", parse_math=False)
        ax.set_title(f"{label}, by layer; red rings: |robust z| > {Z_LIMIT} within a series",
                     loc="left", fontsize=8, parse_math=False)  # fmt: skip
        ax.grid(alpha=0.3)
        for role in roles[:16]:
            ax.plot([], [], color=color[role], lw=1.5, label=role)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=6.5, frameon=False)
        save_figure(fig, path)
