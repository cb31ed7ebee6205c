"""The claims of the double-descent settings (`double_descent.py`), fixed before any run.

Each claim quotes the source's words for its setting (shared/seeds/004: Hobbhahn 2023,
repeating Henighan et al. 2023) and reads one seed's summary.json: a test-loss peak between
the ends of the sweep, memorization of the smallest set, its training points as a polygon, and
features (not data points) owning the hidden space at the largest set; for the ReLU output model
issue 23's stricter reading (the peak above both ends by more than two sd over seeds, D_X about
2/T for every T <= 20, a regular pentagon at the largest T); for the toy unembedding the
source's memorization setting (T = 500: 100% train, 0% test accuracy, W1 a square, W2 a circle).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from striate.experiments.claims import Claim, Criterion
from striate.experiments.toy.claims import BIAS_DECAY, SEED_FILE, Known, deviations, quote

#: a training set counts as memorized when its loss is below this share of the test loss
MEMORIZED_RATIO = 0.2
#: a test-loss peak: the highest loss inside the sweep over the higher of the two ends
PEAK_RATIO = 1.2
#: the training points form a polygon: T x their mean dimensionality / m at least this
POLYGON = 0.9
#: features own the hidden space: some feature's dimensionality at least this (2/10: one
#: corner of a regular decagon; a pentagon's corners have 2/5)
FEATURE_DIMENSIONALITY = 0.2
#: "D_X about 2/T for T <= 20" (issue 23): the polygon measure over every T up to this
SMALL_T = 20
#: features the m=2 ReLU output model keeps at large T (Henighan et al.: a pentagon)
PENTAGON = 5
#: a pentagon: the angles between neighbouring kept features within this of 72 degrees
PENTAGON_DEGREES = 10.0
#: the unembedding's memorization setting in the source ("we have 500 datapoints")
UNEMBED_T = 500
#: a square point cloud: `squareness` at least this (the L2 norms' coefficient of variation
#: about 1.5x the L-infinity norms'); a circle: at most 1 - SQUARE
SQUARE = 0.7


def pentagon_error(W: np.ndarray, k: int = PENTAGON) -> float:
    """How far the k longest feature directions of a 2-D model are from a regular k-gon: the
    largest difference, in degrees, between an angle separating neighbouring directions and
    360/k.

    >>> a = np.deg2rad(np.arange(5) * 72.0 + 10)
    >>> W = np.vstack([np.c_[np.cos(a), np.sin(a)], 0.01 * np.ones((20, 2))])
    >>> round(pentagon_error(W), 6), round(pentagon_error(W[[0, 1, 2, 3, 3]]), 1)
    (0.0, 72.0)
    """
    top = W[np.argsort(-np.linalg.norm(W, axis=1))[:k]]
    angles = np.sort(np.degrees(np.arctan2(top[:, 1], top[:, 0])) % 360)
    gaps = np.diff(np.append(angles, angles[0] + 360))
    return float(np.abs(gaps - 360 / k).max())


def squareness(P: np.ndarray) -> float:
    """How square (against round) a 2-D point cloud is, from 0 to 1: v2 / (v2 + vinf), with
    v2 and vinf the squared coefficients of variation of the points' L2 and L-infinity norms.
    On the edge of an axis-aligned square the L-infinity norm is constant (1), on a circle the
    L2 norm (0); a filled square or disc is near 0.5. NaN when both norms are constant.

    >>> t = np.linspace(-1, 1, 401)
    >>> edge = np.vstack([np.c_[t, np.ones_like(t)], np.c_[np.ones_like(t), t]])
    >>> a = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    >>> squareness(edge), round(squareness(np.c_[np.cos(a), np.sin(a)]), 6)
    (1.0, 0.0)
    """
    v2, vinf = (float((x.std() / x.mean()) ** 2) for x in
                (np.linalg.norm(P, axis=1), np.abs(P).max(axis=1)))  # fmt: skip
    return v2 / (v2 + vinf) if v2 + vinf > 0 else float("nan")


_HENIGHAN = "Henighan et al. 2023"


def claims(
    peak_quote: str, memorized_quote: str, features_quote: str, peak_2sd: bool = False
) -> tuple[Claim, ...]:
    """The four claims of a double-descent setting, each with the source's words for it.
    `peak_2sd`: the peak must clear both ends by more than two sd over the seeds (issue 23's
    rule for the ReLU output model), rather than by a fifth."""
    peak_rule = (
        f"{PEAK_RATIO}: 'much higher', a fifth above both ends",
        Criterion(">=", PEAK_RATIO),
    )
    if peak_2sd:
        peak_rule = ("above 1 in every seed, the mean by more than two sd over the seeds",
                     Criterion("above 2 sd", 1.0))  # fmt: skip
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
            f"replicates; 1: no rise between the ends); {peak_rule[0]}",
            peak_rule[1],
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


def pentagon_claims(quote_text: str) -> tuple[Claim, ...]:
    """Issue 23's reading of Henighan et al. for the ReLU output model, m=2: the training
    points of every small set (T <= 20) spread as a polygon, and five features, as a regular
    pentagon, at the largest set."""
    source = quote(quote_text, note=f"{_HENIGHAN}: D_X = m/T for small T; a pentagon at large T")
    return (
        Claim(
            "small-sets-polygon",
            source,
            f"For every training set of at most {SMALL_T} points the hidden vectors of the "
            "points share the hidden dimensions evenly, as a polygon (D_X about 2/T).",
            f"the smallest T x the mean dimensionality of the training points / m over the T <= "
            f"{SMALL_T} of the sweep (first hidden size, averaged over replicates; at most 1, "
            f"1 for a regular polygon); {POLYGON}: a polygon up to a tenth",
            Criterion(">=", POLYGON),
            lambda s: s["small_sets_polygon"],
        ),
        Claim(
            "five-features-at-large-sets",
            source,
            f"At the largest training set the model represents exactly {PENTAGON} features.",
            "the number of features W_i with norm > 0.5 at the largest T (first hidden size, "
            "averaged over replicates)",
            Criterion("between", (PENTAGON, PENTAGON)),
            lambda s: s["largest_represented"],
        ),
        Claim(
            "pentagon-at-large-sets",
            source,
            f"At the largest training set the {PENTAGON} longest features form a regular pentagon.",
            f"the largest difference, in degrees, between the angle separating neighbouring "
            f"directions of the {PENTAGON} longest features W_i and {360 // PENTAGON} degrees, "
            f"at the largest T (m = 2; averaged over replicates); {PENTAGON_DEGREES:g}: a "
            "pentagon up to a few degrees",
            Criterion("<=", PENTAGON_DEGREES),
            lambda s: s["largest_pentagon_error"],
        ),
    )


def weight_decay_claim() -> Claim:
    """Issue 23's question of Henighan et al.'s setting: with m = 4, does weight decay 1.0
    shrink the test-loss bump that weight decay 1e-2 shows?"""
    return Claim(
        "bump-shrinks-with-weight-decay",
        f"{SEED_FILE}: not in its text (its setting is Henighan et al. 2023's); issue 23 asks "
        "it: 'm=4 with weight decay 1.0 against 1e-2 (does the bump shrink?)'",
        "With strong weight decay (1.0) the test-loss bump is smaller than with 1e-2.",
        "(peak ratio - 1) at the last weight decay swept over (peak ratio - 1) at the first "
        "(peak ratio: the highest test loss strictly inside the T sweep over the higher of its "
        "two ends; first hidden size); undefined without a bump at the first; 1: the same bump",
        Criterion("<", 1.0),
        lambda s: s["bump_shrink"],
    )


def memorization_claims() -> tuple[Claim, ...]:
    """The toy unembedding's memorization setting (n=1000, m=2, S=0.99, T=500): all of the
    training set right, none of the test set."""
    source = quote(
        "Since the network has 100% training accuracy and 0% test accuracy, this seems very "
        "plausible. However, since we have 500 datapoints"
    )
    shapes = quote(
        "We start by observing that W1 has a square shape, the hidden vectors have a sort of "
        "rose shape and W2 is a circle."
    )
    return (
        Claim(
            "memorizes-500-points",
            source,
            f"Trained on {UNEMBED_T} points, the toy unembedding gets every training point right.",
            f"train accuracy (argmax of the logits = the input's largest feature) at T = "
            f"{UNEMBED_T}, first hidden size; 0.99: all but a few of the points",
            Criterion(">=", 0.99),
            lambda s: s["at_memorization_size"]["train_accuracy"],
        ),
        Claim(
            "no-test-accuracy-at-500-points",
            source,
            f"Trained on {UNEMBED_T} points, it gets (almost) no test point right.",
            f"test accuracy at T = {UNEMBED_T} on fresh points (chance: 1/n = 0.001); 0.01: "
            "near 0%",
            Criterion("<=", 0.01),
            lambda s: s["at_memorization_size"]["test_accuracy"],
        ),
        Claim(
            "w1-square",
            shapes,
            f"Trained on {UNEMBED_T} points, the columns of W1 lie on a square.",
            "squareness of W1's columns as points in the plane: v2 / (v2 + vinf), with v2 and "
            "vinf the squared coefficients of variation of their L2 and L-infinity norms (1 on "
            "an axis-aligned square's edge, 0 on a circle, about 0.5 for a filled square or "
            f"disc); {SQUARE:g}: a square (threshold fixed before the run that tests it, after "
            "the pictures of an earlier run)",
            Criterion(">=", SQUARE),
            lambda s: s["at_memorization_size"]["w1_squareness"],
        ),
        Claim(
            "w2-circle",
            shapes,
            f"Trained on {UNEMBED_T} points, the rows of W2 lie on a circle.",
            f"squareness of W2's rows (as for W1); {1 - SQUARE:.1f}: a circle",
            Criterion("<=", round(1 - SQUARE, 1)),
            lambda s: s["at_memorization_size"]["w2_squareness"],
        ),
    )


def _known(c: Any) -> list[Known]:
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
                  Known("tied", False, "the source's unembedding has its own W1 and W2 (a "
                        "square W1, a circle W2)")]  # fmt: skip
    return known


def source_deviations(c: Any, paper: Mapping[str, Any], sweep: bool = True) -> list[str]:
    """How a double-descent config differs from the source's setting for its model (`paper`:
    the paper preset of each model; `sweep`: a sweep over T, not one given T)."""
    always = [BIAS_DECAY]
    if sweep:  # a setting of one given T (the unembedding's T = 500) has no peak to place
        always.append(
            "The source's dataset sizes and the position of its peak are in figures the seed "
            "text does not give ('We also cut off the dataset size much earlier than in the "
            "original paper'): the peak's position is reported, not compared with the source's."
        )
    if c.model == "mlp":
        always.append(
            "The source also sweeps the MLP's hidden size (its T x m heatmaps, with sizes the "
            "seed text does not give); the claims read the first m swept."
        )
    compared = ("dataset_sizes", "replicates", "train.test_size", "train.weight_init")
    return deviations(c, _known(c), paper[c.model], compared, always)


__all__ = [
    "claims",
    "memorization_claims",
    "pentagon_claims",
    "pentagon_error",
    "source_deviations",
    "squareness",
    "weight_decay_claim",
]
