"""`--executor ray`: the same tasks on a local Ray instance of 2 workers give the same tables."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import save_file
from typer.testing import CliRunner

from striate import cli
from striate.errors import StriateError
from striate.executor import Executor, make_executor
from striate.experiments import LABS, resolve_config, run_lab, run_setting
from striate.experiments.reconstruction import sweep
from striate.experiments.superposition import sweep as sparsity_sweep
from striate.experiments.toy.instance import pack
from striate.run import Run
from striate.track import track

LAB = ("reconstruction", ["train.steps=200", "train.log_every=100"])


@pytest.fixture(scope="module")
def ray_executor() -> Iterator[Executor]:
    """A local Ray instance with 2 worker CPUs; the executor joins it (and leaves it running)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers lack tests/
    try:
        with make_executor("ray") as executor:
            yield executor
        assert ray.is_initialized(), "an executor leaves a Ray instance it did not start"
    finally:
        ray.shutdown()


def _slow_square(x: int) -> int:
    """Later items finish first, so results come back out of order unless collected in order."""
    if x < 0:
        raise StriateError(f"negative item {x}", hint="planted")
    time.sleep(0.1 * (4 - x))
    return x * x


def test_results_come_in_input_order_and_errors_as_raised(ray_executor: Executor) -> None:
    assert list(ray_executor.map(_slow_square, [0, 1, 2, 3])) == [0, 1, 4, 9]
    assert list(Executor().map(_slow_square, [0, 1, 2, 3])) == [0, 1, 4, 9]
    with pytest.raises(StriateError) as caught:
        list(ray_executor.map(_slow_square, [1, -7, 2]))
    assert type(caught.value) is StriateError
    assert str(caught.value) == "negative item -7 (planted)"


def _write_series(folder: Path) -> list[Path]:
    """A 12-20-8-3 MLP (one bias) at steps 0, 10 and 20."""
    rng = np.random.default_rng(5)
    shapes = {"0.weight": (20, 12), "0.bias": (20,), "2.weight": (8, 20), "4.weight": (3, 8)}
    weights = {n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()}
    folder.mkdir()
    paths = []
    for step in (0, 10, 20):
        weights = {n: w + 0.3 * rng.standard_normal(w.shape).astype(np.float32)
                   for n, w in weights.items()}  # fmt: skip
        paths.append(folder / f"step_{step:03d}.safetensors")
        save_file(weights, paths[-1])
    return paths


def test_track_on_ray_gives_the_local_tables(tmp_path: Path, ray_executor: Executor) -> None:
    paths = _write_series(tmp_path / "ckpts")
    series = [str(p) for p in [*paths, paths[-1]]]  # the last checkpoint twice: scanned once
    steps = [0, 10, 20, 30]
    local = track(series, tmp_path / "local", steps=steps)
    remote = track(series, tmp_path / "ray", steps=steps, executor=ray_executor)
    assert len(local.trajectories) == 4 * 4 and len(local.dynamics) == 3 * 4
    for name in ("trajectories", "dynamics", "alignment"):
        pd.testing.assert_frame_equal(getattr(remote, name), getattr(local, name), check_exact=True)
        on_disk = pd.read_parquet(tmp_path / "ray" / f"{name}.parquet")
        pd.testing.assert_frame_equal(
            on_disk, pd.read_parquet(tmp_path / "local" / f"{name}.parquet"), check_exact=True
        )
    assert len(list((tmp_path / "ray" / "cache").iterdir())) == 3
    track(series, tmp_path / "ray", steps=steps, executor=ray_executor)  # all from the cache
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "ray" / "trajectories.parquet"),
        pd.read_parquet(tmp_path / "local" / "trajectories.parquet"),
        check_exact=True,
    )


def test_lab_on_ray_gives_the_local_tables(tmp_path: Path, ray_executor: Executor) -> None:
    name, overrides = LAB
    config = resolve_config(LABS[name], "quick", overrides)
    assert len(pack(sweep(config), config.train.pad_elements)) >= 2, "one task would prove little"
    local = run_lab(name, tmp_path / "local", preset="quick", overrides=overrides)
    remote = run_lab(name, tmp_path / "ray", preset="quick", overrides=overrides,
                     executor=ray_executor)  # fmt: skip
    for table in ("lab", "features", "points"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(remote / f"{table}.parquet"),
            pd.read_parquet(local / f"{table}.parquet"),
            check_exact=True,
        )
    with np.load(local / "weights.npz") as a, np.load(remote / "weights.npz") as b:
        assert sorted(a.files) == sorted(b.files) and len(a.files) > 0
        for key in a.files:
            np.testing.assert_array_equal(b[key], a[key], err_msg=key)
    assert (remote / "summary.json").read_text() == (local / "summary.json").read_text()


