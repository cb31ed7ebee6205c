"""`striate track` on a real training run (a small MLP trained here) and on planted series."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from striate.track import expand_checkpoints, track

STEPS = (0, 10, 30, 100, 300)


def _train_mlp(folder: Path, steps: tuple[int, ...] = STEPS, seed: int = 0) -> list[Path]:
    """A 16-64-32-4 MLP regressing a random teacher, AdamW, checkpoints at `steps`."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
        torch.nn.Linear(32, 4),
    )  # fmt: skip
    x = torch.randn(512, 16)
    y = x @ torch.randn(16, 4)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=0.1)
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for step in range(max(steps) + 1):
        if step in steps:
            saved.append(folder / f"ckpt_{step:06d}.pt")
            torch.save(net.state_dict(), saved[-1])
        loss = torch.nn.functional.mse_loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return saved


def test_track_a_trained_mlp(tmp_path: Path) -> None:
    paths = _train_mlp(tmp_path / "ckpts")
    result = track([str(tmp_path / "ckpts")], tmp_path / "run")
    assert [r.step for r in result.checkpoints] == list(STEPS)
    t = result.trajectories
    assert len(t) == len(STEPS) * 6 and set(t["step"]) == set(STEPS)  # 3 weights + 3 biases
    # every trajectory value agrees with a direct computation on the checkpoint
    for step, path in zip(STEPS, paths, strict=True):
        w = torch.load(path, weights_only=True)["2.weight"].double().numpy()
        s = np.linalg.svd(w, compute_uv=False)
        row = t[(t["step"] == step) & (t["name"] == "2.weight")].iloc[0]
        assert row["stable_rank"] == pytest.approx((s**2).sum() / s[0] ** 2, rel=1e-6)
        assert row["frobenius_norm"] == pytest.approx(np.linalg.norm(w), rel=1e-6)
    d = result.dynamics
    assert set(d["tensor"]) == {"0.weight", "2.weight", "4.weight"}
    w0 = torch.load(paths[0], weights_only=True)["2.weight"].double().numpy()
    w3 = torch.load(paths[3], weights_only=True)["2.weight"].double().numpy()
    row = d[(d["step"] == 100) & (d["tensor"] == "2.weight")].iloc[0]
    assert row["update0_norm"] == pytest.approx(np.linalg.norm(w3 - w0), rel=1e-6)
    final = d[d["step"] == 300]
    np.testing.assert_allclose(final["overlap_left_final"], 1.0, atol=1e-9)
    first = d[d["step"] == 0]
    assert first["update_prev_norm"].isna().all() and (first["update0_norm"] == 0).all()
    # consecutive layers chain: 0 -> 2 and 2 -> 4, at every step
    a = result.alignment
    assert len(a) == 2 * len(STEPS)
    assert ((a["alignment"] >= 0) & (a["alignment"] <= 1)).all()
    for name in ("trajectories", "dynamics", "alignment"):
        assert (tmp_path / "run" / f"{name}.parquet").is_file()
    assert (tmp_path / "run" / "images" / "track" / "weights.png").is_file()
    assert (tmp_path / "run" / "index.html").is_file()


def test_adding_a_checkpoint_scans_only_the_new_one(tmp_path: Path) -> None:
    paths = _train_mlp(tmp_path / "ckpts", steps=(0, 10, 30))
    track([str(p) for p in paths[:2]], tmp_path / "run")
    cache = tmp_path / "run" / "cache"
    before = {p.name: (p / "manifest.json").stat().st_mtime_ns for p in cache.iterdir()}
    assert len(before) == 2
    track([str(p) for p in paths], tmp_path / "run")
    after = {p.name: (p / "manifest.json").stat().st_mtime_ns for p in cache.iterdir()}
    assert len(after) == 3
    assert {k: after[k] for k in before} == before  # the first two came from the cache


