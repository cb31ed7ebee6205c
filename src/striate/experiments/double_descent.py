"""`double-descent`, `mlp-double-descent`, `unembedding`: fixed training sets of T points.

Henighan et al. (2023) train the ReLU output model (m=2, n=10,000, S=0.999, unit-norm inputs)
on T points for 50,000 full-batch steps and find: for small T the hidden vectors of the data
form a polygon and the features do not (memorization); for large T the features do
(generalization); between the two the test loss peaks (data double descent). Hobbhahn (2023)
repeats it with n=1000, S=0.99 (the peak comes 10x earlier), with an MLP block (hidden vectors
W1 x + b1) and with a toy unembedding (no ReLU, cross-entropy, hard or soft labels).

The claims (`CLAIMS`, the same four for the three settings, each quoting the source's words for
its setting) read the first hidden size's curve over T from one seed's summary.json: a test-loss
peak between the ends of the sweep, memorization of the smallest set, its training points as a
polygon, and features (not data points) owning the hidden space at the largest set. Their
thresholds were fixed before any run over seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from striate import store
from striate.experiments.claims import Claim, Criterion
from striate.experiments.figures import (
    curves,
    dimensionality_scatter,
    draw_geometry,
    draw_sweep,
    guarded,
    new_figure,
    save,
    size_heatmap,
)
from striate.experiments.setting import Setting
from striate.experiments.toy.claims import Known, deviations, over_seeds, quote
from striate.experiments.toy.instance import Instance
from striate.experiments.toy.lab import Lab
from striate.experiments.toy.sweep import LabResult
from striate.experiments.toy.train import TrainConfig
from striate.render.style import style

#: a training set counts as memorized when its loss is below this share of the test loss
MEMORIZED_RATIO = 0.2
#: a test-loss peak: the highest loss inside the sweep over the higher of the two ends
PEAK_RATIO = 1.2
#: the training points form a polygon: T x their mean dimensionality / m at least this
POLYGON = 0.9
#: features own the hidden space: some feature's dimensionality at least this (2/10: one
#: corner of a regular decagon; a pentagon's corners have 2/5)
FEATURE_DIMENSIONALITY = 0.2
#: dataset sizes shown in the geometry figure
GEOMETRY_PANELS = 12


def log_sizes(lo: int, hi: int, count: int) -> tuple[int, ...]:
    """`count` dataset sizes spread evenly in log from lo to hi (rounded, distinct)."""
    sizes = np.unique(np.round(np.geomspace(lo, hi, count)).astype(int))
    return tuple(int(s) for s in sizes)


#: Henighan et al.: AdamW, lr 1e-3, weight decay 1e-2, 5% warmup then cosine decay, full batch;
#: they train 50,000 steps, we 10,000 so a sweep fits in 30 minutes of one CPU core
_PAPER_TRAIN = TrainConfig(steps=10_000, log_every=1000, test_size=2000)


@dataclass(frozen=True)
class DoubleDescentConfig:
    """A sweep over the size T of a fixed training set (and over the hidden size m)."""

    model: str = "relu-output"  # "relu-output", "mlp" or "unembed"
    n_features: int = 1000  # n
    hidden: tuple[int, ...] = (2,)  # m; more than one adds heatmaps over T x m
    sparsity: float = 0.99  # S: n (1 - S) = 10 active features per point on average
    importance: str = "uniform"  # "uniform", "decay" or a ratio r: r ** i
    unit_norm: bool = True  # every input scaled to unit length (Henighan et al.)
    dataset_sizes: tuple[int, ...] = log_sizes(10, 3000, 13)  # T
    replicates: int = 1  # seeds per (T, m)
    labels: str = "hard"  # unembed: "hard" (argmax class) or "soft" (x / sum(x))
    tied: bool = True  # unembed: logits = W^T W x + b; False: W2 W1 x + b
    train: TrainConfig = field(default_factory=lambda: _PAPER_TRAIN)


def sweep(c: DoubleDescentConfig) -> list[Instance]:
    grid = [(m, T, r) for m in c.hidden for T in c.dataset_sizes for r in range(c.replicates)]
    return [
        Instance(
            index=i,
            model=c.model,
            n_features=c.n_features,
            n_hidden=m,
            sparsity=c.sparsity,
            importance=c.importance,
            dataset_size=T,
            unit_norm=c.unit_norm,
            labels=c.labels,
            tied=c.tied,
            lr=c.train.lr,
            weight_decay=c.train.weight_decay,
            replicate=r,
        )
        for i, (m, T, r) in enumerate(grid)
    ]


def size_curves(result: LabResult) -> pd.DataFrame:
    """Final metrics averaged over replicates, one row per (n_hidden, dataset_size).
    `max_feature_dimensionality`: the largest dimensionality of any feature of a model."""
    cols = ["train_loss", "test_loss", "train_accuracy", "test_accuracy", "probe_accuracy",
            "feature_dimensionality", "data_dimensionality", "represented",
            "max_feature_dimensionality"]  # fmt: skip
    top = result.features.groupby("instance")["dimensionality"].max()
    last = result.last().assign(max_feature_dimensionality=lambda t: t["instance"].map(top))
    table: pd.DataFrame = last.groupby(["n_hidden", "dataset_size"], as_index=False)[cols].mean()
    return table


def peak(sizes: np.ndarray, test_loss: np.ndarray) -> dict[str, Any]:
    """Where the test loss peaks over dataset size, and whether inside the sweep."""
    i = int(np.nanargmax(test_loss))
    interior = 0 < i < len(sizes) - 1
    return {
        "peak_dataset_size": int(sizes[i]),
        "peak_test_loss": float(test_loss[i]),
        "peak_is_interior": bool(interior),
        # how far the peak rises above the lower of the best losses on either side of it
        "peak_prominence": float(
            test_loss[i] - max(np.nanmin(test_loss[: i + 1]), np.nanmin(test_loss[i:]))
        ),
        "peak_ratio": peak_ratio(test_loss),
    }


def peak_ratio(test_loss: np.ndarray) -> float | None:
    """The highest test loss strictly inside the sweep over the higher of its two ends (the
    smallest and largest T): above 1 where the loss rises between the regimes, at most 1
    where it does not; None for fewer than 3 sizes.

    >>> peak_ratio(np.array([1.0, 1.5, 3.0, 0.9])), peak_ratio(np.array([2.0, 1.0, 0.5]))
    (3.0, 0.5)
    """
    if len(test_loss) < 3:
        return None
    ends = max(float(test_loss[0]), float(test_loss[-1]))
    return float(np.nanmax(test_loss[1:-1]) / ends) if ends > 0 else None


def summarize(c: DoubleDescentConfig, result: LabResult) -> dict[str, Any]:
    table = size_curves(result)
    by_hidden = []
    for m in c.hidden:
        g = table[table["n_hidden"] == m].sort_values("dataset_size")
        sizes, test = g["dataset_size"].to_numpy(), g["test_loss"].to_numpy()
        memorized = g["train_loss"] < MEMORIZED_RATIO * g["test_loss"]
        small, large = g.iloc[0], g.iloc[-1]
        by_hidden.append({
            "n_hidden": int(m),
            **peak(sizes, test),
            "memorized_sizes": [int(t) for t in g.loc[memorized, "dataset_size"]],
            # the claims' measures (see CLAIMS)
            "smallest_train_test_ratio": float(small["train_loss"] / small["test_loss"]),
            "smallest_polygon": float(small["dataset_size"] * small["data_dimensionality"] / m),
            "smallest_feature_dimensionality": float(small["max_feature_dimensionality"]),
            "largest_feature_dimensionality": float(large["max_feature_dimensionality"]),
            "curve": g.drop(columns="n_hidden").to_dict("records"),
        })  # fmt: skip
    first = by_hidden[0]
    return {
        "model": c.model,
        "n_features": c.n_features,
        "sparsity": c.sparsity,
        "memorized_ratio": MEMORIZED_RATIO,
        "peak_dataset_size": first["peak_dataset_size"],
        "peak_is_interior": first["peak_is_interior"],
        "smallest_size_memorized": c.dataset_sizes[0] in first["memorized_sizes"]
        if c.dataset_sizes
        else False,
        **{k: first[k] for k in MEASURES},
        "by_hidden": by_hidden,
    }


#: the claims' measures, for the first hidden size, at the top of summary.json
MEASURES = ("peak_ratio", "smallest_train_test_ratio", "smallest_polygon",
            "smallest_feature_dimensionality", "largest_feature_dimensionality")  # fmt: skip


def _pick(result: LabResult, m: int, sizes: list[int]) -> list[Instance]:
    """The replicate-0 instance with hidden size m at each of `sizes`."""
    found = {i.dataset_size: i for i in result.instances if i.n_hidden == m and i.replicate == 0}
    return [found[t] for t in sizes if t in found]


def draw(c: DoubleDescentConfig, result: LabResult, out_dir: Path) -> list[str]:
    table = size_curves(result)
    sizes = sorted({i.dataset_size for i in result.instances})
    m0 = c.hidden[0]
    written = [save(_curves_figure(c, table), out_dir, "double_descent.png")]
    if m0 == 2:
        spread = np.linspace(0, len(sizes) - 1, min(GEOMETRY_PANELS, len(sizes)))
        shown = _pick(result, m0, sorted({sizes[round(k)] for k in spread}))
        panels = [
            (f"T = {i.dataset_size}", result.final[i.index].features, result.final[i.index].hidden)
            for i in shown
        ]
        title = f"{c.model}, m=2: features (blue), training points (red)"
        written.append(save(draw_geometry(panels, title), out_dir, "geometry.png"))
    figure = _dimensionality_figure(c, result, _pick(result, m0, sizes))
    written.append(save(figure, out_dir, "dimensionality.png"))
    if len(c.hidden) > 1:
        written.append(save(_heatmap_figure(c, table), out_dir, "size_heatmaps.png"))
    return written


def run(c: DoubleDescentConfig, lab: Lab) -> Path:
    result = lab.train(sweep(c))
    return lab.finish(summarize(c, result), draw(c, result, lab.out))


def _curves_figure(c: DoubleDescentConfig, table: pd.DataFrame) -> Figure:
    """Loss and accuracy against T for the first hidden size (the heatmaps show the rest)."""
    loss = "cross-entropy" if c.model == "unembed" else "importance-weighted MSE"
    g = table[table["n_hidden"] == c.hidden[0]].sort_values("dataset_size")
    x = g["dataset_size"].to_numpy()
    losses = [
        ("test", g["test_loss"].to_numpy(), "C3"),
        ("train", g["train_loss"].to_numpy(), "C0"),
    ]
    accuracies = [
        ("test", g["test_accuracy"].to_numpy(), "C3"),
        ("train", g["train_accuracy"].to_numpy(), "C0"),
        ("one-hot probes", g["probe_accuracy"].to_numpy(), "C2"),
    ]
    mark = peak(x, g["test_loss"].to_numpy())["peak_dataset_size"]
    with style():
        fig = new_figure(8.4, 3.4, f"{c.model}, m={c.hidden[0]}: loss and accuracy against T")
        grid = {"top": 0.84, "bottom": 0.16, "wspace": 0.3}
        ax_loss, ax_acc = fig.subplots(1, 2, gridspec_kw=grid)
        guarded(ax_loss, partial(curves, x=x, series=losses, ylabel=loss, log_y=True, mark=mark))
        guarded(ax_acc, partial(curves, x=x, series=accuracies, ylabel="argmax accuracy",
                                log_y=False))  # fmt: skip
    return fig


def _dimensionality_figure(
    c: DoubleDescentConfig, result: LabResult, insts: list[Instance]
) -> Figure:
    f, p = result.features, result.points
    feats = [f.loc[f["instance"] == i.index, "dimensionality"].to_numpy() for i in insts]
    points = [p.loc[p["instance"] == i.index, "dimensionality"].to_numpy() for i in insts]
    sizes = [i.dataset_size for i in insts]
    with style():
        fig = new_figure(6.0, 3.4, f"{c.model}, m={c.hidden[0]}: dimensionalities")
        ax = fig.subplots(1, 1, gridspec_kw={"top": 0.84, "bottom": 0.15})
        guarded(ax, partial(dimensionality_scatter, sizes=sizes, feats=feats, points=points))
        ax.set_title("features (blue), training points (red)", fontsize=7, loc="left")
    return fig


def _heatmap_figure(c: DoubleDescentConfig, table: pd.DataFrame) -> Figure:
    sizes = sorted(int(t) for t in table["dataset_size"].unique())
    hidden = sorted(int(m) for m in table["n_hidden"].unique())
    with style():
        fig = new_figure(9.0, 3.6, f"{c.model}: test loss and accuracy over T x m")
        axes = fig.subplots(1, 2, gridspec_kw={"top": 0.84, "bottom": 0.2, "wspace": 0.35})
        panels = (("test_loss", "log10 test loss"), ("test_accuracy", "test accuracy"))
        for ax, (col, label) in zip(axes, panels, strict=True):
            grid = table.pivot(index="n_hidden", columns="dataset_size", values=col)
            values = grid.reindex(index=hidden, columns=sizes).to_numpy()
            values = np.log10(values) if col == "test_loss" else values
            guarded(ax, partial(size_heatmap, values=values, sizes=sizes, hidden=hidden,
                                label=label))  # fmt: skip
    return fig


# --- claims, deviations and figures over seeds -------------------------------------------------

_FEATURE_LEARNING = ("The double descent phenomenon seems to be quite consistent across "
                     "different settings, i.e. models go from memorization to feature learning "
                     "when presented with more data")  # fmt: skip
_HENIGHAN = "Henighan et al. 2023"


def claims(peak_quote: str, memorized_quote: str, features_quote: str) -> tuple[Claim, ...]:
    """The four claims of a double-descent setting, each with the source's words for it."""
    return (
        Claim(
            "test-loss-peak",
            quote(
                peak_quote,
                "it seems like the network is “confused” (e.g. has much higher "
                "test loss) when it is right between memorization and generalization",
            ),
            "The test loss peaks at a dataset size between the small-data (memorizing) and "
            "large-data (generalizing) regimes.",
            "the highest test loss at a T strictly inside the sweep over the higher of the test "
            "losses at the smallest and the largest T (first hidden size, averaged over "
            f"replicates; 1: no rise between the ends); {PEAK_RATIO}: 'much higher', a fifth "
            "above both ends",
            Criterion(">=", PEAK_RATIO),
            lambda s: s["peak_ratio"],
        ),
        Claim(
            "memorizes-small-sets",
            quote(memorized_quote, note=f"{_HENIGHAN}: small training sets are memorized"),
            "The smallest training set is memorized: its loss is far below the test loss.",
            "train loss over test loss at the smallest T (first hidden size, averaged over "
            f"replicates); {MEMORIZED_RATIO}: memorized",
            Criterion("<=", MEMORIZED_RATIO),
            lambda s: s["smallest_train_test_ratio"],
        ),
        Claim(
            "small-set-polygon",
            quote(
                memorized_quote,
                note=f"{_HENIGHAN}: the hidden vectors of a memorized set "
                "form a regular polygon, each point of dimensionality m/T",
            ),
            "The hidden vectors of the smallest training set share the m hidden dimensions "
            "evenly, as a polygon.",
            "T x the mean dimensionality of the training points' hidden vectors / m at the "
            "smallest T (dimensionality D_t = ||h_t||^2 / sum_s (h_t_hat . h_s)^2; the sum over "
            "the points is at most m, with equality for points spread evenly, as a regular "
            f"polygon: 1); {POLYGON}: a polygon up to a tenth",
            Criterion(">=", POLYGON),
            lambda s: s["smallest_polygon"],
        ),
        Claim(
            "features-at-large-sets",
            quote(
                features_quote,
                note=f"{_HENIGHAN}: at large T a few features take the "
                "hidden dimensions, as a polygon, and the data points do not",
            ),
            "At the largest training set the model has learned features: a few features, "
            "not the data points, take the hidden dimensions.",
            "the largest dimensionality of any feature W_i (D_i = ||W_i||^2 / sum_j (W_i_hat . "
            "W_j)^2) at the largest T (first hidden size, averaged over replicates); "
            f"{FEATURE_DIMENSIONALITY}: a corner of a regular decagon or fewer features "
            "(memorizing models spread the hidden space over many features)",
            Criterion(">=", FEATURE_DIMENSIONALITY),
            lambda s: s["largest_feature_dimensionality"],
        ),
    )


