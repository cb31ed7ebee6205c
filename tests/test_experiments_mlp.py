"""The MLP experiments (memorization, lmc, lottery): their pure helpers on planted answers, and
each quick preset run once, asserting the direction of every effect that is robust at that size
(checked on seeds 0, 1 and 2)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from striate.experiments import run_experiment
from striate.experiments.lmc import interpolate, loss_barrier
from striate.experiments.lottery import prune, random_like, sparsity
from striate.experiments.mlp import MLP, make_mlp, mean_overlap, top_overlaps

# --- planted answers ---------------------------------------------------------------------------


def test_loss_barrier_of_a_planted_bump() -> None:
    alphas = np.linspace(0.0, 1.0, 11)
    losses = 2.0 + 0.5 * alphas + 0.3 * np.sin(np.pi * alphas)  # a line plus a bump of 0.3
    assert loss_barrier(alphas, losses) == pytest.approx(0.3, abs=1e-12)


def test_loss_barrier_is_zero_below_the_chord() -> None:
    alphas = np.linspace(0.0, 1.0, 7)
    assert loss_barrier(alphas, (alphas - 0.5) ** 2) == 0.0  # convex: the ends are the max


def test_interpolate_ends_and_midpoint() -> None:
    a, b = {"w": torch.tensor([1.0, -2.0])}, {"w": torch.tensor([3.0, 2.0])}
    torch.testing.assert_close(interpolate(a, b, 0.0)["w"], a["w"])
    torch.testing.assert_close(interpolate(a, b, 1.0)["w"], b["w"])
    torch.testing.assert_close(interpolate(a, b, 0.5)["w"], torch.tensor([2.0, 0.0]))


def test_prune_drops_the_smallest_survivors() -> None:
    w = torch.tensor([[0.5, -4.0, 0.1], [3.0, -0.2, 2.0], [-1.0, 0.3, 5.0]])
    mask = prune(w, torch.ones(3, 3), 1 / 3)  # 3 of 9: |w| = 0.1, 0.2, 0.3
    kept = set(torch.nonzero(mask.flatten()).flatten().tolist())
    assert kept == {0, 1, 3, 5, 6, 8}
    mask = prune(w, mask, 0.5)  # 3 of the 6 left: 0.5, 1.0, 2.0
    assert set(torch.nonzero(mask.flatten()).flatten().tolist()) == {1, 3, 8}


def test_prune_never_revives_a_pruned_weight() -> None:
    w = torch.tensor([9.0, 1.0, 2.0, 3.0])
    mask = prune(w, torch.tensor([0.0, 1.0, 1.0, 1.0]), 1 / 3)  # the 9 was pruned before
    torch.testing.assert_close(mask, torch.tensor([0.0, 0.0, 1.0, 1.0]))


@pytest.mark.parametrize(("p", "rounds"), [(0.2, 5), (0.4, 4), (0.5, 3)])
def test_sparsity_after_n_rounds(p: float, rounds: int) -> None:
    w = torch.randn(40, 25, generator=torch.Generator().manual_seed(0))
    masks = {"w": torch.ones_like(w)}
    for _ in range(rounds):
        masks = {"w": prune(w, masks["w"], p)}
    # 1 - (1 - p)^n up to the rounding of one weight per round
    assert sparsity(masks) == pytest.approx(1 - (1 - p) ** rounds, abs=rounds / w.numel())


def test_random_like_keeps_the_count_and_moves_the_places() -> None:
    mask = prune(torch.arange(100.0).view(10, 10), torch.ones(10, 10), 0.7)
    rand = random_like(mask, torch.Generator().manual_seed(0))
    assert rand.sum() == mask.sum() == 30
    assert not torch.equal(rand, mask)


def test_top_overlaps_planted_subspaces() -> None:
    a = torch.diag(torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0]))
    b = torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]))  # the same axes, reversed order
    same, swapped = top_overlaps({"w": a}, {"w": a}, 2), top_overlaps({"w": a}, {"w": b}, 2)
    assert same["w"]["left"] == pytest.approx(1.0) and same["w"]["right"] == pytest.approx(1.0)
    assert swapped["w"]["left"] == pytest.approx(0.0, abs=1e-12)  # e1, e2 against e4, e5
    assert same["w"]["chance_left"] == pytest.approx(2 / 5)
    assert mean_overlap(same) == pytest.approx(1.0)


def test_mlp_is_seeded_and_chains_layers() -> None:
    a, b = make_mlp((64, 16, 10), 3), make_mlp((64, 16, 10), 3)
    assert isinstance(a, MLP) and list(a.state_dict()) == [
        "fc.0.weight", "fc.0.bias", "fc.1.weight", "fc.1.bias"]  # fmt: skip
    torch.testing.assert_close(a.fc[0].weight, b.fc[0].weight, rtol=0, atol=0)
    assert a(torch.rand(5, 1, 8, 8)).shape == (5, 10)


# --- the quick presets -------------------------------------------------------------------------


def _run(tmp_path_factory: pytest.TempPathFactory, name: str) -> tuple[Path, dict[str, Any]]:
    out = run_experiment(name, tmp_path_factory.mktemp(name) / "run", preset="quick")
    return out, json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def memorization(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    return _run(tmp_path_factory, "memorization")


@pytest.fixture(scope="module")
def lmc(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    return _run(tmp_path_factory, "lmc")


@pytest.fixture(scope="module")
def lottery(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    return _run(tmp_path_factory, "lottery")


def _check_files(out: Path, sweep: str) -> None:
    for file in ("trajectories.parquet", "metrics.parquet", "dynamics.parquet",
                 "summary.json", "manifest.json", "index.html",
                 "figures/curves.png", f"figures/{sweep}.png"):  # fmt: skip
        assert (out / file).is_file(), file
    metrics = pd.read_parquet(out / "metrics.parquet")
    assert {"step", "train_loss", "test_loss", "train_acc", "test_acc", "condition"} <= set(metrics)
    traj = pd.read_parquet(out / "trajectories.parquet")
    assert {"step", "name", "effective_rank", "condition"} <= set(traj)
    dyn = pd.read_parquet(out / "dynamics.parquet")
    assert {"step", "tensor", "update0_effective_rank", "condition"} <= set(dyn)


def test_memorization_files_and_claims(memorization: tuple[Path, dict[str, Any]]) -> None:
    out, summary = memorization
    _check_files(out, "ranks")
    assert set(summary["conditions"]) == {"true wd=0", "shuffled wd=0", "true wd=0.001",
                                          "shuffled wd=0.001"}  # fmt: skip
    assert summary["claims"] == {
        "all_runs_fit_the_training_set": True,
        "shuffled_labels_do_not_generalize": True,
        "update_rank_higher_when_memorizing": True,
        "final_rank_higher_when_memorizing": True,
    }


def test_lmc_files_and_claims(lmc: tuple[Path, dict[str, Any]]) -> None:
    out, summary = lmc
    _check_files(out, "splits")
    claims = summary["claims"]
    assert claims["barrier_at_split_0"] and claims["connected_at_last_split"]
    assert claims["barrier_falls_as_overlap_rises"]
    first, last = summary["splits"]["0"], summary["splits"]["600"]
    assert first["barrier_train"] > 0.2 > 0.05 > last["barrier_train"]
    assert first["overlap_min"] < 0.5 < 0.95 < last["overlap_min"]
    conditions = set(pd.read_parquet(out / "metrics.parquet")["condition"])
    assert conditions == {"parent", *(f"split={k} a" for k in (0, 30, 100, 300, 600))}


def test_lottery_files_and_claims(lottery: tuple[Path, dict[str, Any]]) -> None:
    out, summary = lottery
    _check_files(out, "rounds")
    assert summary["claims"]["ticket_keeps_dense_directions"]
    assert summary["claims"]["ticket_trains_as_well_as_dense"]
    rounds = pd.DataFrame(summary["rounds"])
    np.testing.assert_allclose(rounds["sparsity"].unique(), [1 - 0.6**n for n in range(5)],
                               atol=5e-4)  # fmt: skip
    ticket, rand = (
        rounds[(rounds["mask"] == k) & (rounds["round"] > 0)] for k in ("ticket", "random")
    )
    assert (ticket["overlap"].to_numpy() > rand["overlap"].to_numpy() + 0.2).all()


def test_same_seed_same_numbers(tmp_path: Path) -> None:
    small = ["steps=40", "weight_decays=[0.0]", "checkpoints=3", "eval_every=10"]
    runs = [run_experiment("memorization", tmp_path / str(i), overrides=small, seed=5)
            for i in range(2)]  # fmt: skip
    a, b = (pd.read_parquet(r / "metrics.parquet") for r in runs)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    sa, sb = (json.loads((r / "summary.json").read_text()) for r in runs)
    assert {**sa, "wall_time_s": 0} == {**sb, "wall_time_s": 0}
    assert not math.isnan(a["train_loss"].iloc[-1])
