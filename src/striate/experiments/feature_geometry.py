"""`geometry`: the uniform-importance geometry of Elhage et al. (2022, TMS, "the geometry of
superposition"), the setting Hobbhahn (2023) builds on.

The ReLU output model with n = 400 features of equal importance and m = 30 hidden dimensions,
fresh batches, over sparsities S from dense to 1 - S = 0.001. TMS reads two things off it:
the dimensions per feature, D* = m / ||W||_F^2, fall with sparsity and stick at plateaus, 1
(each represented feature its own dimension) and 1/2 (antipodal pairs); and each feature's
dimensionality D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2 clusters at the fractions of regular
polytopes: 1, 3/4 (tetrahedron), 2/3 (triangle), 1/2 (digon), 2/5 (pentagon), 3/8 (square
antiprism). Each claim reads the lowest-loss replicate of every sparsity, with thresholds fixed
in code before any run.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from striate.experiments.claims import Claim, Criterion
from striate.experiments.figures import guarded, new_figure, save
from striate.experiments.setting import Setting
from striate.experiments.superposition import SparsityConfig, best_replicates, sweep
from striate.experiments.toy.claims import Known, deviations, quote, rank_correlation
from striate.experiments.toy.lab import Lab
from striate.experiments.toy.metrics import REPRESENTED_NORM
from striate.experiments.toy.sweep import LabResult
from striate.experiments.toy.train import TrainConfig
from striate.render.style import style

#: the dimensionalities of a feature in the regular polytopes TMS finds
FRACTIONS = (1.0, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8)
#: a D_i "at" a fraction: within this of it
FRACTION_TOL = 0.03
#: D* "on" the plateau at 1/2: within this of it
PLATEAU_TOL = 0.05
TMS = "Elhage et al. 2022 (TMS), 'The geometry of superposition'"
#: the seed's pointer to this part of TMS, which it replicates
_SEED = (
    "We can also plot the fractional dimensionality of the samples and features as "
    "described in the paper"
)


def at_fractions(d: np.ndarray) -> float | None:
    """Share of the dimensionalities `d` within FRACTION_TOL of one of FRACTIONS (0.295 for
    values spread evenly over [0, 1]).

    >>> at_fractions(np.array([1.0, 0.74, 0.6, 0.41, 0.2]))
    0.6
    >>> round(at_fractions(np.linspace(0, 1, 100001)), 3)
    0.295
    """
    if not d.size:
        return None
    near = np.abs(d[:, None] - np.array(FRACTIONS)[None, :]).min(1) <= FRACTION_TOL
    return float(near.mean())


def longest_run_near(values: list[float], target: float, tol: float) -> int:
    """The most consecutive `values` within `tol` of `target`.

    >>> longest_run_near([1.0, 0.52, 0.49, 0.7, 0.5], 0.5, 0.05)
    2
    """
    best = run = 0
    for v in values:
        run = run + 1 if abs(v - target) <= tol else 0
        best = max(best, run)
    return best


def summarize(c: SparsityConfig, result: LabResult) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    kept = []
    for _, best in best_replicates(result).iterrows():
        i = int(best["instance"])
        f = result.features[result.features["instance"] == i]
        d = f.loc[f["norm"] > REPRESENTED_NORM, "dimensionality"].to_numpy(np.float64)
        kept.append(d)
        rows.append({
            "sparsity": float(best["sparsity"]),
            "inverse_density": 1 / (1 - float(best["sparsity"])),
            "instance": i,
            "train_loss": float(best["train_loss"]),
            "dims_per_feature": float(best["dims_per_feature"]),
            "represented": int(d.size),
            "at_fractions": at_fractions(d),
        })  # fmt: skip
    dims = [r["dims_per_feature"] for r in rows]
    return {
        "n_features": c.n_features,
        "n_hidden": c.n_hidden,
        "by_sparsity": rows,
        "dense_dims_per_feature": dims[0],
        "dims_sparsity_spearman": rank_correlation([r["sparsity"] for r in rows], dims),
        "half_plateau_length": longest_run_near(dims, 0.5, PLATEAU_TOL),
        "at_fractions": at_fractions(np.concatenate(kept)) if kept else None,
        "dimensionalities": [d.round(4).tolist() for d in kept],
    }


def draw(c: SparsityConfig, summary: dict[str, Any], out_dir: Path) -> list[str]:
    """TMS's two pictures from the summary: D* against 1/(1-S) (the plateaus dotted), and each
    represented feature's D_i at each sparsity (the polytope fractions dotted)."""
    rows = summary["by_sparsity"]
    x = np.array([r["inverse_density"] for r in rows])
    with style():
        fig = new_figure(9.0, 3.4, f"ReLU output model, n={c.n_features}, m={c.n_hidden}, "
                         "uniform importance: the geometry of superposition")  # fmt: skip
        ax_d, ax_f = fig.subplots(1, 2, gridspec_kw={"top": 0.82, "bottom": 0.16, "wspace": 0.3})

        def dims(ax: Any) -> None:
            ax.semilogx(x, [r["dims_per_feature"] for r in rows], "o-", color="C0", ms=3)
            for level in (1.0, 0.5):
                ax.axhline(level, color="grey", ls=":", lw=0.8)
            ax.set_xlabel("1 / (1 - S)")
            ax.set_ylabel("dimensions per feature m / ||W||_F^2")

        def features(ax: Any) -> None:
            for xi, d in zip(x, summary["dimensionalities"], strict=True):
                jitter = xi * np.exp(np.random.default_rng(0).uniform(-0.08, 0.08, len(d)))
                ax.semilogx(jitter, d, ".", color="C3", ms=2, alpha=0.5)
            for level in FRACTIONS:
                ax.axhline(level, color="grey", ls=":", lw=0.8)
            ax.set_xlabel("1 / (1 - S)")
            ax.set_ylabel("feature dimensionality D_i (represented features)")

        guarded(ax_d, dims)
        guarded(ax_f, features)
    return [save(fig, out_dir, "geometry.png")]