def _known(c: DoubleDescentConfig) -> list[Known]:
    henighan = "the source follows Henighan et al.'s setting and schedule:"
    known = [
        Known("n_features", 1000, "the source has n = 1,000 (Henighan et al.: 10,000)"),
        Known("hidden", (2,), "the source's m = 2"),
        Known("sparsity", 0.99, "the source has S = 0.99 (Henighan et al.: 0.999)"),
        Known("importance", "uniform", "Henighan et al.'s features are equally important"),
        Known("unit_norm", True, "the source scales every input to unit norm"),
        Known("train.steps", 50_000, f"{henighan} 50,000 full-batch steps"),
        Known("train.schedule", "cosine", f"{henighan} warmup, then cosine decay"),
        Known("train.warmup", 0.05, f"{henighan} 2,500 warmup steps of 50,000"),
        Known("train.lr", 1e-3, f"{henighan} AdamW at lr 1e-3"),
        Known("train.weight_decay", 1e-2, f"{henighan} weight decay 1e-2"),
        Known("train.bias_init", "zero", "the source initializes the bias with zeros"),
    ]
    if c.model == "unembed":
        known += [Known("labels", "hard", "the source's main setting has hard labels"),
                  Known("tied", True, "the source's unembedding is tied: W^T W x + b")]  # fmt: skip
    return known


