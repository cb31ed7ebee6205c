"""`scan --jobs` and `--device`: the same tables from threads, and from torch on any device.

Parallel scans must not depend on timing: the tables, the manifest's per-tensor statuses and
every picture are compared byte for byte with a one-job scan. The torch path of the spectra is
a second implementation of the same float64 computation; on the CPU it is checked against
numpy and against planted singular values, and on a GPU (when one is present) against the CPU.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from test_odd_tensors import D, odd_tensors
from test_resume import llama

import striate
from striate.analyses import spectrum
from striate.analyses.spectrum import SpectrumConfig, singular_values
from striate.devices import resolve_device
from striate.errors import StriateError
from striate.scan import ImagesConfig, ScanConfig
from striate.threads import MAX_AUTO_JOBS, auto_jobs, big_buffers

N = len(odd_tensors())  # tensors in the model
TABLES = ("tensors", "findings", "spectra", "ffn", "ffn_layers")


def _odd_model(folder: Path) -> Path:
    save_file(odd_tensors(), str(folder / "model.safetensors"))
    config = {"model_type": "llama", "hidden_size": D, "num_attention_heads": 4,
              "num_hidden_layers": 1, "intermediate_size": 4 * D}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _pictures(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in run_dir.rglob("*.png")}


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_jobs_give_the_same_tables_statuses_and_pictures(tmp_path: Path) -> None:
    model = _odd_model(tmp_path)
    one = striate.scan(model, out=tmp_path / "one", jobs=1)
    three = striate.scan(model, out=tmp_path / "three", jobs=3)
    for table in TABLES:
        pd.testing.assert_frame_equal(getattr(one, table), getattr(three, table), obj=table)
    assert list(one.manifest["tensors"].items()) == list(three.manifest["tensors"].items())
    assert one.manifest["cache"] == three.manifest["cache"] == {"reused": 0, "computed": N}
    pictures = _pictures(tmp_path / "one")
    assert len(pictures) >= N
    assert pictures == _pictures(tmp_path / "three")
    assert one.manifest["figures"] == three.manifest["figures"]


def test_jobs_draw_the_end_of_scan_figures_alike(tmp_path: Path) -> None:
    """FFN layer, similarity and depth figures, drawn side by side in the drawing processes."""
    model = llama(tmp_path / "model", layers=3)
    one = striate.scan(model, out=tmp_path / "one", jobs=1)
    two = striate.scan(model, out=tmp_path / "two", jobs=2)
    figures = one.manifest["figures"]
    assert len(figures["ffn"]) >= 6 and figures["spectra"] == ["images/spectra/depth.png"]
    assert two.manifest["figures"] == figures
    pictures = _pictures(tmp_path / "one")
    assert {f for group in figures.values() for f in group} <= set(pictures)
    assert pictures == _pictures(tmp_path / "two")


def test_jobs_resume_from_the_cache_to_the_same_tables(tmp_path: Path) -> None:
    model = _odd_model(tmp_path)
    first = striate.scan(model, out=tmp_path / "run", jobs=2)
    again = striate.scan(model, out=tmp_path / "run", jobs=2)
    assert again.manifest["cache"] == {"reused": N, "computed": 0}
    for table in TABLES:
        pd.testing.assert_frame_equal(getattr(first, table), getattr(again, table), obj=table)


def test_negative_jobs_are_an_error_and_zero_is_one_per_core(tmp_path: Path) -> None:
    with pytest.raises(StriateError, match=r"jobs must be 0 \(one per core\) or more, got -1"):
        striate.scan(_odd_model(tmp_path), jobs=-1)
    cores = len(os.sched_getaffinity(0))
    assert auto_jobs(0) == min(MAX_AUTO_JOBS, cores) and auto_jobs(3) == 3


def _planted(rows: int, cols: int, s: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((rows, len(s))))
    v, _ = np.linalg.qr(rng.standard_normal((cols, len(s))))
    return (u * s) @ v.T


@pytest.mark.parametrize("shape", [(300, 120), (120, 300), (64, 64)])
def test_torch_path_recovers_planted_singular_values(shape: tuple[int, int]) -> None:
    k = min(shape)
    s = np.geomspace(40.0, 0.05, k)  # lambda_M / lambda_1 ~ 1.6e-6: the Gram path
    m = _planted(*shape, s, seed=k)
    on_torch = singular_values(m, torch_device="cpu")
    np.testing.assert_allclose(on_torch, s, rtol=1e-9)
    np.testing.assert_allclose(on_torch, singular_values(m), rtol=1e-10)


def test_torch_path_falls_back_to_the_svd_on_a_rank_deficient_matrix() -> None:
    s = np.r_[np.geomspace(10.0, 1.0, 5), np.zeros(55)]
    m = _planted(200, 60, s[:5], seed=3)
    on_torch = singular_values(m, torch_device="cpu")
    np.testing.assert_allclose(on_torch[:5], s[:5], rtol=1e-12)
    assert np.all(on_torch[5:] < 1e-13)  # a Gram would give ~sqrt(eps) * s_1 here
    np.testing.assert_allclose(on_torch, singular_values(m), atol=1e-13)


def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    with pytest.raises(StriateError, match="device 'cuda:1' asked for, but torch sees no CUDA"):
        resolve_device("cuda:1")
    with pytest.raises(StriateError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda:1") == "cuda:1"


def test_scan_records_the_resolved_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = striate.scan(_odd_model(tmp_path))  # default "auto"
    assert run.manifest["settings"]["spectrum"]["device"] == "cpu"


def test_scan_through_torch_matches_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole spectra table of a real model, with the linear algebra in torch."""
    numpy_run = striate.scan("sample:cifar10-cnn", config=_no_images())
    used: list[str | None] = []

    def on_torch_cpu(self: SpectrumConfig) -> str:
        used.append(self.device)
        return "cpu"

    monkeypatch.setattr(spectrum.SpectrumConfig, "torch_device", on_torch_cpu)
    torch_run = striate.scan("sample:cifar10-cnn", config=_no_images())
    assert len(used) == len(numpy_run.spectra["tensor"].unique()) > 0
    _same_spectra(numpy_run, torch_run, rtol=1e-9)