def test_steps_from_names_globs_and_errors(tmp_path: Path) -> None:
    paths = _train_mlp(tmp_path / "c", steps=(0, 10, 30))
    refs = expand_checkpoints([str(tmp_path / "c" / "ckpt_*.pt")])
    assert [(r.step, r.path) for r in refs] == list(zip((0, 10, 30), paths, strict=True))
    refs = expand_checkpoints([str(p) for p in paths], steps=[5, 1, 3])
    assert [r.step for r in refs] == [1, 3, 5]
    from striate import StriateError

    with pytest.raises(StriateError, match="2 steps given for 3 checkpoints"):
        expand_checkpoints([str(p) for p in paths], steps=[1, 2])


def test_cli_track_with_metrics(tmp_path: Path) -> None:
    _train_mlp(tmp_path / "c", steps=(0, 10, 30))
    pd.DataFrame({"step": [0, 10, 30], "train_loss": [1.0, 0.5, 0.2]}).to_csv(tmp_path / "m.csv")
    done = subprocess.run(
        [sys.executable, "-m", "striate", "track", str(tmp_path / "c"), "--out",
         str(tmp_path / "run"), "--metrics", str(tmp_path / "m.csv"), "-q"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "images" / "track" / "curves.png").is_file()


def test_planted_series(tmp_path: Path) -> None:
    """W_t = U_t diag(s_t) V^T: u_1 turns by a known angle toward a direction outside the top 8,
    and the smallest directions are switched off one per checkpoint (rank decays on schedule)."""
    from safetensors.torch import save_file

    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.standard_normal((32, 32)))
    v, _ = np.linalg.qr(rng.standard_normal((24, 24)))
    angles = [0.0, 0.2, 0.5, 0.9]
    for t, theta in enumerate(angles):
        s = np.linspace(10, 1, 24)
        s[24 - 2 * t :] = 0.0  # rank 24, 22, 20, 18
        ut = u[:, :24].copy()
        ut[:, 0] = np.cos(theta) * u[:, 0] + np.sin(theta) * u[:, 30]
        w = (ut * s) @ v.T
        path = tmp_path / "series" / f"step_{t * 100}.safetensors"
        path.parent.mkdir(exist_ok=True)
        save_file({"layers.0.weight": torch.from_numpy(w.astype(np.float32))}, path)
    result = track([str(tmp_path / "series")], tmp_path / "run")
    d = result.dynamics.set_index("step")
    for t, theta in enumerate(angles):
        expected = (7 + np.cos(theta - angles[-1]) ** 2) / 8  # top 8: one direction turned
        assert d.loc[t * 100, "overlap_left_final"] == pytest.approx(expected, abs=1e-5)
        assert d.loc[t * 100, "overlap_right_final"] == pytest.approx(1.0, abs=1e-5)
    ranks = result.trajectories.set_index("step")["numerical_rank"]
    assert [int(ranks[t * 100]) for t in range(4)] == [24, 22, 20, 18]


def test_mixed_formats_and_dtypes(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    paths = _train_mlp(tmp_path / "c", steps=(0, 10, 30))
    last = torch.load(paths[-1], weights_only=True)
    save_file({k: v.to(torch.bfloat16) for k, v in last.items()}, tmp_path / "c" / "ckpt_30.st")
    bf16 = tmp_path / "final_000030.safetensors"
    (tmp_path / "c" / "ckpt_30.st").rename(bf16)
    result = track([str(paths[0]), str(paths[1]), str(bf16)], tmp_path / "run")
    assert [r.step for r in result.checkpoints] == [0, 10, 30]
    dtypes = result.trajectories.groupby("step")["dtype"].first()
    assert (dtypes[0], dtypes[30]) == ("float32", "BF16")
    w30 = last["2.weight"].to(torch.bfloat16).double().numpy()
    w0 = torch.load(paths[0], weights_only=True)["2.weight"].double().numpy()
    row = result.dynamics.query("step == 30 and tensor == '2.weight'").iloc[0]
    assert row["update0_norm"] == pytest.approx(np.linalg.norm(w30 - w0), rel=1e-6)