def source_deviations(c: DoubleDescentConfig) -> list[str]:
    """How a double-descent config differs from the source's setting for its model."""
    always = [
        "AdamW's weight decay also applies to the biases (the source does not say).",
        "The source's dataset sizes and the position of its peak are in figures the seed text "
        "does not give ('We also cut off the dataset size much earlier than in the original "
        "paper'): the peak's position is reported, not compared with the source's.",
    ]
    if c.model == "mlp":
        always.append(
            "The source also sweeps the MLP's hidden size (its T x m heatmaps, with sizes the "
            "seed text does not give); the claims read the first m swept."
        )
    compared = ("dataset_sizes", "replicates", "train.test_size", "train.weight_init")
    return deviations(c, _known(c), _PAPER[c.model], compared, always)


def _curve_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**r, "n_hidden": h["n_hidden"]} for h in summary["by_hidden"] for r in h["curve"]]


def draw_seeds(seed_dirs: list[Path], figures: Path) -> list[str]:
    """Test and train loss and the largest feature dimensionality against T, mean ± sd over
    the seeds (one line per hidden size)."""
    table = over_seeds(seed_dirs, _curve_rows)
    model = store.read_json(seed_dirs[0] / "summary.json")["model"]
    title = f"{model}: loss and features against T, mean ± sd over {len(seed_dirs)} seeds"
    hue = "n_hidden" if table["n_hidden"].nunique() > 1 else None
    panels = ["test_loss", "train_loss", "max_feature_dimensionality"]
    return [draw_sweep(table, "dataset_size", panels, figures / "double_descent_seeds.png",
                       title, hue=hue, log_x=True)]  # fmt: skip


