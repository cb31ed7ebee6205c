"""Cache and resume: a stopped scan (Ctrl-C, SIGKILL, full disk) resumes to the tables of an
uninterrupted one; an unchanged second scan analyses nothing; two scans never share a directory."""

from __future__ import annotations

import errno
import importlib
import json
import multiprocessing
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from striate import store
from striate.config import apply_overrides
from striate.errors import StriateError
from striate.run import Run
from striate.scan import ImagesConfig, ScanConfig, scan
from striate.scan.cache import CACHE_DIR

scan_module = importlib.import_module("striate.scan.pipeline")  # what the scan calls
NO_IMAGES = ScanConfig(images=ImagesConfig(enabled=False))
TABLES = ("tensors", "findings", "residual_dims", "ffn", "ffn_layers", "spectra")
RUN_SPECIFIC = {
    "started",
    "finished",
    "seconds",
    "stage_seconds",
    "cache",
}  # the manifest fields that may differ


def llama(folder: Path, *, d: int = 64, f: int = 128, layers: int = 1, ffn: bool = True) -> Path:
    """A LLaMA-named checkpoint of Gaussian weights (d: hidden size, f: FFN width)."""
    rng = np.random.default_rng(0)
    t = {"model.embed_tokens.weight": rng.standard_normal((256, d)),
         "model.norm.weight": 1 + 0.02 * rng.standard_normal(d)}  # fmt: skip
    shapes = {"self_attn.q_proj": (d, d), "self_attn.k_proj": (d, d), "self_attn.v_proj": (d, d),
              "self_attn.o_proj": (d, d)}  # fmt: skip
    if ffn:
        shapes |= {"mlp.gate_proj": (f, d), "mlp.up_proj": (f, d), "mlp.down_proj": (d, f)}
    for i in range(layers):
        for name, shape in shapes.items():
            t[f"model.layers.{i}.{name}.weight"] = 0.02 * rng.standard_normal(shape)
        t[f"model.layers.{i}.input_layernorm.weight"] = 1 + 0.02 * rng.standard_normal(d)
    t["model.layers.0.mlp.down_proj.weight" if ffn else "model.norm.weight"][5] *= 8  # findings
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: torch.from_numpy(v.astype(np.float32)) for k, v in t.items()},
              folder / "model.safetensors")  # fmt: skip
    config = {"model_type": "llama", "hidden_size": d, "num_attention_heads": 8,
              "num_key_value_heads": 8, "num_hidden_layers": layers,
              "intermediate_size": f}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture
