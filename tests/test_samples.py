"""The real packaged sample models, and the fetch-and-check path that brings them."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

import striate
from striate import StriateError, samples
from striate.checkpoint import Checkpoint


def _n_params(ckpt: Checkpoint) -> int:
    return sum(ckpt.info(n).numel for n in ckpt.names())


@pytest.mark.sample
def test_minilm(minilm: Checkpoint) -> None:
    anat = striate.anatomy_of(minilm)
    assert (minilm.format, anat.family, anat.n_layers, anat.hidden_size) == (
        "safetensors", "bert", 6, 384,
    )  # fmt: skip
    # BERT closed form: embeddings + 6 layers + pooler, plus the int64 position_ids buffer
    V, P, T, d, f, L = 30522, 512, 2, 384, 1536, 6
    per_layer = 4 * (d * d + d) + 2 * d + (d * f + f) + (f * d + d) + 2 * d
    assert _n_params(minilm) == (V + P + T) * d + 2 * d + L * per_layer + (d * d + d) + P
    assert len(minilm.names()) == 104
    assert [t.layer for t in anat.ffn] == list(range(6))
    first = anat.ffn[0]
    assert first.ffn_in == "encoder.layer.0.intermediate.dense.weight"
    assert first.ffn_out == "encoder.layer.0.output.dense.weight"
    assert minilm.info(first.ffn_in).shape == (f, d)
    w = minilm.read("encoder.layer.0.intermediate.dense.weight")
    assert w.dtype == np.float32 and w.shape == (f, d) and 0.01 < float(w.std()) < 0.2


@pytest.mark.sample
def test_smollm2(smollm2: Checkpoint) -> None:
    anat = striate.anatomy_of(smollm2)
    assert (smollm2.format, anat.family, anat.n_layers, anat.hidden_size) == (
        "gguf", "llama", 30, 576,
    )  # fmt: skip
    # LLaMA closed form: 9 query heads, 3 key/value heads of 64, SwiGLU 1536, tied embedding
    V, d, kv, f, L = 49152, 576, 3 * 64, 1536, 30
    per_layer = 2 * d * d + 2 * d * kv + 3 * d * f + 2 * d
    assert _n_params(smollm2) == V * d + L * per_layer + d
    assert len(anat.ffn) == 30 and all(t.ffn_gate is not None for t in anat.ffn)
    down = smollm2.info("blk.0.ffn_down.weight")
    assert (down.shape, down.file_shape, down.dtype) == ((576, 1536), (1536, 576), "Q4_1")


@pytest.mark.sample
def test_efficientnet(efficientnet: Checkpoint) -> None:
    anat = striate.anatomy_of(efficientnet)
    assert (efficientnet.format, anat.family) == ("pytorch", "convnet")
    assert len(efficientnet.names()) == 296
    assert _n_params(efficientnet) == 4_694_073  # 4,652,008 weights + BatchNorm running stats
    assert anat["_fc.weight"].role == "classifier"
    assert efficientnet.info("_fc.weight").shape == (1000, 1280)
    convs = [n for n, t in anat.tensors.items() if t.role == "conv"]
    assert efficientnet.info(convs[0]).shape == (32, 3, 3, 3)


def _fake_sample(tmp_path: Path, payload: bytes, sha256: str) -> tuple[samples.Sample, Path]:
    wheel = tmp_path / "fake-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("fake/w.npy", payload)
    sample = samples.Sample("fake", "test", "fake==1.0", {"fake/w.npy": sha256}, "fake/w.npy")
    return sample, wheel


def _npy_bytes(tmp_path: Path) -> bytes:
    np.save(tmp_path / "w.npy", np.arange(4.0))
    return (tmp_path / "w.npy").read_bytes()


def test_fetch_checks_and_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = _npy_bytes(tmp_path)
    sample, wheel = _fake_sample(tmp_path, payload, hashlib.sha256(payload).hexdigest())
    calls: list[str] = []

    def download(s: samples.Sample, into: Path) -> Path:
        calls.append(s.name)
        return wheel

    monkeypatch.setenv("STRIATE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(samples.SAMPLES, "fake", sample)
    monkeypatch.setattr(samples, "_download_wheel", download)
    np.testing.assert_array_equal(striate.open("sample:fake").read("w"), np.arange(4.0))
    striate.open("sample:fake")
    assert calls == ["fake"]  # second open comes from the cache
    assert samples.sample_path("fake") == tmp_path / "cache" / "samples" / "fake" / "fake" / "w.npy"


def test_checksum_mismatch_installs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample, wheel = _fake_sample(tmp_path, _npy_bytes(tmp_path), "0" * 64)
    monkeypatch.setenv("STRIATE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(samples.SAMPLES, "fake", sample)
    monkeypatch.setattr(samples, "_download_wheel", lambda s, into: wheel)
    with pytest.raises(StriateError, match=r"checksum mismatch for fake/w\.npy"):
        striate.open("sample:fake")
    assert not (tmp_path / "cache" / "samples" / "fake").exists()


def test_unknown_sample_lists_known_ones() -> None:
    with pytest.raises(StriateError, match=r"unknown sample 'nope' \(known samples: minilm, "):
        striate.open("sample:nope")


def test_download_failure_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIATE_CACHE", str(tmp_path / "cache"))
    bogus = samples.Sample("bogus", "x", "striate-no-such-package-xyz==9.9.9", {}, "x")
    monkeypatch.setitem(samples.SAMPLES, "bogus", bogus)
    with pytest.raises(StriateError, match=r"sample:bogus: could not download striate-no-such"):
        striate.open("sample:bogus")