_QUICK = DoubleDescentConfig(
    n_features=100,
    sparsity=0.9,
    dataset_sizes=log_sizes(3, 400, 8),
    train=TrainConfig(steps=2000, lr=1e-2, log_every=500, test_size=1000),
)

#: the paper presets: the source's setting for each model, as far as one CPU core allows
_PAPER = {
    "relu-output": DoubleDescentConfig(),
    "mlp": DoubleDescentConfig(model="mlp", dataset_sizes=log_sizes(10, 2000, 12)),
    "unembed": DoubleDescentConfig(model="unembed", train=replace(_PAPER_TRAIN, steps=8000)),
}

DOUBLE_DESCENT = Setting(
    name="double-descent",
    about="Henighan et al. (2023) as repeated by Hobbhahn (2023): the ReLU output model, "
    "n=1000, m=2, S=0.99, unit-norm inputs, on training sets of 10 to 3,000 points",
    presets={"quick": _QUICK, "paper": _PAPER["relu-output"]},
    engine=Lab,
    run=run,
    claims=claims(
        "We replicate the double descent phenomenon discussed in the memorization paper",
        "We can also reproduce the progression from memorization to generalization in the "
        "columns of W (blue) and hidden activations (red) and the findings on dimensionality",
        "We can also reproduce the progression from memorization to generalization in the "
        "columns of W (blue) and hidden activations (red) and the findings on dimensionality",
    ),
    deviations=source_deviations,
    draw_seeds=draw_seeds,
)