def analysed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the tensors the scans of this test analyse (not taken from the cache)."""
    names: list[str] = []
    real = scan_module.analyse_tensor

    def counting(w: np.ndarray, part: Any, *args: Any) -> Any:
        names.append(part.name)
        return real(w, part, *args)

    monkeypatch.setattr(scan_module, "analyse_tensor", counting)
    return names


def assert_same_run(a: Run, b: Run) -> None:
    """Every table equal; the manifests equal but for the run-specific fields."""
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), obj=name)
    differ = {k for k in a.manifest.keys() | b.manifest.keys()
              if a.manifest.get(k) != b.manifest.get(k)}  # fmt: skip
    assert differ <= RUN_SPECIFIC


def cached(run_dir: Path) -> int:
    """Tensors cached (FFN layers and figures have keys with a `kind-` prefix)."""
    return sum("-" not in p.stem for p in (run_dir / CACHE_DIR).glob("*.pkl"))


def leftovers(run_dir: Path) -> list[Path]:
    return [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]


def wait_for(run_dir: Path, n: int, running: Callable[[], bool]) -> None:
    """Until `n` tensors of the scan into `run_dir` are cached (or it ended)."""
    deadline = time.monotonic() + 60
    while cached(run_dir) < n and running() and time.monotonic() < deadline:
        time.sleep(0.005)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_stopped_scans_resume_to_the_uninterrupted_tables(
    tmp_path: Path, analysed: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # layers enough that the command is still running when its first tensor is cached (with one
    # job per core, a 3-layer scan could end before the signal arrives on a loaded machine)
    model = llama(tmp_path / "model", d=384, f=768, layers=8)
    reference = scan(model, tmp_path / "reference", config=NO_IMAGES)
    n = len(reference.tensors)
    run_dir = tmp_path / "run"
    # Ctrl-C on the command line after the first tensor
    command = [sys.executable, "-m", "striate", "scan", str(model), "--out", str(run_dir),
               "--no-images", "--quiet", "--jobs", "1"]  # fmt: skip
    # the child takes Ctrl-C however this process treats SIGINT: an ignored signal is inherited
    # across exec (a shell's background job, `cmd &`, runs with SIGINT ignored), and a Python
    # started with SIGINT ignored never raises KeyboardInterrupt
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)  # fmt: skip
    wait_for(run_dir, 1, lambda: proc.poll() is None)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate()
    assert proc.returncode == 130, err
    assert re.fullmatch(
        rf"striate: interrupted: \d+ of {n} tensors done; rerun with --resume\n", err
    )
    assert not (run_dir / store.LOCK_FILE).exists()  # released on the way out
    # SIGKILL after half and after all but one (each resuming the one before; forked, as the
    # command's imports take seconds)
    for stop_at in (n // 2, n - 1):
        child = multiprocessing.get_context("fork").Process(
            target=scan, args=(model, run_dir), kwargs={"config": NO_IMAGES}
        )
        child.start()
        wait_for(run_dir, stop_at, child.is_alive)
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert not (run_dir / "manifest.json").exists()  # written last, by a complete scan
    done = cached(run_dir)
    assert n // 2 <= done <= n
    del analysed[:]
    resumed = scan(model, run_dir, config=NO_IMAGES)
    assert len(analysed) == n - done  # what the stopped scans finished is not analysed again
    assert "taking over the lock of pid" in capsys.readouterr().err  # the SIGKILLed scan's lock
    assert_same_run(resumed, reference)
    assert_same_run(Run.load(run_dir), Run.load(tmp_path / "reference"))
    assert leftovers(run_dir) == []
    assert not (run_dir / store.LOCK_FILE).exists()


def test_unchanged_second_scan_analyses_nothing_and_redraws_only_changed_images(
    tmp_path: Path, analysed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = llama(tmp_path / "model", ffn=False)
    first = scan(model, tmp_path / "run")
    n = len(first.tensors)
    assert len(analysed) == n and first.manifest["cache"] == {"reused": 0, "computed": n}
    depth: list[int] = []
    real_depth = scan_module.depth_figure_calls
    monkeypatch.setattr(
        scan_module, "depth_figure_calls", lambda *a: depth.append(1) or real_depth(*a)
    )
    del analysed[:]
    second = scan(model, tmp_path / "run")
    assert analysed == [] and depth == []  # nor the end-of-scan figures
    assert second.manifest["cache"] == {"reused": n, "computed": 0}
    assert second.manifest["figures"] == first.manifest["figures"]
    assert_same_run(first, second)
    # an image deleted, another drawn over (as by a scan with other settings): those two again
    images = first.tensors.set_index("name")["image"]
    gone, changed = "model.layers.0.self_attn.q_proj.weight", "model.norm.weight"
    original = (tmp_path / "run" / images[changed]).read_bytes()
    (tmp_path / "run" / images[gone]).unlink()
    (tmp_path / "run" / images[changed]).write_bytes(b"not the image")
    third = scan(model, tmp_path / "run")
    assert sorted(analysed) == sorted([gone, changed])
    assert (tmp_path / "run" / images[gone]).is_file()
    assert (tmp_path / "run" / images[changed]).read_bytes() == original
    assert_same_run(first, third)
    del analysed[:]
    scan(model, tmp_path / "run", resume=False)  # --no-resume: everything again
    assert len(analysed) == n and depth == [1]


def test_unchanged_second_scan_recomputes_no_ffn_layer_and_draws_no_curve(
    tmp_path: Path, analysed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from striate.report import curves
    from striate.scan import ffn as ffn_scan

    model = llama(tmp_path / "model", layers=3)
    first = scan(model, tmp_path / "run")
    assert len(first.ffn_layers) == 3 and not first.ffn.empty
    layers: list[int] = []
    drawn: list[Path] = []
    real_neurons, real_draw = ffn_scan.ffn_neurons, curves._draw
    monkeypatch.setattr(
        ffn_scan,
        "ffn_neurons",
        lambda layer, *a, **k: layers.append(layer) or real_neurons(layer, *a, **k),
    )
    monkeypatch.setattr(curves, "_draw", lambda rows, label, path: drawn.append(path)
                        or real_draw(rows, label, path))  # fmt: skip
    second = scan(model, tmp_path / "run")
    assert analysed[len(first.tensors) :] == [] and layers == [] and drawn == []
    assert_same_run(first, second)
    # one FFN tensor of layer 1 changed: that tensor, its layer's FFN and the curves again
    t = load_file(model / "model.safetensors")
    t["model.layers.1.mlp.up_proj.weight"][0, 0] += 1.0
    save_file(t, model / "model.safetensors")
    del analysed[:]
    third = scan(model, tmp_path / "run")
    assert analysed == ["model.layers.1.mlp.up_proj.weight"] and layers == [1]
    assert drawn  # the curves show that tensor's changed statistics
    fresh = scan(model, tmp_path / "fresh")
    assert_same_run(third, fresh)


def test_settings_or_bytes_changed_invalidate_just_what_they_touch(
    tmp_path: Path, analysed: list[str]
) -> None:
    model = llama(tmp_path / "model")
    scan(model, tmp_path / "run", config=NO_IMAGES)
    n = len(analysed)
    del analysed[:]
    other = apply_overrides(NO_IMAGES, ["lines.alpha=1e-4"])
    scan(model, tmp_path / "run", config=other)
    assert len(analysed) == n  # other settings: every tensor again
    assert cached(tmp_path / "run") == n  # ... and the old results are gone
    # one tensor's bytes change: only it is analysed again, and the FFN tables follow it
    path = model / "model.safetensors"
    tensors = load_file(path)
    tensors["model.layers.0.mlp.up_proj.weight"][3, :] *= 10
    save_file(tensors, path)
    del analysed[:]
    changed = scan(model, tmp_path / "run", config=other)
    assert analysed == ["model.layers.0.mlp.up_proj.weight"]
    assert_same_run(changed, scan(model, None, config=other))  # the same as without a cache


def test_broken_or_foreign_cache_entries_are_recomputed_never_run(
    tmp_path: Path, analysed: list[str]
) -> None:
    model = llama(tmp_path / "model")
    first = scan(model, tmp_path / "run", config=NO_IMAGES)
    entries = sorted((tmp_path / "run" / CACHE_DIR).glob("*.pkl"))
    entries[0].write_bytes(entries[0].read_bytes()[:50])  # torn
    marker = tmp_path / "ran"
    entries[1].write_bytes(pickle.dumps(_Evil(str(marker))))  # would mkdir when unpickled
    del analysed[:]
    again = scan(model, tmp_path / "run", config=NO_IMAGES)
    assert len(analysed) == 2
    assert not marker.exists()
    assert_same_run(first, again)


class _Evil:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (self.path,)


@contextmanager
def disk_full_after(monkeypatch: pytest.MonkeyPatch, k: int) -> Iterator[list[Path]]:
    """Every atomic write after the first `k` fails as on a full disk."""
    real = store.atomic_file
    written: list[Path] = []

    @contextmanager
    def atomic_file(path: Path, mode: str = "wb") -> Iterator[Any]:
        with real(path, mode) as fh:
            if len(written) >= k:
                raise OSError(errno.ENOSPC, "No space left on device")
            written.append(path)
            yield fh

    with monkeypatch.context() as m:
        m.setattr(store, "atomic_file", atomic_file)
        yield written


def test_full_disk_is_a_clear_error_and_keeps_what_was_written(
    tmp_path: Path, analysed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = llama(tmp_path / "model")
    reference = scan(model, tmp_path / "reference", config=NO_IMAGES)
    run_dir = tmp_path / "run"
    with disk_full_after(monkeypatch, 3), pytest.raises(StriateError) as err:
        scan(model, run_dir, config=NO_IMAGES)
    message = str(err.value)
    assert message.startswith(f"{run_dir}: disk full while writing {run_dir / CACHE_DIR}")
    assert message.endswith(
        "; 3 tensors done are kept in the cache (free space and rerun with --resume)"
    )
    assert cached(run_dir) == 3 and leftovers(run_dir) == []
    assert not (run_dir / store.LOCK_FILE).exists()
    del analysed[:]
    resumed = scan(model, run_dir, config=NO_IMAGES)
    assert len(analysed) == len(reference.tensors) - 3
    assert_same_run(resumed, reference)


def _lock(run_dir: Path, pid: int, host: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / store.LOCK_FILE).write_text(json.dumps({"pid": pid, "host": host}))


def test_a_second_scan_into_a_locked_directory_is_refused(tmp_path: Path) -> None:
    model = llama(tmp_path / "model", ffn=False)
    run_dir = tmp_path / "run"
    _lock(run_dir, os.getpid(), socket.gethostname())  # a live scan
    proc = subprocess.run(
        [sys.executable, "-m", "striate", "scan", str(model), "--out", str(run_dir), "-q"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        f"striate: error: {run_dir}: another striate scan (pid {os.getpid()} on "
        f"{socket.gethostname()}) is writing into this directory (wait for it or choose "
        "another --out; if none runs, delete .striate.lock)\n"
    )
    _lock(run_dir, 1, "elsewhere")  # another host's pid cannot be checked: refused too
    with pytest.raises(StriateError, match=r"\(pid 1 on elsewhere\)"):
        scan(model, run_dir, config=NO_IMAGES)
    assert json.loads((run_dir / store.LOCK_FILE).read_text())["host"] == "elsewhere"


def test_a_stale_lock_is_taken_over_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = llama(tmp_path / "model", ffn=False)
    run_dir = tmp_path / "run"
    dead = 2**31 - 1  # above any pid_max: no such process
    _lock(run_dir, dead, socket.gethostname())
    run = scan(model, run_dir, config=NO_IMAGES)
    assert run.manifest["tensors"] and not (run_dir / store.LOCK_FILE).exists()
    assert capsys.readouterr().err == (
        f"striate: note: {run_dir}: taking over the lock of pid {dead}, which no longer runs\n"
    )


def test_cached_results_of_other_code_are_not_reused(tmp_path: Path) -> None:
    from striate.store import code_digest

    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    before = code_digest(pkg)
    (pkg / "sub" / "b.py").write_text("y = 3\n")  # one analysis changed
    code_digest.cache_clear()
    assert code_digest(pkg) != before
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    code_digest.cache_clear()
    assert code_digest(pkg) == before
    assert len(code_digest()) == 32  # striate's own
