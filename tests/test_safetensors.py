"""safetensors: every dtype, exact widening to float32, shards and folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import striate
from striate import StriateError


def _all_bit_patterns(bits: int) -> torch.Tensor:
    n = 1 << bits
    return torch.arange(n, dtype=torch.int32).to(torch.int16 if bits == 16 else torch.uint8)


def test_bf16_every_bit_pattern_widens_exactly(tmp_path: Path) -> None:
    # bf16 is the top half of a float32: the float32 bits must be the bf16 bits << 16.
    patterns = _all_bit_patterns(16)
    save_file({"w": patterns.view(torch.bfloat16).reshape(256, 256)}, tmp_path / "m.safetensors")
    with striate.open(tmp_path / "m.safetensors") as ckpt:
        got = ckpt.read("w")
        assert ckpt.info("w").dtype == "BF16"
        assert ckpt.info("w").nbytes == 2 * 65536
    expected = (np.arange(65536, dtype=np.uint32) << 16).reshape(256, 256)
    np.testing.assert_array_equal(got.view(np.uint32), expected)


def test_f16_every_bit_pattern_matches_numpy(tmp_path: Path) -> None:
    patterns = _all_bit_patterns(16)
    save_file({"w": patterns.view(torch.float16)}, tmp_path / "m.safetensors")
    got = striate.open(tmp_path / "m.safetensors").read("w")
    expected = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
    np.testing.assert_array_equal(got, expected.astype(np.float32))  # NaN == NaN here


def _decode_e4m3fn(byte: int) -> float:
    sign = -1.0 if byte & 0x80 else 1.0
    exp, man = (byte >> 3) & 0xF, byte & 0x7
    if exp == 0xF and man == 0x7:
        return float("nan")
    if exp == 0:
        return sign * man / 8 * 2.0**-6
    return sign * (1 + man / 8) * 2.0 ** (exp - 7)


def test_fp8_every_bit_pattern(tmp_path: Path) -> None:
    patterns = _all_bit_patterns(8)
    save_file(
        {
            "e4m3": patterns.view(torch.float8_e4m3fn),
            "e5m2": patterns.clone().view(torch.float8_e5m2),
        },
        tmp_path / "m.safetensors",
    )
    ckpt = striate.open(tmp_path / "m.safetensors")
    e4m3 = np.array([_decode_e4m3fn(b) for b in range(256)], dtype=np.float32)
    np.testing.assert_array_equal(ckpt.read("e4m3"), e4m3)
    # e5m2 is the top byte of an IEEE half
    e5m2 = (np.arange(256, dtype=np.uint16) << 8).view(np.float16).astype(np.float32)
    np.testing.assert_array_equal(ckpt.read("e5m2"), e5m2)
    assert [ckpt.info(n).dtype for n in ("e4m3", "e5m2")] == ["F8_E4M3", "F8_E5M2"]


@pytest.mark.parametrize(
    ("dtype", "stored"),
    [
        (torch.float64, "F64"),
        (torch.float32, "F32"),
        (torch.int64, "I64"),
        (torch.int32, "I32"),
        (torch.int16, "I16"),
        (torch.int8, "I8"),
        (torch.uint8, "U8"),
        (torch.uint16, "U16"),
        (torch.uint32, "U32"),
        (torch.uint64, "U64"),
        (torch.float16, "F16"),
        (torch.bool, "BOOL"),
    ],
)
def test_round_trip_odd_shapes(tmp_path: Path, dtype: torch.dtype, stored: str) -> None:
    rng = np.random.default_rng(0)
    tensors = {}
    for shape in [(1,), (2, 3), (5, 7), (3, 1, 11), (2, 0)]:
        values = rng.normal(size=shape) * 50
        tensors["x" + "_".join(map(str, shape))] = torch.from_numpy(values).to(dtype)
    save_file(tensors, tmp_path / "m.safetensors", metadata={"producer": "test"})
    with striate.open(tmp_path / "m.safetensors") as ckpt:
        assert ckpt.format == "safetensors"
        assert ckpt.metadata == {"producer": "test"}
        assert sorted(ckpt.names()) == sorted(tensors)
        for name, t in tensors.items():
            info = ckpt.info(name)
            assert info.shape == tuple(t.shape) and info.dtype == stored
            assert info.nbytes == t.numel() * t.element_size()
            np.testing.assert_array_equal(
                ckpt.read(name), t.to(torch.float64).numpy().astype(np.float32)
            )


def test_values_are_read_without_the_memory_map(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every dtype striate knows is read with pread, never through safetensors' mapped view
    (whose touched pages stay resident: RSS would grow with the model)."""
    t = {"a": torch.randn(3, 4).to(torch.bfloat16), "b": torch.arange(6).to(torch.int16),
         "c": torch.randn(5).to(torch.float8_e4m3fn), "d": torch.randn(2, 2)}  # fmt: skip
    save_file(t, tmp_path / "m.safetensors")
    with striate.open(tmp_path / "m.safetensors") as ckpt:

        def mapped(name: str) -> None:
            raise AssertionError(f"{name} was read through the memory map")

        infos = {name: ckpt.info(name) for name in t}  # the header, before the handle goes
        monkeypatch.setattr(ckpt, "_handle", type("H", (), {"get_tensor": staticmethod(mapped)}))
        for name, v in t.items():
            assert infos[name].shape == tuple(v.shape)
            np.testing.assert_array_equal(ckpt.read(name), v.to(torch.float32).numpy())


