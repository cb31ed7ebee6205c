"""The lab's claims on planted sweeps: each setting's summary from a LabResult whose numbers we
chose, each claim's measure against the number it must give, and its verdict where the planted
sweep does and does not show what the source says. No training here (tests/test_lab.py runs the
quick presets)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from striate.experiments import LABS
from striate.experiments.claims import decide
from striate.experiments.double_descent import DoubleDescentConfig, peak_ratio
from striate.experiments.double_descent import summarize as summarize_sizes
from striate.experiments.feature_geometry import summarize as summarize_geometry
from striate.experiments.final_layer import FinalLayerConfig, anatomy
from striate.experiments.final_layer import summarize as summarize_final_layer
from striate.experiments.fish import FISH
from striate.experiments.fish import summarize as summarize_fish
from striate.experiments.one_hot import summarize as summarize_one_hot
from striate.experiments.reconstruction import ReconstructionConfig, recovered_per_dim, trend
from striate.experiments.reconstruction import summarize as summarize_grid
from striate.experiments.superposition import (
    SparsityConfig,
    monosemanticity,
    summarize_privileged,
    summarize_superposition,
    top_m_mismatch,
)
from striate.experiments.toy.claims import rank_correlation
from striate.experiments.toy.instance import Instance
from striate.experiments.toy.sweep import Final, LabResult


def _result(log: list[dict[str, Any]], features: list[dict[str, Any]] | None = None,
            final: dict[int, Final] | None = None,
            instances: list[Instance] | None = None) -> LabResult:  # fmt: skip
    """A LabResult of planted final rows (step 10) and feature rows."""
    return LabResult(instances=instances or [], log=pd.DataFrame(log).assign(step=10),
                     features=pd.DataFrame(features or [], columns=["instance", "norm",
                                           "superposition", "dimensionality", "importance"]),
                     points=pd.DataFrame(), final=final or {})  # fmt: skip


def _verdicts(name: str, summary: dict[str, Any]) -> dict[str, str]:
    summary = json.loads(json.dumps(summary))  # as summary.json holds it
    return {c.id: decide(c, [summary])["verdict"] for c in LABS[name].claims}


# --- the measures on closed forms -------------------------------------------------------------


def test_rank_correlation_is_spearman_and_undefined_without_a_trend() -> None:
    assert rank_correlation([0.0, 0.7, 0.9, 0.99], [5, 7, 7, 9]) == pytest.approx(0.9486833)
    assert rank_correlation([0.0, 0.5, 0.9], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert rank_correlation([0.0, 0.5, 0.9], [4, 4, 4]) is None  # no trend to rank
    assert rank_correlation([0.0, 0.9], [1, 2]) is None  # two points always rank as +-1


def test_top_m_mismatch_counts_features_in_one_set_only() -> None:
    imp = 0.7 ** np.arange(6)
    assert top_m_mismatch(np.array([1.0, 0.9, 0.8, 0.1, 0.0, 0.0]), imp, 3) == 0
    assert (
        top_m_mismatch(np.array([1.0, 0.9, 0.1, 0.8, 0.0, 0.6]), imp, 3) == 3
    )  # 2 out, 3 and 5 in
    assert top_m_mismatch(np.array([1.0, 0.5, 0.8, 0, 0, 0]), imp, 3) == 1  # 0.5 is not > 0.5
    assert top_m_mismatch(np.ones(6), np.ones(6), 3) is None  # uniform: no m most important


def test_monosemanticity_of_planted_neurons() -> None:
    one_each = np.array([[0.0, 3.0, 0.0], [0.5, 0.0, 0.0]])
    assert monosemanticity(one_each) == pytest.approx(1.0)
    spread = np.array([[1.0, 1.0, 1.0, 1.0]])  # one neuron, four features alike
    assert monosemanticity(spread) == pytest.approx(0.25)
    dead = np.vstack([one_each, np.zeros((2, 3))])  # dead neurons count for nothing
    assert monosemanticity(dead) == pytest.approx(1.0)
    assert np.isnan(monosemanticity(np.zeros((2, 3))))


def test_peak_ratio_against_the_higher_end() -> None:
    assert peak_ratio(np.array([1.0, 1.3, 2.4, 1.1, 1.2])) == pytest.approx(2.0)
    assert peak_ratio(np.array([3.0, 2.0, 1.0])) == pytest.approx(2 / 3)  # falls throughout
    assert peak_ratio(np.array([1.0, 2.0])) is None


def test_trend_leaves_out_lines_with_nothing_left_to_gain() -> None:
    table = pd.DataFrame({"model": "relu-output", "importance": "decay", "n_features": 10,
                          "n_embed": 0, "target": "input",
                          "n_hidden": [2, 2, 5, 5, 9, 9], "sparsity": [0, 0.9] * 3,
                          "probe_accuracy": [0.2, 0.5, 0.6, 0.4, 1.0, 1.0]})  # fmt: skip
    assert trend(table, "sparsity", "probe_accuracy", falls=False) == pytest.approx(1 / 3)
    assert trend(table, "sparsity", "probe_accuracy", falls=False, perfect=1.0) == 0.5
    table["test_loss"] = [0.5, 0.2, 0.3, 0.3, 0.1, 0.05]
    assert trend(table, "sparsity", "test_loss", falls=True) == pytest.approx(2 / 3)
    # recovered per dimension at S = 0, every m < n: 2 of 2, 6 of 5, 10 of 9
    assert recovered_per_dim(table) == pytest.approx(10 / 9)


# --- each setting on a planted sweep ------------------------------------------------------------


def _sparsity_sweep(norms: dict[int, list[float]], loss: dict[int, float]) -> LabResult:
    """Instances 0-5: two replicates at each of S = 0, 0.9, 0.99; n = 4, importance 0.7^i."""
    sparsity = {i: (0.0, 0.9, 0.99)[i // 2] for i in range(6)}
    log = [{"instance": i, "sparsity": sparsity[i], "train_loss": loss[i], "test_loss": loss[i],
            "dims_per_feature": 1.0} for i in range(6)]  # fmt: skip
    feats = [{"instance": i, "norm": v, "superposition": 2.0 if sparsity[i] else 0.0,
              "dimensionality": 1.0, "importance": 0.7**f}
             for i, row in norms.items() for f, v in enumerate(row)]  # fmt: skip
    return _result(log, feats)


#: feature norms of instances 0-5 (n = 4)
SUPERPOSED: dict[int, list[float]] = {
    0: [1, 1, 0, 0], 1: [1, 0, 1, 0], 2: [1, 1, 1, 0], 3: [1, 0, 0, 0], 4: [1, 1, 1, 1],
    5: [1, 1, 0, 0],
}  # fmt: skip


def test_superposition_claims_on_a_planted_sweep() -> None:
    c = SparsityConfig(n_features=4, n_hidden=2, sparsities=(0.0, 0.9, 0.99), replicates=2)
    loss = {0: 0.1, 1: 0.2, 2: 0.05, 3: 0.06, 4: 0.01, 5: 0.02}  # replicate 0 is the best
    summary = summarize_superposition(c, _sparsity_sweep(SUPERPOSED, loss))
    assert summary["dense_top_m_mismatch"] == 0 and summary["dense_max_superposition"] == 0.0
    assert summary["sparsest_represented_per_dim"] == 2.0  # all 4 features in 2 dimensions
    assert summary["sparsest_represented_share"] == 1.0
    assert summary["represented_sparsity_spearman"] == pytest.approx(1.0)  # 2 < 3 < 4
    assert set(_verdicts("superposition", summary).values()) == {"met"}
    # the other replicates win: dense keeps features 0 and 2, the sparsest only two
    flipped = {i: 0.3 - v for i, v in loss.items()}
    summary = summarize_superposition(c, _sparsity_sweep(SUPERPOSED, flipped))
    assert summary["dense_top_m_mismatch"] == 2
    assert summary["represented_sparsity_spearman"] == pytest.approx(0.0)  # 2, 1, 2: no trend
    assert _verdicts("superposition", summary) == {
        "dense-keeps-top-m": "not met", "dense-no-superposition": "met",
        "sparse-more-than-m": "not met", "sparsest-nearly-all": "not met",
        "superposition-grows-with-sparsity": "not met",
    }  # fmt: skip


def _final(W: np.ndarray) -> Final:
    return Final(params={"W": W}, features=W.T, bias=np.zeros(W.shape[1]), hidden=None,
                 importance=np.ones(W.shape[1]))  # fmt: skip


def test_privileged_claims_on_a_planted_sweep() -> None:
    W = {0: np.array([[2.0, 0, 0, 0], [0, 1, 0, 0]]),  # dense, best: one feature per neuron
         1: np.array([[1.0, 1, 0, 0], [0, 0, 1, 1]]),
         2: np.array([[1.0, 1, 0, 0], [0, 0, 1, 0.5]]),  # S = 0.9, best
         3: np.array([[1.0, 0, 0, 0], [0, 1, 0, 0]]),
         4: np.array([[1.0, 1, 1, 1], [1, -1, 1, -1]]),  # S = 0.99, best: all spread
         5: np.array([[1.0, 0, 0, 0], [0, 1, 0, 0]])}  # fmt: skip
    loss = {0: 0.1, 1: 0.2, 2: 0.05, 3: 0.06, 4: 0.01, 5: 0.02}
    result = _sparsity_sweep({i: list(np.linalg.norm(w, axis=0)) for i, w in W.items()}, loss)
    result.final = {i: _final(w) for i, w in W.items()}
    result.instances = [Instance(index=i, model="relu-hidden", n_features=4, n_hidden=2,
                                 sparsity=(0.0, 0.9, 0.99)[i // 2]) for i in range(6)]  # fmt: skip
    c = SparsityConfig(model="relu-hidden", n_features=4, n_hidden=2, replicates=2,
                       sparsities=(0.0, 0.9, 0.99))  # fmt: skip
    summary = summarize_privileged(c, result)
    mono = [r["monosemanticity"] for r in summary["by_sparsity"]]
    np.testing.assert_allclose(mono, [1.0, 2 / 3.25, 0.25])
    assert summary["by_sparsity"][0]["monosemanticity_mean"] == pytest.approx((1.0 + 0.5) / 2)
    assert summary["monosemanticity_sparsity_spearman"] == pytest.approx(-1.0)
    assert summary["represented_sparsity_spearman"] == pytest.approx(1.0)  # 2, 4 (> 0.5), 4
    assert set(_verdicts("privileged", summary).values()) == {"met"}
    result.final[0] = _final(np.array([[1.0, 1, 0, 0], [0, 0, 1, 1]]))  # dense, best: spread
    verdicts = _verdicts("privileged", summarize_privileged(c, result))
    assert verdicts["dense-neurons-monosemantic"] == "not met"
    assert verdicts["polysemanticity-grows-with-sparsity"] == "not met"  # 0.5, 0.62, 0.25


SIZES = [4, 8, 16, 500]  # 500: the toy unembedding's memorization setting


def _pentagon(turn: float = 0.0, n: int = 50) -> np.ndarray:
    """(n, 2): five unit directions 72 degrees apart (turned by `turn` degrees), the rest tiny."""
    a = np.deg2rad(np.arange(5) * 72.0 + turn)
    return np.vstack([np.c_[np.cos(a), np.sin(a)], np.full((n - 5, 2), 0.01)])


def _size_sweep(test_loss: list[float], train_loss: list[float],
                largest: np.ndarray | None = None, wd: float = 1e-2,
                first: int = 0) -> LabResult:  # fmt: skip
    """One model (n = 50, m = 2) at each T of SIZES; dimensionalities planted: the training
    points as a polygon up to T = 16, five features (`largest`, default a pentagon) at T = 500."""
    log = [{"instance": first + k, "n_hidden": 2, "weight_decay": wd, "dataset_size": T,
            "train_loss": train_loss[k],
            "test_loss": test_loss[k], "train_accuracy": 1.0, "test_accuracy": 0.001,
            "probe_accuracy": 0.1, "feature_dimensionality": 0.1,
            "data_dimensionality": 2 / T if T <= 16 else 0.01, "represented": 0.1}
           for k, T in enumerate(SIZES)]  # fmt: skip
    top = [0.05, 0.05, 0.1, 0.4]  # the largest feature dimensionality of each model
    feats = [{"instance": first + k, "norm": 1.0, "superposition": 0.0, "dimensionality": d,
              "importance": 1.0} for k in range(4) for d in (top[k], top[k] / 2)]  # fmt: skip
    instances = [Instance(index=first + k, model="relu-output", n_features=50, n_hidden=2,
                          sparsity=0.99, dataset_size=T, weight_decay=wd)
                 for k, T in enumerate(SIZES)]  # fmt: skip
    final = {first + k: _final(_pentagon(17.0 * k).T) for k in range(3)}
    final[first + 3] = _final((_pentagon() if largest is None else largest).T)
    return _result(log, feats, final, instances)


def test_double_descent_claims_on_a_planted_sweep() -> None:
    c = DoubleDescentConfig(n_features=50, dataset_sizes=tuple(SIZES))
    summary = summarize_sizes(c, _size_sweep([1.0, 1.5, 2.0, 0.9], [0.1, 0.5, 0.8, 0.85]))
    assert summary["peak_dataset_size"] == 16 and summary["peak_ratio"] == pytest.approx(2.0)
    assert summary["smallest_train_test_ratio"] == pytest.approx(0.1)
    assert summary["smallest_polygon"] == pytest.approx(1.0)  # 4 x 2/4 / 2
    assert summary["small_sets_polygon"] == pytest.approx(1.0)  # T = 4, 8, 16
    assert summary["smallest_feature_dimensionality"] == pytest.approx(0.05)
    assert summary["largest_feature_dimensionality"] == pytest.approx(0.4)
    assert summary["largest_represented"] == pytest.approx(5.0)  # 0.1 of 50
    assert summary["largest_pentagon_error"] == pytest.approx(0.0, abs=1e-9)
    assert summary["at_memorization_size"]["train_accuracy"] == 1.0
    curve = summary["by_hidden"][0]["curve"]
    assert [r["max_feature_dimensionality"] for r in curve] == pytest.approx([0.05, 0.05, 0.1, 0.4])
    for name in ("double-descent", "mlp-double-descent", "unembedding"):
        assert set(_verdicts(name, summary).values()) == {"met"}, name
    # no bump, no memorization: the loss falls with T and the small set is not learned
    summary = summarize_sizes(c, _size_sweep([2.0, 1.5, 1.2, 1.0], [1.9, 1.4, 1.1, 0.9]))
    assert summary["peak_ratio"] == pytest.approx(0.75)
    verdicts = _verdicts("double-descent", summary)
    assert verdicts["test-loss-peak"] == verdicts["memorizes-small-sets"] == "not met"
    # four of the five long features bunched: not a pentagon (gaps 30, 30, 30, 30, 240 degrees)
    a = np.deg2rad([0.0, 30, 60, 90, 120])
    bunched = np.vstack([np.c_[np.cos(a), np.sin(a)], np.full((45, 2), 0.01)])
    summary = summarize_sizes(c, _size_sweep([1.0, 1.5, 2.0, 0.9], [0.1, 0.5, 0.8, 0.85],
                                             largest=bunched))  # fmt: skip
    assert summary["largest_pentagon_error"] == pytest.approx(168.0)
    assert _verdicts("double-descent", summary)["pentagon-at-large-sets"] == "not met"


def test_unembedding_memorization_claims_read_the_square_and_the_circle() -> None:
    """The untied unembedding at T = 500: W1's columns on a square's edge, W2's rows on a
    circle (the source's pictures), and the verdicts turn when the shapes swap."""
    t = np.linspace(-1, 1, 25)
    square = np.vstack([np.c_[t, np.ones_like(t)], np.c_[np.ones_like(t), -t]])  # (50, 2)
    a = np.linspace(0, 2 * np.pi, 50, endpoint=False)
    circle = 0.7 * np.c_[np.cos(a), np.sin(a)]
    c = DoubleDescentConfig(model="unembed", tied=False, n_features=50,
                            dataset_sizes=tuple(SIZES))  # fmt: skip

    def summary(w1: np.ndarray, w2: np.ndarray) -> dict[str, Any]:
        sweep = _size_sweep([1.0, 1.5, 2.0, 0.9], [0.1, 0.5, 0.8, 0.85])
        sweep.final[3] = Final(params={"W1": w1.T, "W2": w2}, features=w1, bias=np.zeros(50),
                               hidden=None, importance=np.ones(50))  # fmt: skip
        return summarize_sizes(c, sweep)

    at = summary(square, circle)["at_memorization_size"]
    assert at["w1_squareness"] == 1.0  # the L-infinity norms all 1
    assert at["w2_squareness"] == pytest.approx(0.0, abs=1e-12)  # the L2 norms all 0.7
    filled = np.random.default_rng(0).uniform(-1, 1, (50, 2))
    assert 0.3 < summary(filled, circle)["at_memorization_size"]["w1_squareness"] < 0.7
    verdicts = _verdicts("unembedding-memorization", summary(square, circle))
    assert verdicts == dict.fromkeys(verdicts, "met")  # train 1.0, test 0.001, the shapes
    swapped = _verdicts("unembedding-memorization", summary(circle, square))
    assert swapped["w1-square"] == swapped["w2-circle"] == "not met"
    tied = summarize_sizes(
        replace(c, tied=True), _size_sweep([1.0, 1.5, 2.0, 0.9], [0.1, 0.5, 0.8, 0.85])
    )
    assert "w1_squareness" not in tied["at_memorization_size"]  # one matrix: no W2 to read


def test_the_peak_must_clear_both_ends_by_two_sd_over_seeds() -> None:
    """Issue 23's rule for the ReLU output model: every seed's peak above its ends, and the
    mean ratio above 1 by more than two sd over the seeds."""
    c = DoubleDescentConfig(n_features=50, dataset_sizes=tuple(SIZES))
    claim = next(k for k in LABS["double-descent"].claims if k.id == "test-loss-peak")

    def seeds(peaks: list[float]) -> list[dict[str, Any]]:
        sweeps = [_size_sweep([1.0, 0.95, p, 0.9], [0.1, 0.5, 0.8, 0.85]) for p in peaks]
        return [json.loads(json.dumps(summarize_sizes(c, r))) for r in sweeps]

    steady = decide(claim, seeds([1.5, 1.6, 1.7]))  # ratios 1.5-1.7, sd 0.1: 1.6 - 0.2 > 1
    assert steady["verdict"] == "met" and steady["sd"] == pytest.approx(0.1)
    noisy = decide(claim, seeds([1.1, 2.5, 1.15]))  # all above 1, but the spread is wide
    assert noisy["verdict"] == "mixed" and all(noisy["holds"])
    assert decide(claim, seeds([1.2, 1.3, 0.95]))["holds"] == [True, True, False]


def test_weight_decay_sweep_compares_the_bump_at_each_decay() -> None:
    """Two weight decays: one curve per decay in by_hidden, the bump's shrink from the first to
    the last, and the claim decided on it."""
    c = DoubleDescentConfig(n_features=50, dataset_sizes=tuple(SIZES), weight_decays=(1e-2, 1.0))
    weak = _size_sweep([1.0, 1.5, 2.0, 0.9], [0.1, 0.5, 0.8, 0.85])  # peak ratio 2.0
    strong = _size_sweep([1.0, 1.1, 1.25, 0.9], [0.1, 0.5, 0.8, 0.85], wd=1.0, first=4)
    both = _result(pd.concat([weak.log, strong.log]).to_dict("records"),
                   pd.concat([weak.features, strong.features]).to_dict("records"),
                   weak.final | strong.final, weak.instances + strong.instances)  # fmt: skip
    summary = summarize_sizes(c, both)
    assert [(h["weight_decay"], h["peak_ratio"]) for h in summary["by_hidden"]] == [
        (1e-2, pytest.approx(2.0)), (1.0, pytest.approx(1.25))]  # fmt: skip
    assert summary["peak_ratio"] == pytest.approx(2.0)  # the first decay's, at the top
    assert summary["bump_shrink"] == pytest.approx(0.25)  # 0.25 / 1.0
    assert set(_verdicts("double-descent-weight-decay", summary).values()) == {"met"}
    grown = _size_sweep([1.0, 1.1, 2.5, 0.9], [0.1, 0.5, 0.8, 0.85], wd=1.0, first=4)
    both.log = pd.concat([weak.log, grown.log], ignore_index=True)
    summary = summarize_sizes(c, both)
    assert summary["bump_shrink"] == pytest.approx(1.5)
    verdicts = _verdicts("double-descent-weight-decay", summary)
    assert verdicts["bump-shrinks-with-weight-decay"] == "not met"


def _grid(accuracy: dict[str, list[float]], loss: dict[str, list[float]]) -> LabResult:
    """n = 10; cells (m, S) in the order (2, 0), (2, 0.9), (5, 0), (5, 0.9), per importance."""
    cells = [(2, 0.0), (2, 0.9), (5, 0.0), (5, 0.9)]
    log = [{"instance": 4 * i + k, "model": "relu-output", "importance": imp,
            "n_features": 10, "n_embed": 0,
            "n_hidden": m, "sparsity": s, "target": "input", "test_loss": loss[imp][k],
            "probe_accuracy": accuracy[imp][k], "test_accuracy": 0.0, "represented": 0.0}
           for i, imp in enumerate(("decay", "uniform"))
           for k, (m, s) in enumerate(cells)]  # fmt: skip
    return _result(log)


def test_reconstruction_claims_on_a_planted_grid() -> None:
    accuracy = {"decay": [0.2, 0.5, 0.5, 1.0], "uniform": [0.3, 0.6, 0.4, 1.0]}
    loss = {"decay": [1.0, 0.3, 0.5, 0.1], "uniform": [3.0, 1.0, 2.0, 0.5]}
    summary = summarize_grid(ReconstructionConfig(), _grid(accuracy, loss))
    for key in ("sparser_lowers_loss", "sparser_raises_accuracy", "wider_lowers_loss",
                "wider_raises_accuracy"):  # fmt: skip
        assert summary[key] == 1.0, key
    # uniform is better in 2 of the 3 cells where either is below 1 (m = 5, S = 0.9: both 1)
    assert summary["uniform_vs_decay"] == {
        "worse_loss": 1.0,
        "better_accuracy": pytest.approx(2 / 3),
    }
    assert summary["dense_decay_recovered_per_dim"] == pytest.approx(1.0)  # 2 of 10, 5 of 10
    verdicts = _verdicts("reconstruction", summary)
    assert verdicts.pop("uniform-better-accuracy") == "not met"
    assert set(verdicts.values()) == {"met"}
    accuracy["decay"] = [0.5, 0.5, 1.0, 1.0]  # 5 and 10 recovered by 2 and 5 dimensions
    verdicts = _verdicts("reconstruction", summarize_grid(ReconstructionConfig(),
                                                          _grid(accuracy, loss)))  # fmt: skip
    assert verdicts["dense-decay-recovers-about-m"] == "not met"  # median of 2.5, 2.0: 2.25 > 2
    assert verdicts["sparser-raises-accuracy"] == "not met"  # 0.5 -> 0.5 does not rise


def _fish(accuracy: Callable[[str, int, int], float]) -> LabResult:
    """n = 30; cells d in {5, 10} x m in {3, 10, 30} x the three targets, `accuracy(target, d,
    m)` planted."""
    cells = itertools.product(("input", "embedded", "reprojected"), (5, 10), (3, 10, 30))
    log = [{"instance": i, "model": "mlp", "importance": "uniform", "n_features": 30, "n_embed": d,
            "n_hidden": m, "sparsity": 0.99, "target": t, "test_loss": 1.0,
            "probe_accuracy": accuracy(t, d, m), "test_accuracy": 0.0, "represented": 0.0}
           for i, (t, d, m) in enumerate(cells)]  # fmt: skip
    return _result(log)


def test_fish_claims_on_a_planted_grid() -> None:
    """Big fish set by m alone, small fish 0.3 above it, the re-projector 0.06 above it: every
    claim of the source; then a big fish set by d, and a re-projector like the small fish."""
    by_m = {3: 0.1, 10: 0.3, 30: 0.6}
    lift = {"input": 0.0, "embedded": 0.3, "reprojected": 0.06}
    c = FISH.presets["quick"]
    summary = summarize_fish(c, _fish(lambda t, d, m: by_m[m] + lift[t]))
    assert summary["big_fish_wider_raises_accuracy"] == 1.0
    assert summary["big_fish_change_along_d"] == 0.0
    assert summary["big_fish_change_along_m"] == pytest.approx(0.5)
    assert summary["bottleneck_over_hidden"] == 0.0
    assert summary["small_fish_better"] == 1.0
    assert summary["small_fish_median_when_m_below_n"] == pytest.approx(0.5)  # 0.4, 0.6 (x2)
    assert summary["reprojector_closeness"] == pytest.approx(0.2)  # 0.06 / 0.3
    assert summary["mean_accuracy"]["embedded"] == pytest.approx(1 / 3 + 0.3)
    assert set(_verdicts("fish", summary).values()) == {"met"}
    by_d = {5: 0.1, 10: 0.9}  # the bottleneck matters, m a little; all at 1: nothing to recover
    lift["reprojected"] = 0.25
    summary = summarize_fish(c, _fish(lambda t, d, m: min(1.0, by_d[d] + m / 300 + lift[t])))
    assert summary["bottleneck_over_hidden"] == pytest.approx(0.8 / 0.09)
    verdicts = _verdicts("fish", summary)
    assert verdicts["big-fish-bottleneck-matters-little"] == "not met"
    assert verdicts["reprojector-like-big-fish"] == "not met"  # about as far as the small fish


def test_one_hot_claims_on_a_planted_grid() -> None:
    """The MLP fails where m <= T / 4, the bottleneck does not; cells with m > T / 4 do not
    count; then a bottleneck that is no better."""

    def grid(mlp: dict[tuple[int, int], float], relu: dict[tuple[int, int], float]) -> LabResult:
        log = [{"instance": i, "model": model, "importance": "uniform", "n_features": n,
                "n_embed": 0, "n_hidden": m, "sparsity": 0.0, "target": "input",
                "test_loss": 1.0, "probe_accuracy": acc[(n, m)], "test_accuracy": 0.0,
                "represented": 0.0}
               for i, (model, acc, (n, m)) in enumerate(
                   (model, acc, cell) for model, acc in (("mlp", mlp), ("relu-output", relu))
                   for cell in acc)]  # fmt: skip
        return _result(log)

    # cells (T, m): (40, 2), (40, 10) and (12, 3) are narrow (m <= T / 4); (12, 10) is not
    mlp = {(40, 2): 0.2, (40, 10): 0.5, (12, 3): 0.6, (12, 10): 1.0}
    relu = {(40, 2): 0.9, (40, 10): 1.0, (12, 3): 0.95, (12, 10): 0.3}
    c = LABS["one-hot"].presets["quick"]
    summary = summarize_one_hot(c, grid(mlp, relu))
    assert summary["mlp_median_when_m_much_below_T"] == pytest.approx(0.5)
    assert summary["bottleneck_median_when_m_much_below_T"] == pytest.approx(0.95)
    assert summary["bottleneck_better"] == 1.0  # (12, 10), where the MLP wins, is not narrow
    assert set(_verdicts("one-hot", summary).values()) == {"met"}
    relu = {cell: acc - 0.4 for cell, acc in relu.items()}  # 0.5, 0.6, 0.55: no better
    verdicts = _verdicts("one-hot", summarize_one_hot(c, grid(mlp, relu)))
    assert verdicts["bottleneck-does-not-struggle"] == verdicts["bottleneck-beats-the-mlp"]
    assert verdicts["bottleneck-beats-the-mlp"] == "not met"


def test_final_layer_measures_on_a_planted_model() -> None:
    """n = 3 one-hot points, m = 2 neurons, every measure by hand."""
    W1, b1 = np.array([[1.0, 0, -1], [0, 1, 0]]), np.array([0.5, -0.5])
    W2, b2 = np.array([[2.0, -1], [-1, 2], [-1, -2]]), np.array([0.0, 0, 1])
    final = Final(params={"W1": W1, "b1": b1, "W2": W2, "b2": b2}, features=W1.T,
                  bias=b2, hidden=None, importance=np.ones(3))  # fmt: skip
    got = anatomy(final)
    # pre-activations W1^T + b1: (1.5, -0.5), (0.5, 0.5), (-0.5, -0.5); activations
    # (1.5, 0), (0.5, 0.5), (0, 0); logits (3, -1.5, -0.5), (0.5, 0.5, -0.5), (0, 0, 1)
    assert got["positive_preactivations"] == pytest.approx(0.5)
    assert got["activation_norm"] == pytest.approx((1.5 + np.sqrt(0.5)) / 3)
    assert got["activation_cosine"] == pytest.approx(2 * np.sqrt(0.5) / 6)  # the zero row: 0
    assert got["train_accuracy"] == pytest.approx(2 / 3)  # point 1: a tie, argmax takes 0
    assert got["w2_sign_balance"] == pytest.approx(-1 / 9)  # sum -1 over sum |.| 9
    assert got["logit_margin"] == pytest.approx((8 / 3 + 1 / 3 + 2 / 3) / 3)


def test_final_layer_claims_read_the_low_decay_and_the_margin_ratio() -> None:
    c = FinalLayerConfig(replicates=1)
    instances = [Instance(index=k, model="mlp-ce", n_features=3, n_hidden=2, data="one-hot",
                          weight_decay=wd) for k, wd in enumerate(c.weight_decays)]  # fmt: skip

    def model(scale: float) -> Final:  # memorizes; W2 all negative but for its diagonal
        W1, b1 = 3 * np.eye(3)[:2] + 0.1, np.array([1.0, 1.0])
        W2 = scale * np.array([[1.0, -2], [-2, 1], [-2, -2]])
        b2 = np.array([0.0, 0, 4 * scale])  # point 2's activations (1.1, 1.1) need its lift
        return Final(params={"W1": W1, "b1": b1, "W2": W2, "b2": b2}, features=W1.T,
                     bias=b2, hidden=None, importance=np.ones(3))  # fmt: skip

    result = _result([], final={0: model(1.0), 1: model(0.25)}, instances=instances)
    summary = summarize_final_layer(c, result)
    assert summary["low"]["train_accuracy"] == 1.0
    assert summary["low"]["w2_sign_balance"] == pytest.approx(-6 / 10)
    assert summary["low"]["positive_preactivations"] == 1.0
    assert summary["margin_ratio"] == pytest.approx(0.25)  # logits scale with W2 and b2
    verdicts = _verdicts("final-layer", summary)
    # activations (4.1, 1.1), (1.1, 4.1), (1.1, 1.1): cosines 0.50, 0.87, 0.87
    assert summary["low"]["activation_cosine"] == pytest.approx(
        (9.02 / 18.02 + 2 * 5.72 / np.sqrt(18.02 * 2.42)) / 3
    )
    assert verdicts.pop("activation-cosines-near-one") == "not met"
    assert set(verdicts.values()) == {"met"}
    result.final[1] = model(1.0)  # weight decay 1 changes nothing
    assert _verdicts("final-layer", summarize_final_layer(c, result))[
        "weight-decay-1-counteracts"] == "not met"  # fmt: skip


def test_geometry_claims_on_a_planted_sweep() -> None:
    """D* falls 1, 0.52, 0.49, 0.3 (a plateau of two at one half); the represented features'
    dimensionalities mostly at polytope fractions; unrepresented features do not count."""

    def sweep_of(dims: list[float]) -> LabResult:
        sparsities = [0.0, 0.9, 0.97, 0.99]
        log = [{"instance": k, "sparsity": s, "train_loss": 1.0, "dims_per_feature": d}
               for k, (s, d) in enumerate(zip(sparsities, dims, strict=True))]  # fmt: skip
        kept = {0: [1.0, 1.0, 1.0], 1: [0.5, 0.5], 2: [0.5, 0.74], 3: [0.4, 0.2, 0.6]}
        feats = [
            {
                "instance": k,
                "norm": 1.0,
                "superposition": 0.0,
                "dimensionality": d,
                "importance": 1.0,
            }
            for k, ds in kept.items()
            for d in ds
        ]
        feats += [{"instance": k, "norm": 0.1, "superposition": 0.0, "dimensionality": 0.9,
                   "importance": 1.0} for k in kept]  # fmt: skip
        return _result(log, feats)

    c = LABS["geometry"].presets["quick"]
    summary = summarize_geometry(c, sweep_of([1.0, 0.52, 0.49, 0.3]))
    assert summary["dense_dims_per_feature"] == 1.0
    assert summary["dims_sparsity_spearman"] == pytest.approx(-1.0)
    assert summary["half_plateau_length"] == 2
    assert summary["at_fractions"] == pytest.approx(0.8)  # all but 0.2 and 0.6 of ten
    assert [r["represented"] for r in summary["by_sparsity"]] == [3, 2, 2, 3]
    assert set(_verdicts("geometry", summary).values()) == {"met"}
    verdicts = _verdicts("geometry", summarize_geometry(c, sweep_of([0.8, 0.6, 0.5, 0.3])))
    assert verdicts["plateau-at-one-half"] == verdicts["dense-one-dimension-per-feature"]
    assert verdicts["plateau-at-one-half"] == "not met"


# --- deviations and figures over seeds ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LABS))
def test_the_quick_preset_deviates_more_than_the_paper_one(name: str) -> None:
    setting = LABS[name]
    assert setting.claims and setting.deviations is not None
    quick, paper = (setting.deviations(setting.presets[p]) for p in ("quick", "paper"))

    def topics(deviations: list[str]) -> set[str]:  # the field, or the whole sentence
        return {d.split(" = ")[0] for d in deviations}

    assert topics(paper) < topics(quick)  # every deviation of the paper preset, and more
    assert all(d.endswith(".") for d in quick)
    assert len({c.id for c in setting.claims}) == len(setting.claims)


def _deviations(name: str, preset: str) -> list[str]:
    setting = LABS[name]
    assert setting.deviations is not None
    return setting.deviations(setting.presets[preset])


def test_known_source_settings_are_stated_as_deviations() -> None:
    paper = _deviations("double-descent", "paper")
    assert any(d.startswith("train.steps = 10,000: ") and "50,000" in d for d in paper)
    quick = _deviations("double-descent", "quick")
    assert any(d.startswith("n_features = 100: the source has n = 1,000") for d in quick)
    assert any("1,000 models per sparsity" in d for d in _deviations("privileged", "paper"))


def _seed_dirs(tmp_path: Path, summaries: list[dict[str, Any]]) -> list[Path]:
    dirs = []
    for seed, summary in enumerate(summaries):
        run = tmp_path / "seeds" / f"seed_{seed:03d}"
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps(summary))
        (run / "manifest.json").write_text(json.dumps({"seed": seed}))
        dirs.append(run)
    return dirs


def test_draw_seeds_draws_every_seed_of_a_sweep(tmp_path: Path) -> None:
    c = SparsityConfig(n_features=4, n_hidden=2, sparsities=(0.0, 0.9, 0.99), replicates=2)
    losses = [
        {0: 0.1, 1: 0.2, 2: 0.05, 3: 0.06, 4: 0.01, 5: 0.02},
        {i: 1.0 - i / 10 for i in range(6)},
    ]
    sparse = [summarize_superposition(c, _sparsity_sweep(SUPERPOSED, loss)) for loss in losses]
    d = DoubleDescentConfig(n_features=50, dataset_sizes=tuple(SIZES))
    sizes = [summarize_sizes(d, _size_sweep([1.0, 1.5 + k, 2.0, 0.9], [0.1, 0.5, 0.8, 0.85]))
             for k in range(2)]  # fmt: skip
    for name, summaries in (("superposition", sparse), ("double-descent", sizes)):
        draw = LABS[name].draw_seeds
        assert draw is not None
        figures = tmp_path / name / "figures"
        written = draw(_seed_dirs(tmp_path / name, summaries), figures)
        assert len(written) == 1 and written[0].startswith("figures/")
        assert (tmp_path / name / written[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