def _write_models(folder: Path) -> list[str]:
    """Two tiny LLaMA-shaped models, one with a planted line in a residual dimension."""
    rng = np.random.default_rng(11)
    folder.mkdir()
    models = []
    for name, planted in (("alpha", False), ("beta", True)):
        d, f = 16, 24
        tensors = {"model.embed_tokens.weight": rng.standard_normal((40, d)),
                   "model.norm.weight": np.ones(d)}  # fmt: skip
        for i in range(2):
            p = f"model.layers.{i}."
            tensors |= {p + "self_attn.q_proj.weight": rng.standard_normal((d, d)),
                        p + "mlp.up_proj.weight": rng.standard_normal((f, d)),
                        p + "mlp.down_proj.weight": rng.standard_normal((d, f))}  # fmt: skip
        if planted:
            tensors["model.layers.1.mlp.up_proj.weight"][:, 5] *= 12.0
        path = folder / f"{name}.safetensors"
        save_file({k: v.astype(np.float32) for k, v in tensors.items()}, path)
        models.append(str(path))
    return models


def test_scan_of_two_models_on_ray_gives_the_local_tables(
    tmp_path: Path, ray_executor: Executor
) -> None:
    models = _write_models(tmp_path / "models")
    runner = CliRunner()
    for executor in ("local", "ray"):
        args = ["scan", *models, "--out", str(tmp_path / executor), "--no-images", "-q",
                "--executor", executor]  # fmt: skip
        done = runner.invoke(cli.app, args)
        assert done.exit_code == 0, done.output
    for name in ("alpha", "beta"):
        local, remote = Run.load(tmp_path / "local" / name), Run.load(tmp_path / "ray" / name)
        assert (
            local.manifest["source"]
            == remote.manifest["source"]
            == str(tmp_path / "models" / f"{name}.safetensors")
        )
        for table in ("tensors", "findings", "residual_dims", "spectra"):
            pd.testing.assert_frame_equal(
                getattr(remote, table), getattr(local, table), check_exact=True
            )
    beta = Run.load(tmp_path / "ray" / "beta").residual_dims
    assert 5 in set(beta["residual_dim"]), "the planted residual dimension is found"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--executor", "ray"],
            "--executor ray needs the 'ray' package, which is not installed "
            '(pip install "striate[ray]")',
        ),
        (["--executor", "dask"], "unknown executor 'dask' (one of local, ray)"),
        (["--ray-address", "auto"], "a Ray address goes with the ray executor (--executor ray)"),
    ],
)
def test_executor_errors_are_one_line(
    args: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    paths = _write_series(tmp_path / "ckpts")
    argv = ["striate", "track", str(paths[0]), str(paths[1]), "--out", str(tmp_path / "t"), *args]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("striate: error: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "t").exists(), "nothing ran"


def test_several_models_need_different_names(tmp_path: Path) -> None:
    with pytest.raises(StriateError, match="would both write to"):
        cli._run_dirs(["a/model.safetensors", "b/model.safetensors"], tmp_path)
    assert cli._run_dirs(["x/a.pt", "sample:minilm"], None) == [Path("runs/a"), Path("runs/minilm")]
    assert cli._run_dirs(["x/a.pt"], tmp_path / "here") == [tmp_path / "here"]


class _Overlap(Executor):
    """Passes tasks to `inner`, counting the most sweeps in flight at once."""

    name, in_process = "overlap", False

    def __init__(self, inner: Executor) -> None:
        self.inner, self.now, self.most, self.lock = inner, 0, 0, threading.Lock()

    def map(self, fn: Any, items: Any, **kwargs: Any) -> Iterator[Any]:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            yield from self.inner.map(fn, items, **kwargs)
        finally:
            with self.lock:
                self.now -= 1


def test_a_labs_seeds_share_the_workers_and_give_the_seeds_run_here(
    tmp_path: Path, ray_executor: Executor
) -> None:
    """A sweep of one group (fresh batches of one shape) per seed: on Ray every seed's sweep is
    under way at once, and each seed's tables and claims are those of the seed run here."""
    name, overrides = "geometry", ["train.steps=100", "train.log_every=50"]
    config = resolve_config(LABS[name], "quick", overrides)
    assert len(pack(sparsity_sweep(config), config.train.pad_elements)) == 1
    local = run_setting("lab", name, tmp_path / "local", overrides=overrides, seeds=[0, 1])
    overlap = _Overlap(ray_executor)
    remote = run_setting("lab", name, tmp_path / "ray", overrides=overrides, seeds=[0, 1],
                         executor=overlap)  # fmt: skip
    assert overlap.most == 2
    for seed in ("seed_000", "seed_001"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(remote / "seeds" / seed / "lab.parquet"),
            pd.read_parquet(local / "seeds" / seed / "lab.parquet"),
            check_exact=True,
        )
    assert (remote / "claims.json").read_text() == (local / "claims.json").read_text()