def _no_images(device: str = "auto") -> ScanConfig:
    return ScanConfig(images=ImagesConfig(enabled=False), spectrum=SpectrumConfig(device=device))


def _same_spectra(a: striate.Run, b: striate.Run, rtol: float) -> None:
    assert a.spectra.shape == b.spectra.shape
    s, other = a.spectra["sigma"].to_numpy(), b.spectra["sigma"].to_numpy()
    s1 = a.spectra.groupby("tensor")["sigma"].transform("max").to_numpy()
    # above 1e-4 s_1 both paths are accurate; below, the Gram's absolute error (~1e-8 s_1)
    above = s > 1e-4 * s1
    np.testing.assert_allclose(s[above], other[above], rtol=rtol, atol=1e-12)
    assert np.all(np.abs(s - other)[~above] < 1e-7 * s1[~above])
    metrics = ["spectral_norm", "stable_rank", "alpha", "n_spikes", "numerical_rank"]
    pd.testing.assert_frame_equal(a.tensors[metrics], b.tensors[metrics], rtol=rtol)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch")
def test_scan_on_cuda_matches_the_cpu() -> None:
    cpu = striate.scan("sample:minilm", config=_no_images("cpu"))
    cuda = striate.scan("sample:minilm", config=_no_images("cuda"))
    assert cuda.manifest["settings"]["spectrum"]["device"] == "cuda"
    _same_spectra(cpu, cuda, rtol=1e-9)


