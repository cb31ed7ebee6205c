"""HDF5 and Keras `.keras`: dataset walking, Keras 2 order, skipped entries, zip members."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("h5py", reason="the hdf5 extra is not installed")

import h5py

from striate import StriateError
from striate.checkpoint import open_checkpoint
from striate.samples import sample_path

RNG = np.random.default_rng(0)


def test_nested_groups_round_trip(tmp_path: Path) -> None:
    arrays = {
        "encoder/block_2/w": RNG.standard_normal((3, 5)).astype(np.float32),
        "encoder/block_10/deeper/still/b": RNG.standard_normal((2, 3, 5)),
        "encoder/block_10/w": RNG.standard_normal((7,)).astype(np.float16),
        "head/ids": RNG.integers(-1000, 1000, size=(11,)).astype(np.int32),
        "head/mask": RNG.integers(0, 2, size=(13,)).astype(bool),
        "head/step": np.array(7, dtype=np.int64),
        "top": RNG.integers(0, 256, size=(1, 17)).astype(np.uint8),
    }
    with h5py.File(tmp_path / "m.weights", "w") as f:  # no .h5 suffix: found by signature
        for name, a in arrays.items():
            f.create_dataset(name, data=a)
    with open_checkpoint(tmp_path / "m.weights") as ckpt:
        assert ckpt.format == "hdf5"
        assert ckpt.names() == list(arrays)  # natural order: block_2 before block_10
        assert ckpt.skipped == {} and ckpt.metadata == {}
        for name, a in arrays.items():
            info = ckpt.info(name)
            assert (info.shape, info.dtype, info.nbytes) == (a.shape, a.dtype.name, a.nbytes)
            np.testing.assert_array_equal(ckpt.read(name), a.astype(np.float32))


def test_compressed_dataset_reports_stored_bytes(tmp_path: Path) -> None:
    a = np.tile(np.arange(64, dtype=np.float32), (64, 1))  # compresses well
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f.create_dataset("w", data=a, compression="gzip", chunks=(16, 64))
    with open_checkpoint(tmp_path / "m.h5") as ckpt:
        assert 0 < ckpt.info("w").nbytes < a.nbytes // 4
        np.testing.assert_array_equal(ckpt.read("w"), a)


def test_creation_order_kept_when_tracked(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "m.h5", "w", track_order=True) as f:
        for name in ["zeta", "alpha", "mid"]:
            f.create_dataset(name, data=np.zeros(2))
    assert open_checkpoint(tmp_path / "m.h5").names() == ["zeta", "alpha", "mid"]


def _keras2_file(path: Path) -> dict[str, np.ndarray]:
    """A Keras 2 `model.save("x.h5")` layout: layer order in attributes, not in names."""
    layers = {
        "dense_10": {"kernel:0": (5, 3), "bias:0": (3,)},
        "conv2d": {"kernel:0": (3, 3, 2, 5), "bias:0": (5,)},
        "flatten": {},
        "batch_normalization": {"gamma:0": (5,), "beta:0": (5,), "moving_mean:0": (5,)},
    }
    written = {}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.9.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {}})
        weights = f.create_group("model_weights")
        weights.attrs["layer_names"] = np.array([n.encode() for n in layers])
        for layer, params in layers.items():
            group = weights.create_group(layer)
            group.attrs["weight_names"] = np.array([f"{layer}/{p}".encode() for p in params])
            for param, shape in params.items():
                name = f"model_weights/{layer}/{layer}/{param}"
                written[name] = RNG.standard_normal(shape).astype(np.float32)
                f.create_dataset(name, data=written[name])
        f.create_dataset("optimizer_weights/Adam/iter:0", data=np.int64(1200))
    return written | {"optimizer_weights/Adam/iter:0": np.array(1200)}


def test_keras2_layout_order_and_metadata(tmp_path: Path) -> None:
    written = _keras2_file(tmp_path / "model.h5")
    with open_checkpoint(tmp_path / "model.h5") as ckpt:
        assert ckpt.names() == list(written)  # layer_names, then weight_names order
        assert ckpt.info("model_weights/conv2d/conv2d/kernel:0").shape == (3, 3, 2, 5)  # as stored
        assert ckpt.metadata == {
            "keras_version": "2.9.0",
            "backend": "tensorflow",
            "model_config": {"class_name": "Sequential", "config": {}},
        }
        for name, a in written.items():
            np.testing.assert_array_equal(ckpt.read(name), a)


def test_non_numeric_entries_are_skipped_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "other.h5").write_bytes(b"")
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f.create_dataset("w", data=np.ones(3, np.float32))
        f.create_dataset("notes", data=["hello", "world"], dtype=h5py.string_dtype())
        f.create_dataset("fixed", data=np.array([b"ab", b"cd"]))
        f.create_dataset("record", data=np.zeros(2, dtype=[("a", "f4"), ("b", "i4")]))
        f.create_dataset("spectrum", data=np.ones(4, np.complex64))
        f.create_dataset("nothing", data=h5py.Empty("f4"))
        f["alias"] = h5py.SoftLink("/w")
        f["elsewhere"] = h5py.ExternalLink("other.h5", "/x")
    with open_checkpoint(tmp_path / "m.h5") as ckpt:
        assert ckpt.names() == ["w"]
        reasons = ckpt.skipped
    assert reasons["notes"].startswith("strings, not numbers")
    assert reasons["fixed"] == "strings, not numbers (dtype |S2)"
    assert reasons["record"].startswith("not numeric (dtype")
    assert reasons["spectrum"].startswith("complex values")
    assert reasons["nothing"] == "empty dataset (no dataspace)"
    assert reasons["alias"] == "soft link to /w (listed under its own name)"
    assert reasons["elsewhere"] == "external link to other.h5:/x (not followed)"
    assert len(reasons) == 7


def test_reading_after_close_is_an_error(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f.create_dataset("w", data=np.ones(3))
    ckpt = open_checkpoint(tmp_path / "m.h5")
    ckpt.close()
    assert ckpt.info("w").shape == (3,)  # headers stay known
    with pytest.raises(StriateError, match=r"m\.h5: tensor 'w': the checkpoint is closed"):
        ckpt.read("w")


def test_missing_h5py_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f.create_dataset("w", data=np.ones(3))
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now raises ImportError
    with pytest.raises(StriateError, match=r"m\.h5: .*needs the \'h5py\' package.*striate\[hdf5\]"):
        open_checkpoint(tmp_path / "m.h5")


# --- Keras 3 .keras archives -----------------------------------------------------------------


def _keras3_weights() -> tuple[bytes, dict[str, np.ndarray]]:
    arrays = {
        "layers/conv2d/vars/0": RNG.standard_normal((3, 3, 3, 7)).astype(np.float32),
        "layers/conv2d/vars/1": RNG.standard_normal((7,)).astype(np.float32),
        "layers/dense/vars/0": RNG.standard_normal((7, 5)).astype(np.float16),
        "layers/dense/vars/1": RNG.standard_normal((5,)).astype(np.float16),
    }
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for name, a in arrays.items():
            f.create_dataset(name, data=a)
        f["vars"] = np.zeros(0, np.float32)  # an empty tensor is still a tensor
    return buffer.getvalue(), arrays | {"vars": np.zeros(0, np.float32)}


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_keras_archive_round_trip(tmp_path: Path, compression: int) -> None:
    weights, arrays = _keras3_weights()
    config = {"module": "keras", "class_name": "Sequential", "config": {"name": "seq"}}
    with zipfile.ZipFile(tmp_path / "m.keras", "w", compression=compression) as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.5.0", "date_saved": "x"}))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", weights)
    with open_checkpoint(tmp_path / "m.keras") as ckpt:
        assert ckpt.format == "keras"
        assert ckpt.names() == list(arrays)
        assert ckpt.metadata == {
            "model_config": config,
            "keras_version": "3.5.0",
            "date_saved": "x",
        }
        for name, a in arrays.items():
            info = ckpt.info(name)
            assert (info.shape, info.dtype, info.file) == (
                a.shape,
                a.dtype.name,
                tmp_path / "m.keras",
            )
            np.testing.assert_array_equal(ckpt.read(name), a.astype(np.float32))


def test_keras_suffix_without_weights_member(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "m.keras", "w") as zf:
        zf.writestr("config.json", "{}")
    with pytest.raises(StriateError, match=r"m\.keras: no model\.weights\.h5 in this zip"):
        open_checkpoint(tmp_path / "m.keras")


# --- real models (striate sample models, fetched once into the cache) ----------------------


@pytest.mark.sample
def test_cifar10_keras2_cnn() -> None:
    path = sample_path("cifar10-cnn")
    with open_checkpoint(path) as ckpt:
        model = [n for n in ckpt.names() if n.startswith("model_weights/")]
        assert sum(ckpt.info(n).numel for n in model) == 969_418
        assert ckpt.info("model_weights/conv2d_5/conv2d_5/kernel:0").shape == (3, 3, 64, 64)
        assert model[:3] == [  # the model's order, from layer_names / weight_names
            "model_weights/conv2d/conv2d/kernel:0",
            "model_weights/conv2d/conv2d/bias:0",
            "model_weights/batch_normalization/batch_normalization/gamma:0",
        ]
        assert ckpt.metadata["keras_version"] == "2.9.0"
        assert ckpt.metadata["model_config"]["class_name"] == "Sequential"


@pytest.mark.sample
def test_vgg16_trunk_keras3_weights() -> None:
    path = sample_path("vgg16-hed")
    with open_checkpoint(path) as ckpt:
        assert len(ckpt) == 38
        assert sum(ckpt.info(n).numel for n in ckpt.names()) == 14_716_171
        trunk = [n for n in ckpt.names() if n.startswith("block")]
        assert len(trunk) == 26  # 13 convs, kernel and bias each
        assert sum(ckpt.info(n).numel for n in trunk) == 14_714_688  # VGG16's conv layers
        kernel = ckpt.info("block5/layers/conv2d_2/vars/0")
        assert (kernel.shape, kernel.dtype) == ((3, 3, 512, 512), "float32")
        assert ckpt.read("block5/layers/conv2d_2/vars/0").shape == (3, 3, 512, 512)
