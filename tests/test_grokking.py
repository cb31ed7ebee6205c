"""The grokking experiments: the MLP quick preset and the CLI run by seed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from striate.cli import app
from striate.experiments import EXPERIMENTS, run_experiment
from striate.experiments.harness import log_schedule

TINY = ["p=11", "steps=30", "checkpoints=5", "d_embed=8", "d_hidden=8", "eval_every=10"]


def test_cli_runs_an_experiment_and_the_same_seed_gives_the_same_numbers(tmp_path: Path) -> None:
    args = ["experiment", "grokking", "--quiet"] + [a for s in TINY for a in ("--set", s)]
    first = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a"), "--seed", "3"])
    assert first.exit_code == 0, first.output
    assert "grokked_with_weight_decay: no" in first.output
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
    assert summary["claims"]["grokked_with_weight_decay"]
    assert summary["claims"]["no_grokking_without_weight_decay"]
    # the rank of the embedding and the first layer falls with weight decay, not without
    for name in ("embed.weight", "fc1.weight"):
        assert wd1["effective_rank"][name]["final"] < wd0["effective_rank"][name]["final"] - 3
        assert wd1["effective_rank"][name]["drop"] > 0.1

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
    from safetensors.numpy import load_file

    w = load_file(str(last))["fc1.weight"].astype(np.float64)
    s = np.linalg.svd(w, compute_uv=False)
    p = s / s.sum()
    row = traj[(traj["condition"] == "wd=1") & (traj["name"] == "fc1.weight")]
    assert row.sort_values("step")["effective_rank"].iloc[-1] == pytest.approx(
        math.exp(-(p * np.log(p)).sum()), rel=1e-5
    )
    for f in ("curves.png",):
        assert (grok / "figures" / f).stat().st_size > 10_000
    manifest = json.loads((grok / "manifest.json").read_text())
    assert set(manifest) == {"striate_version", "kind", "source", "settings", "started",
                             "finished", "seconds", "figures", "tensors", "name", "about",
                             "preset", "torch_version", "conditions"}  # fmt: skip
    assert manifest["kind"] == "experiment" and manifest["name"] == "grokking"
    assert manifest["about"] == EXPERIMENTS["grokking"].about and manifest["about"]
    assert manifest["figures"] == ["figures/curves.png"]
    assert "grokked_with_weight_decay" in (grok / "index.html").read_text()