MLP_DOUBLE_DESCENT = Setting(
    name="mlp-double-descent",
    about="Hobbhahn (2023): double descent of an MLP block (W2 ReLU(W1 x + b1) + b2), MSE",
    presets={"quick": replace(_QUICK, model="mlp"), "paper": _PAPER["mlp"]},
    engine=Lab,
    run=run,
    claims=claims(
        "We find that the MLP shows double descent",
        "we find a very similar pattern for the dimensionality of features and datapoints as "
        "in the experiments for the output ReLU model",
        "we see that the network learns features after the transition since the test accuracy "
        "is beyond random guessing level",
    ),
    deviations=source_deviations,
    draw_seeds=draw_seeds,
)

UNEMBEDDING = Setting(
    name="unembedding",
    about="Hobbhahn (2023): a toy unembedding, logits W^T W x + b, cross-entropy, hard labels",
    presets={"quick": replace(_QUICK, model="unembed"), "paper": _PAPER["unembed"]},
    engine=Lab,
    run=run,
    claims=claims(
        "the cross-entropy test loss has a clear second peak",
        "we find that the double descent phenomenon still holds in this setting",
        _FEATURE_LEARNING,
    ),
    deviations=source_deviations,
    draw_seeds=draw_seeds,
)

__all__ = ["DOUBLE_DESCENT", "MLP_DOUBLE_DESCENT", "UNEMBEDDING", "DoubleDescentConfig"]