def run(c: SparsityConfig, lab: Lab) -> Path:
    summary = summarize(c, lab.train(sweep(c)))
    return lab.finish(summary, draw(c, summary, lab.out))


CLAIMS = (
    Claim(
        "dense-one-dimension-per-feature",
        quote(_SEED, note=f"{TMS}: dense features get a dimension each (D* = 1)"),
        "With dense features each represented feature has a hidden dimension of its own.",
        "dimensions per feature m / ||W||_F^2 at the densest sparsity swept (lowest-loss "
        "replicate); 0.9: one dimension each, up to a tenth",
        Criterion(">=", 0.9),
        lambda s: s["dense_dims_per_feature"],
    ),
    Claim(
        "dims-per-feature-fall-with-sparsity",
        quote(_SEED, note=f"{TMS}: the sparser, the more features share the hidden space"),
        "The sparser the features, the fewer dimensions each feature gets.",
        "Spearman correlation of the sparsity with the dimensions per feature over the "
        "sparsities swept; -0.9: falling, with at most a wobble",
        Criterion("<=", -0.9),
        lambda s: s["dims_sparsity_spearman"],
    ),
    Claim(
        "plateau-at-one-half",
        quote(_SEED, note=f"{TMS}: the dimensions per feature stick at 1/2 (antipodal pairs)"),
        "The dimensions per feature stick at one half over a range of sparsities.",
        f"the most consecutive sparsities swept whose dimensions per feature are within "
        f"{PLATEAU_TOL} of 1/2; 2: a plateau, not one crossing",
        Criterion(">=", 2),
        lambda s: s["half_plateau_length"],
    ),
    Claim(
        "features-at-polytope-fractions",
        quote(_SEED, note=f"{TMS}: dimensionalities cluster at 1, 3/4, 2/3, 1/2, 2/5, 3/8"),
        "The represented features' dimensionalities cluster at the fractions of regular polytopes.",
        f"share of the represented features (norm > {REPRESENTED_NORM}) over every sparsity "
        f"whose D_i is within {FRACTION_TOL} of 1, 3/4, 2/3, 1/2, 2/5 or 3/8 (dimensionalities "
        "spread evenly over [0, 1] would give about 0.3); 0.6: clustered",
        Criterion(">=", 0.6),
        lambda s: s["at_fractions"],
    ),
)


def source_deviations(c: SparsityConfig) -> list[str]:
    known = [
        Known("model", "relu-output", "TMS's ReLU output model"),
        Known("n_features", 400, "TMS's n = 400"),
        Known("n_hidden", 30, "TMS's m = 30"),
        Known("importance", "uniform", "TMS's features are equally important here"),
    ]
    always = [
        "TMS's sparsities and training budget for this figure are not in the seed texts: ours "
        "are under Settings (the lab's fresh batches and schedule).",
    ]
    compared = ("sparsities", "replicates", "train.steps", "train.lr")
    return deviations(c, known, GEOMETRY.presets["paper"], compared, always)


_PAPER = SparsityConfig(
    n_features=400,
    n_hidden=30,
    importance="uniform",
    sparsities=(0.0, 0.5, 0.7, 0.8, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.993, 0.995, 0.997, 0.999),
    replicates=2,
    train=TrainConfig(steps=5000, log_every=500),
)

_QUICK = replace(
    _PAPER,
    n_features=40,
    n_hidden=6,
    sparsities=(0.0, 0.9, 0.99),
    train=TrainConfig(steps=1000, lr=1e-2, log_every=500),
)

GEOMETRY = Setting(
    name="geometry",
    about="Elhage et al. (2022), the geometry of superposition: n=400 equally important "
    "features in m=30 dimensions, dimensions per feature and feature dimensionalities over S",
    presets={"quick": _QUICK, "paper": _PAPER},
    engine=Lab,
    run=run,
    claims=CLAIMS,
    deviations=source_deviations,
)

__all__ = ["FRACTIONS", "GEOMETRY", "at_fractions", "longest_run_near"]
