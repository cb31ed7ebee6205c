"""The grokking experiments: the claim measures on planted tables, the transformer's shortcut
against its full forward, the quick presets (MLP and transformer) and the CLI run by seed.

The margins on the quick presets held over seeds 0, 1 and 2 (the module's report says what
each seed gave)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from pictures import assert_drawn
from safetensors.numpy import load_file
from typer.testing import CliRunner

from striate.cli import app
from striate.experiments import EXPERIMENTS, grokking, run_experiment
from striate.experiments import grokking_transformer as gt
from striate.experiments.claims import decide
from striate.experiments.harness import Tracked, log_schedule
from striate.experiments.measures import entropy_ranks, rank_measures, steepest_drop
from striate.experiments.setting import resolve_config
from striate.report.claims_html import spread

TINY = ["p=11", "steps=30", "checkpoints=5", "d_embed=8", "d_hidden=8", "eval_every=10"]
CLAIM_IDS = [
    "grokked_with_weight_decay",
    "no_grokking_without_weight_decay",
    "rank_drop_coincides_with_grokking",
    "rank_falls_with_weight_decay",
    "no_rank_collapse_without_weight_decay",
]

# --- the measures on planted tables ------------------------------------------------------------


def test_steepest_drop_is_per_step_from_the_peak_on() -> None:
    curve = pd.DataFrame({"step": [0, 10, 20, 30, 50], "r": [1.0, 3.0, 2.0, 1.5, 0.0]})
    # falls per step after the peak at 10: 0.1 (10-20), 0.05 (20-30), 0.075 (30-50)
    assert steepest_drop(curve, "r") == 15
    rising = curve.assign(r=[0.0, 0.0, 5.0, 4.0, 8.0])  # the peak is last: nothing after it
    assert steepest_drop(rising, "r") is None
    assert steepest_drop(curve.assign(r=[3.0, 1.0, 1.0, 1.0, 1.0]), "r") == 5
    assert steepest_drop(curve.iloc[:1], "r") is None


def _planted_run(condition: str, test99: int | None, ranks: dict[str, list[float]]) -> Tracked:
    """Checkpoints log-spaced to 4 and every 100 steps to 1000; test accuracy reaches 99% at
    `test99`; each matrix (8 x 16) has the given normalized entropy at the checkpoints."""
    steps = [0, 1, 2, 4, *range(100, 1001, 100)]
    acc = [0.99 if test99 is not None and s >= test99 else 0.05 for s in steps]
    metrics = pd.DataFrame({"step": steps, "train_acc": 1.0, "test_acc": acc,
                            "condition": condition})  # fmt: skip
    rows = [
        {"name": name, "shape": [8, 16], "effective_rank": math.exp(h * math.log(8)),
         "step": s, "condition": condition}
        for name, hs in ranks.items()
        for s, h in zip(steps, hs, strict=True)
    ]  # fmt: skip
    return Tracked(metrics, pd.DataFrame(rows), pd.DataFrame(), pd.DataFrame())


#            steps:  0    1    2    4   100  200  300  400  500  600  700  800  900  1000
FAST_EARLY = [0.90, 0.95, 0.80, 0.80, 0.80, 0.79, 0.78, 0.76, 0.50, 0.45, 0.44, 0.43, 0.43, 0.43]
SLOW = [0.90, 0.95, 0.94, 0.94, 0.93, 0.92, 0.91, 0.90, 0.80, 0.79, 0.78, 0.77, 0.76, 0.76]


def test_rank_measures_on_planted_tables() -> None:
    run = _planted_run("wd=1", 500, {"a": FAST_EARLY, "b": SLOW})
    t = entropy_ranks(run.trajectories)
    np.testing.assert_allclose(t.loc[t["name"] == "a", "normalized_entropy"], FAST_EARLY,
                               rtol=1e-12)  # fmt: skip
    np.testing.assert_allclose(t["rank_entropy"], np.log(t["effective_rank"]), rtol=1e-12)
    r = rank_measures(t, ["a", "b"], "normalized_entropy", every=100)
    drop_a, drop_b = (0.95 - 0.43) / 0.95, (0.95 - 0.76) / 0.95
    assert r["matrices"]["a"]["drop"] == pytest.approx(drop_a, rel=1e-9)
    assert r["mean_drop"] == pytest.approx((drop_a + drop_b) / 2, rel=1e-9)
    assert r["min_drop"] == pytest.approx(drop_b, rel=1e-9)
    # on the 100-step grid the mean falls fastest from 400 to 500 (0.18); read on every
    # checkpoint, the one step from 1 to 2 (0.08 per step) would win
    assert r["steepest_drop_step"] == 450 and r["matrices"]["a"]["steepest_drop_step"] == 450
    assert rank_measures(t, ["a", "b"], "normalized_entropy")["steepest_drop_step"] == 1
    # the same matrices read as exp(H): another scale, the same place of the steepest drop
    assert rank_measures(t, ["a"], "effective_rank", every=100)["steepest_drop_step"] == 450


def _decide(summary: dict[str, Any]) -> dict[str, float | None]:
    summary = json.loads(json.dumps(summary))  # as summary.json holds it
    return {c.id: decide(c, [summary])["per_seed"][0] for c in grokking.CLAIMS}


def test_the_claims_read_the_summary_of_planted_runs() -> None:
    grok = _planted_run("wd=1", 500, {"a": FAST_EARLY, "b": SLOW})
    control = _planted_run("wd=0", None, {"a": SLOW, "b": [*SLOW[:-1], 0.95 * 0.85]})
    tracked = Tracked(*(pd.concat([getattr(grok, k), getattr(control, k)], ignore_index=True)
                        for k in ("metrics", "trajectories", "dynamics", "alignment")))  # fmt: skip
    conditions = {c: grokking.summarize(tracked, c, every=100) for c in ("wd=1", "wd=0")}
    summary = {"conditions": conditions, "weight_decay_run": "wd=1", "control_run": "wd=0",
               "claim_rank": "normalized_entropy"}  # fmt: skip
    values = _decide(summary)
    assert values["grokked_with_weight_decay"] == 1.0
    assert values["no_grokking_without_weight_decay"] == 1.0
    assert values["rank_drop_coincides_with_grokking"] == pytest.approx(450 / 500)
    assert values["rank_falls_with_weight_decay"] == pytest.approx(
        ((0.95 - 0.43) / 0.95 + (0.95 - 0.76) / 0.95) / 2
    )
    assert values["no_rank_collapse_without_weight_decay"] == pytest.approx((0.2 + 0.15) / 2)
    rows = {c.id: decide(c, [summary]) for c in grokking.CLAIMS}
    assert [rows[i]["verdict"] for i in CLAIM_IDS] == ["met", "met", "met", "met", "met"]

    # the window is +-20% of the grokking step, both ends in
    wd1 = conditions["wd=1"]["rank"]["normalized_entropy"]
    for ratio, verdict in ((0.8, "met"), (1.2, "met"), (0.79, "not met"), (1.21, "not met")):
        wd1["steepest_drop_over_test99"] = ratio
        assert decide(grokking.CLAIMS[2], [summary])["verdict"] == verdict
    # no grokking step: the coincidence is undefined, not a crash, and does not hold
    conditions["wd=1"]["test99_step"] = None
    assert _decide(summary)["grokked_with_weight_decay"] == 0.0
    grok_never = grokking.summarize(
        Tracked(grok.metrics.assign(test_acc=0.5), grok.trajectories, grok.dynamics,
                grok.alignment), "wd=1", every=100)  # fmt: skip
    assert grok_never["rank"]["normalized_entropy"]["steepest_drop_over_test99"] is None
    summary["conditions"]["wd=1"] = grok_never
    assert _decide(summary)["rank_drop_coincides_with_grokking"] is None


def test_checkpoint_schedule_adds_a_grid_to_the_log_spaced_steps() -> None:
    s = grokking.checkpoint_schedule(3000, 24, 100)
    assert set(log_schedule(3000, 24)) <= set(s) and set(range(0, 3001, 100)) <= set(s)
    assert grokking.checkpoint_schedule(3000, 24, 0) == log_schedule(3000, 24)


def test_deviations_name_every_difference_from_the_source() -> None:
    full = gt.deviations(gt.PRESETS["full"])
    assert len(full) == 1 and full[0].startswith("Stops at 1.5x the grokking step")
    quick = gt.deviations(gt.PRESETS["quick"])
    for text in ("modulus 31, not 113.", "d_model 64, not 128.", "d_mlp 256, not 512.",
                 "learning rate 0.01, not 0.001.", "step cap 3000, not 40000."):  # fmt: skip
        assert text in quick
    assert "heads" not in " ".join(quick)  # 4 heads, as the source
    mlp = grokking.deviations(grokking.PRESETS["quick"])
    assert mlp[0].startswith("An MLP") and "a + b mod 59, not mod 113." in mlp
    assert "50% of the pairs for training, not 30%." in mlp


def test_device_goes_to_the_config() -> None:
    setting = EXPERIMENTS["grokking-transformer"]
    assert resolve_config(setting, "full", device="cuda").device == "cuda"
    assert resolve_config(setting, "quick").device == "cpu"


# --- the transformer ---------------------------------------------------------------------------


def test_the_last_position_shortcut_equals_the_full_forward() -> None:
    cfg = gt.Config(p=7, d_model=12, n_heads=3, d_mlp=20, seed=5)
    torch.manual_seed(5)
    model = gt.Transformer(cfg).double()
    for w in model.parameters():  # larger weights than at init: attention far from uniform
        w.data.normal_(0.0, 1.0)
    x = torch.cartesian_prod(*[torch.arange(cfg.p + 1)] * 3)  # every triple, '=' anywhere
    full = model.logits_every_position(x)  # (B, 3, p)
    np.testing.assert_allclose(model(x).detach(), full[:, -1].detach(), rtol=1e-12, atol=1e-12)
    # causal: the logits at the first position read the first token only
    first = full[:, 0].detach().numpy()
    same_first = x[:, 0] == 3
    np.testing.assert_allclose(first[same_first], first[same_first][:1].repeat(64, 0),
                               rtol=1e-12)  # fmt: skip
    data = gt.tokens(cfg)
    assert (data["x_train"][:, 2] == cfg.p).all() and len(data["x_test"]) == 49 - 15
    assert torch.equal(data["y_train"], data["x_train"][:, :2].sum(1) % cfg.p)


@pytest.fixture(scope="module")
def transformer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_experiment("grokking-transformer", tmp_path_factory.mktemp("gt"), preset="quick")


def test_grokking_transformer_quick(transformer: Path) -> None:
    summary = json.loads((transformer / "summary.json").read_text())
    wd1, wd0 = summary["conditions"]["wd=1"], summary["conditions"]["wd=0"]
    # memorized within 50 steps, generalized 10x later; the control memorizes and stays
    assert wd1["train99_step"] <= 50 and wd0["train99_step"] <= 50
    assert wd1["test99_step"] >= 8 * wd1["train99_step"]
    assert wd1["last_step"] == math.ceil(1.5 * wd1["test99_step"]) == wd0["last_step"]
    assert wd0["test99_step"] is None and wd0["best_test_acc"] < 0.6
    rank1, rank0 = (w["rank"]["normalized_entropy"] for w in (wd1, wd0))
    assert set(wd1["rank_matrices"]) == {"W_E", "W_Q", "W_K", "W_V", "W_O", "W_in", "W_out",
                                         "W_U"}  # fmt: skip
    assert rank1["mean_drop"] > 0.25 and rank0["mean_drop"] < 0.05
    # at this learning rate (10x the source's) the rank falls fastest soon after memorizing,
    # long before the grokking step (0.16 to 0.33 of it in seeds 0-2)
    assert rank1["steepest_drop_over_test99"] < 0.5
    for d in ("effective_rank", "rank_entropy"):  # the three definitions agree in direction
        assert wd1["rank"][d]["mean_drop"] > wd0["rank"][d]["mean_drop"] + 0.1

    rows = {r["id"]: r for r in json.loads((transformer / "claims.json").read_text())}
    assert list(rows) == CLAIM_IDS
    assert rows["rank_falls_with_weight_decay"]["per_seed"] == [rank1["mean_drop"]]
    assert rows["rank_drop_coincides_with_grokking"]["verdict"] == "not met"
    assert "modulus 31, not 113." in rows["grokked_with_weight_decay"]["deviations"]
    # the claims' rank is the entropy of the checkpoint's normalized singular values / ln 31
    last = sorted((transformer / "checkpoints" / "wd_1").glob("*.safetensors"))[-1]
    s = np.linalg.svd(load_file(str(last))["W_U"].astype(np.float64), compute_uv=False)
    p = s / s.sum()
    final = rank1["matrices"]["W_U"]["final"]
    assert final == pytest.approx(-(p * np.log(p)).sum() / math.log(31), rel=1e-5)
    manifest = json.loads((transformer / "manifest.json").read_text())
    assert manifest["settings"]["device"] == "cpu" and manifest["name"] == "grokking-transformer"
    assert_drawn(transformer / "figures" / "curves.png")


# --- the MLP -----------------------------------------------------------------------------------


def test_cli_runs_an_experiment_and_the_same_seed_gives_the_same_numbers(tmp_path: Path) -> None:
    args = ["experiment", "grokking", "--quiet"] + [a for s in TINY for a in ("--set", s)]
    first = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a"), "--seed", "3"])
    assert first.exit_code == 0, first.output
    rows = json.loads((tmp_path / "a" / "claims.json").read_text())
    assert [r["id"] for r in rows] == CLAIM_IDS
    for r in rows:  # one line per claim, as print_claims writes it
        line = f"{r['verdict']}  {r['id']}: {spread(r)} (criterion: {r['criterion']})"
        assert line in first.output.splitlines()
    assert (
        "not met  grokked_with_weight_decay: yes in 0 of 1 seed "
        "(criterion: grokked_with_weight_decay is true)"
    ) in first.output
    assert "rank_drop_coincides_with_grokking: undefined in every seed" in first.output
    second = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b"), "--seed", "3"])
    assert second.exit_code == 0, second.output
    a, b = (pd.read_parquet(tmp_path / x / "metrics.parquet") for x in ("a", "b"))
    pd.testing.assert_frame_equal(a, b)
    ta, tb = (pd.read_parquet(tmp_path / x / "trajectories.parquet") for x in ("a", "b"))
    pd.testing.assert_frame_equal(ta.drop(columns="checkpoint"), tb.drop(columns="checkpoint"))
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["settings"]["seed"] == 3 and manifest["settings"]["p"] == 11
    assert sorted(manifest["settings"]["weight_decays"]) == [0.0, 1.0]
    # six checkpoints (steps 0..30 log-spaced) per condition, each a plain safetensors file
    ckpts = sorted((tmp_path / "a" / "checkpoints" / "wd_1").glob("*.safetensors"))
    assert [int(p.stem.split("_")[1]) for p in ckpts] == log_schedule(30, 5)


def test_a_run_over_seeds_draws_every_seed(tmp_path: Path) -> None:
    out = run_experiment("grokking", tmp_path / "s", overrides=TINY, seeds=[0, 1])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["figures"] == ["figures/claims.png", "figures/curves.png"]
    assert_drawn(out / "figures" / "curves.png")
    rows = json.loads((out / "claims.json").read_text())
    assert all(r["n_seeds"] == 2 for r in rows)
    assert rows[0]["deviations"][0].startswith("An MLP")


@pytest.fixture(scope="module")
def grok(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_experiment("grokking", tmp_path_factory.mktemp("grok"), preset="quick")


def test_grokking_quick(grok: Path) -> None:
    summary = json.loads((grok / "summary.json").read_text())
    wd1, wd0 = summary["conditions"]["wd=1"], summary["conditions"]["wd=0"]
    # both memorize within a few hundred steps; only weight decay generalizes, much later
    assert wd1["train99_step"] < 500 and wd0["train99_step"] < 500
    assert wd1["test99_step"] is not None and wd1["test99_step"] > 4 * wd1["train99_step"]
    assert wd0["test99_step"] is None and wd0["final_test_acc"] < 0.1
    # the rank of the embedding and the first layer falls with weight decay, not without
    for name in ("embed.weight", "fc1.weight"):
        assert wd1["effective_rank"][name]["final"] < wd0["effective_rank"][name]["final"] - 3
        assert wd1["effective_rank"][name]["drop"] > 0.1
    rank1, rank0 = (w["rank"]["normalized_entropy"] for w in (wd1, wd0))
    assert rank1["mean_drop"] > rank0["mean_drop"] + 0.01
    # the steepest drop comes after memorizing, in the second half of the run
    assert 0.5 < rank1["steepest_drop_over_test99"] < 1.1
    rows = {r["id"]: r for r in json.loads((grok / "claims.json").read_text())}
    assert rows["grokked_with_weight_decay"]["verdict"] == "met"
    assert rows["no_grokking_without_weight_decay"]["verdict"] == "met"
    assert rows["rank_falls_with_weight_decay"]["per_seed"] == [rank1["mean_drop"]]

    metrics = pd.read_parquet(grok / "metrics.parquet")
    assert {
        "step",
        "train_loss",
        "test_loss",
        "train_acc",
        "test_acc",
        "condition",
        "weight_decay",
    } <= set(metrics.columns)
    traj = pd.read_parquet(grok / "trajectories.parquet")
    assert set(traj["condition"]) == {"wd=1", "wd=0"}
    # the tracked effective rank is the spectrum's, recomputed here from the checkpoint
    last = sorted((grok / "checkpoints" / "wd_1").glob("*.safetensors"))[-1]
    w = load_file(str(last))["fc1.weight"].astype(np.float64)
    s = np.linalg.svd(w, compute_uv=False)
    p = s / s.sum()
    row = traj[(traj["condition"] == "wd=1") & (traj["name"] == "fc1.weight")]
    assert row.sort_values("step")["effective_rank"].iloc[-1] == pytest.approx(
        math.exp(-(p * np.log(p)).sum()), rel=1e-5
    )
    assert_drawn(grok / "figures" / "curves.png")
    manifest = json.loads((grok / "manifest.json").read_text())
    assert set(manifest) == {"striate_version", "code", "kind", "source", "settings", "started",
                             "finished", "seconds", "figures", "tensors", "name", "about",
                             "preset", "torch_version", "conditions"}  # fmt: skip
    assert manifest["kind"] == "experiment" and manifest["name"] == "grokking"
    assert manifest["about"] == EXPERIMENTS["grokking"].about and manifest["about"]
    assert manifest["figures"] == ["figures/curves.png"]
    assert "grokked_with_weight_decay" in (grok / "index.html").read_text()
