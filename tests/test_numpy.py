"""NumPy .npy / .npz round trips; object arrays (pickles) are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import striate
from striate import StriateError


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32, np.uint8])
def test_npy_round_trip(tmp_path: Path, dtype: type) -> None:
    values = (np.random.default_rng(1).normal(size=(3, 5, 7)) * 20).astype(dtype)
    np.save(tmp_path / "emb.npy", values)
    ckpt = striate.open(tmp_path / "emb.npy")
    assert ckpt.names() == ["emb"]
    info = ckpt.info("emb")
    assert (info.shape, info.dtype, info.nbytes) == ((3, 5, 7), np.dtype(dtype).name, values.nbytes)
    np.testing.assert_array_equal(ckpt.read("emb"), values.astype(np.float32))


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_round_trip(tmp_path: Path, save: object) -> None:
    arrays = {"layers.0.w": np.arange(6.0).reshape(2, 3), "b": np.array([1, 2, 3], np.int64)}
    save(tmp_path / "m.npz", **arrays)  # type: ignore[operator]
    ckpt = striate.open(tmp_path / "m.npz")
    assert ckpt.format == "npz" and ckpt.names() == list(arrays)
    for name, values in arrays.items():
        assert ckpt.info(name).shape == values.shape
        np.testing.assert_array_equal(ckpt.read(name), values)


def test_object_arrays_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(StriateError, match=r"obj\.npy: tensor 'obj': holds Python objects"):
        striate.open(tmp_path / "obj.npy")
