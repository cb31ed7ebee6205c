"""TensorFlow.js weights manifests: hand-written shards in tmp_path, then the face-api sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import striate
from striate import StriateError
from striate.checkpoint import Checkpoint
from striate.checkpoint.tfjs_format import TFJSCheckpoint

RNG = np.random.default_rng(0)
DENSE = RNG.standard_normal((3, 5, 7)).astype(np.float32)  # split across two shard files
Q8 = np.array([[0, 1, 2], [127, 254, 255]], dtype=np.uint8)
Q8_SCALE, Q8_MIN = 0.0123, -1.5
Q16 = np.array([0, 1, 65535, 300, 7], dtype=np.uint16)
Q16_SCALE, Q16_MIN = 1e-4, 0.25
HALF = RNG.standard_normal((2, 11)).astype(np.float16)
COUNTS = np.array([-3, 0, 5, 2**31 - 1], dtype=np.int32)
FLAGS = np.array([True, False, True])


def _weights() -> list[dict[str, Any]]:
    return [
        {"name": "dense/kernel", "shape": [3, 5, 7], "dtype": "float32"},
        {"name": "q8", "shape": [2, 3], "dtype": "float32",
         "quantization": {"dtype": "uint8", "scale": Q8_SCALE, "min": Q8_MIN}},
        {"name": "q16", "shape": [5], "dtype": "float32",
         "quantization": {"dtype": "uint16", "scale": Q16_SCALE, "min": Q16_MIN}},
        {"name": "half", "shape": [2, 11], "dtype": "float32",
         "quantization": {"dtype": "float16"}},
        {"name": "counts", "shape": [4], "dtype": "int32"},
        {"name": "flags", "shape": [3], "dtype": "bool"},
        {"name": "scalar", "shape": [], "dtype": "float32"},
    ]  # fmt: skip


def _write(folder: Path, manifest_name: str = "w-weights_manifest.json", **wrap: Any) -> Path:
    """Two groups: group 1 (all dtypes) over shards a.bin + b.bin, group 2 one tensor in c.bin."""
    arrays = (DENSE, Q8, Q16, HALF, COUNTS, FLAGS.astype(np.uint8), np.float32(2.5))
    stream = b"".join(a.tobytes() for a in arrays)
    cut = DENSE.nbytes // 3 + 2  # mid-tensor, mid-element
    (folder / "a.bin").write_bytes(stream[:cut])
    (folder / "b.bin").write_bytes(stream[cut:])
    (folder / "c.bin").write_bytes(np.arange(6, dtype=np.float32).tobytes())
    manifest: Any = [
        {"paths": ["a.bin", "b.bin"], "weights": _weights()},
        {"paths": ["c.bin"], "weights": [{"name": "g2", "shape": [2, 3], "dtype": "float32"}]},
    ]
    if wrap:
        manifest = {**wrap, "weightsManifest": manifest}
    path = folder / manifest_name
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return path


def _check_round_trip(ckpt: Checkpoint) -> None:
    assert ckpt.format == "tfjs"
    assert ckpt.names() == [w["name"] for w in _weights()] + ["g2"]
    np.testing.assert_array_equal(ckpt.read("dense/kernel"), DENSE)
    # closed form of the affine quantization, computed as TF.js does (JS doubles -> float32)
    np.testing.assert_array_equal(ckpt.read("q8"), (Q8 * Q8_SCALE + Q8_MIN).astype(np.float32))
    np.testing.assert_allclose(ckpt.read("q8")[1, 2], 255 * 0.0123 - 1.5, rtol=1e-7)
    np.testing.assert_array_equal(ckpt.read("q16"), (Q16 * Q16_SCALE + Q16_MIN).astype(np.float32))
    np.testing.assert_array_equal(ckpt.read("half"), HALF.astype(np.float32))
    np.testing.assert_array_equal(ckpt.read("counts"), COUNTS.astype(np.float32))
    np.testing.assert_array_equal(ckpt.read("flags"), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(ckpt.read("scalar"), np.float32(2.5))
    np.testing.assert_array_equal(ckpt.read("g2"), np.arange(6.0).reshape(2, 3))


def test_manifest_round_trip(tmp_path: Path) -> None:
    path = _write(tmp_path)
    with striate.open(path) as ckpt:
        assert isinstance(ckpt, TFJSCheckpoint)
        _check_round_trip(ckpt)
        assert ckpt.files == [path, tmp_path / "a.bin", tmp_path / "b.bin", tmp_path / "c.bin"]


def test_info_is_as_stored(tmp_path: Path) -> None:
    ckpt = striate.open(_write(tmp_path))
    got = {n: (i.shape, i.dtype, i.nbytes, i.file.name) for n in ckpt for i in [ckpt.info(n)]}
    assert got == {
        "dense/kernel": ((3, 5, 7), "float32", 420, "a.bin"),
        "q8": ((2, 3), "uint8", 6, "b.bin"),
        "q16": ((5,), "uint16", 10, "b.bin"),
        "half": ((2, 11), "float16", 44, "b.bin"),
        "counts": ((4,), "int32", 16, "b.bin"),
        "flags": ((3,), "bool", 3, "b.bin"),
        "scalar": ((), "float32", 4, "b.bin"),
        "g2": ((2, 3), "float32", 24, "c.bin"),
    }


def test_model_json_with_weights_manifest(tmp_path: Path) -> None:
    topology = {"class_name": "Sequential", "config": {"layers": ["x" * 1000] * 400}}
    path = _write(tmp_path, "model.json", format="layers-model", modelTopology=topology)
    assert path.stat().st_size > 300_000  # the key lies past the first sniffed block
    with striate.open(path) as ckpt:
        _check_round_trip(ckpt)
        assert ckpt.metadata == {"format": "layers-model"}


def test_missing_shard(tmp_path: Path) -> None:
    path = _write(tmp_path)
    (tmp_path / "b.bin").unlink()
    with pytest.raises(StriateError, match=r"w-weights_manifest\.json: tensor 'dense/kernel': "
                       r"missing shard file\(s\) b\.bin beside the manifest"):  # fmt: skip
        striate.open(path)


def test_truncated_shard(tmp_path: Path) -> None:
    path = _write(tmp_path)
    with (tmp_path / "b.bin").open("r+b") as fh:
        fh.truncate(fh.seek(0, 2) - 1)
    ckpt = striate.open(path)
    np.testing.assert_array_equal(ckpt.read("dense/kernel"), DENSE)  # the rest still reads
    with pytest.raises(StriateError, match=r"b\.bin: tensor 'scalar': bytes 499\.\.503 of the"):
        ckpt.read("scalar")


def test_other_json_is_not_tfjs(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_type": "bert", "paths": [], "weights": []}))
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps([1, 2, 3]))
    for path in (config, listing):
        assert not TFJSCheckpoint.sniff(path, path.read_bytes()[:64])
        with pytest.raises(StriateError, match=r"no TF\.js weights manifest"):
            striate.open(path)
    manifest = _write(tmp_path)
    assert TFJSCheckpoint.sniff(manifest, b"")
    renamed = manifest.rename(tmp_path / "manifest.txt")
    assert not TFJSCheckpoint.sniff(renamed, b"")  # only .json files are looked into


@pytest.mark.sample
def test_face_recognition_sample() -> None:
    ckpt = striate.open("sample:face-recognition")
    assert ckpt.format == "tfjs"
    assert len(ckpt) == 117
    anat = striate.anatomy_of(ckpt)  # TF.js `filters` are [kh, kw, in, out] kernels
    assert anat.family == "convnet"
    assert anat["conv256_down_out/conv2/conv/filters"].layout == "hwio"
    n_params = sum(ckpt.info(n).numel for n in ckpt)
    assert n_params == 5_614_592
    assert ckpt.info("conv256_down_out/conv2/conv/filters").shape == (3, 3, 256, 256)
    fc = ckpt.info("fc")
    assert (fc.shape, fc.dtype) == ((256, 128), "uint8")
    assert sum(ckpt.info(n).dtype == "uint8" for n in ckpt) == 109
    # the tensors fill the one shard file exactly
    assert sum(ckpt.info(n).nbytes for n in ckpt) == fc.file.stat().st_size
    for name, w in ckpt.items():
        assert np.isfinite(w).all(), name
    w = ckpt.read("conv256_down_out/conv2/conv/filters")
    assert 1e-3 < float(w.std()) < 1.0 and float(np.abs(w).max()) < 10.0
    assert len(np.unique(w)) <= 256  # uint8-quantized: at most 256 levels
    # the smallest level is the manifest's `min` (q = 0): -0.04578405268052045 for fc
    assert float(ckpt.read("fc").min()) == pytest.approx(-0.04578405268052045, rel=1e-7)