def _shard(tmp_path: Path) -> dict[str, torch.Tensor]:
    a = {"layer.0.w": torch.randn(4, 3), "layer.0.b": torch.randn(4)}
    b = {"layer.1.w": torch.randn(5, 3).to(torch.bfloat16)}
    save_file(a, tmp_path / "model-00001-of-00002.safetensors")
    save_file(b, tmp_path / "model-00002-of-00002.safetensors")
    return a | b


def test_sharded_index(tmp_path: Path) -> None:
    tensors = _shard(tmp_path)
    weight_map = {
        "layer.0.w": "model-00001-of-00002.safetensors",
        "layer.0.b": "model-00001-of-00002.safetensors",
        "layer.1.w": "model-00002-of-00002.safetensors",
    }
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with striate.open(tmp_path) as ckpt:
        assert sorted(ckpt.names()) == sorted(tensors)
        assert len(ckpt.files) == 2
        assert ckpt.info("layer.1.w").file.name == "model-00002-of-00002.safetensors"
        for name, t in tensors.items():
            np.testing.assert_array_equal(ckpt.read(name), t.float().numpy())


def test_index_naming_a_missing_shard(tmp_path: Path) -> None:
    _shard(tmp_path)
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    index = {"weight_map": {"layer.1.w": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(StriateError, match=r"model\.safetensors\.index\.json: .*missing shard"):
        striate.open(tmp_path)


def test_folder_without_index_unions_shards(tmp_path: Path) -> None:
    tensors = _shard(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "test", "hidden_size": 3}))
    (tmp_path / "tokenizer.json").write_text("{}")
    ckpt = striate.open(tmp_path)
    assert sorted(ckpt.names()) == sorted(tensors)
    assert ckpt.config == {"model_type": "test", "hidden_size": 3}


def test_unknown_tensor_and_unknown_file(tmp_path: Path) -> None:
    save_file({"w": torch.zeros(2)}, tmp_path / "m.safetensors")
    with pytest.raises(StriateError, match=r"m\.safetensors: tensor 'nope': no such tensor"):
        striate.open(tmp_path / "m.safetensors").read("nope")
    junk = tmp_path / "weights.xyz"
    junk.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(StriateError, match=r"weights\.xyz: not a checkpoint .*tried safetensors"):
        striate.open(junk)
    with pytest.raises(StriateError, match="no such file or folder"):
        striate.open(tmp_path / "missing.safetensors")