def test_cli_jobs_and_device(tmp_path: Path) -> None:
    from test_cli import _striate

    model = _odd_model(tmp_path)
    done = _striate("scan", str(model), "--out", str(tmp_path / "run"), "--jobs", "2",
                    "--device", "cpu", "--no-images", "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["settings"]["spectrum"]["device"] == "cpu"
    assert manifest["stage_seconds"]["spectrum"] > 0
    if not torch.cuda.is_available():
        refused = _striate("scan", str(model), "--out", str(tmp_path / "gpu"), "--device", "cuda")
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines() == [
            "striate: error: device 'cuda' asked for, but torch sees no CUDA device "
            "(use --device cpu or auto)"
        ]


def test_a_batch_on_a_torch_device_gives_each_matrix_its_own_values() -> None:
    """`singular_values_batch` against `singular_values` one matrix at a time: a Gram-path
    matrix, a rank-deficient one (the SVD fallback), a zero and a NaN matrix, in one batch."""
    ms = [
        _planted(120, 40, np.geomspace(40.0, 0.05, 40), seed=1),
        _planted(120, 40, np.r_[np.geomspace(10.0, 1.0, 5), np.zeros(35)], seed=2),
        np.zeros((120, 40)),
        np.full((120, 40), np.nan),
        _planted(120, 40, np.linspace(3.0, 1.0, 40), seed=3).astype(np.float32),
    ]
    floors = [0.0, 0.0, 0.0, 0.0, 1e-3]
    batch = spectrum.singular_values_batch(ms, "cpu", floors)
    for m, floor, s in zip(ms, floors, batch, strict=True):
        np.testing.assert_allclose(s, singular_values(m, "cpu", floor), rtol=1e-12, atol=1e-13)
    assert np.all(batch[1][5:] < 1e-13) and not batch[2].any() and np.isnan(batch[3]).all()
    wide = [m.T for m in ms[:2]]  # rows < cols: the smaller Gram, of m m^T
    for m, s in zip(wide, spectrum.singular_values_batch(wide, "cpu", [0.0, 0.0]), strict=True):
        np.testing.assert_allclose(s, singular_values(m), rtol=1e-10, atol=1e-13)
    with pytest.raises(ValueError, match="one shape"):
        spectrum.singular_values_batch([ms[0], wide[0]], "cpu", [0.0, 0.0])


def test_spectra_on_a_torch_device_batch_and_match_numpy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`striate spectra` on a torch device (torch's CPU here) batches the matrices of one shape,
    a batch at a time, and writes the tables numpy writes, in the same order."""
    from striate.scan import spectra as spectra_module

    model = llama(tmp_path / "model", layers=4)
    numpy_tables = spectra_module.run_spectra(model, tmp_path / "numpy")
    batches: list[int] = []
    real = spectrum.singular_values_batch

    def counted(ms: list[np.ndarray], *args: object) -> list[np.ndarray]:
        batches.append(len(ms))
        return real(ms, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(spectrum.SpectrumConfig, "torch_device", lambda self: "cpu")
    monkeypatch.setattr(spectra_module, "singular_values_batch", counted)
    monkeypatch.setattr(spectra_module._Batches, "BATCH", 3)
    torch_tables = spectra_module.run_spectra(model, tmp_path / "torch")
    assert max(batches) == 3 and sum(batches) == numpy_tables["stable_rank"].notna().sum()
    assert list(torch_tables["name"]) == list(numpy_tables["name"])
    for column in ("spectral_norm", "stable_rank", "effective_rank", "mp_sigma"):
        np.testing.assert_allclose(torch_tables[column], numpy_tables[column], rtol=1e-9)
    sigma = [pd.read_parquet(tmp_path / d / "spectra.parquet") for d in ("numpy", "torch")]
    assert list(sigma[0]["tensor"]) == list(sigma[1]["tensor"])
    again = spectra_module.run_spectra(model, tmp_path / "torch")  # every batch was cached
    pd.testing.assert_frame_equal(again, torch_tables)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]  # fmt: skip


def _mapped_while_held(nbytes: int) -> int:
    """Bytes glibc holds in mmapped blocks while a buffer of `nbytes` just freed and taken
    again is alive (glibc's mallinfo2: `hblkhd`)."""
    mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    mallinfo2.restype = _Mallinfo2
    np.ones(nbytes // 8)  # allocated, filled, freed
    buffer = np.ones(nbytes // 8)
    mapped = int(mallinfo2().hblkhd)
    del buffer
    return mapped


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_big_buffers_keeps_freed_buffers_for_the_next_step_and_then_lets_them_go() -> None:
    """A 64 MB buffer: outside the block glibc maps it afresh (and unmaps it when freed, so each
    training step faults its pages in again); inside it comes from the heap, where a freed one
    stays for the next; after the block, glibc's defaults again."""
    nbytes = 64 << 20
    assert _mapped_while_held(nbytes) >= nbytes
    with big_buffers():
        assert _mapped_while_held(nbytes) < nbytes
    assert _mapped_while_held(nbytes) >= nbytes
