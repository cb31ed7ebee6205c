"""PyTorch checkpoints: zip and legacy, nested dicts, and pickles that must not run."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import striate
from striate import StriateError


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(5, 3)
        self.norm = torch.nn.LayerNorm(3)


@pytest.mark.parametrize("zip_format", [True, False])
def test_state_dict_round_trip(tmp_path: Path, zip_format: bool) -> None:
    sd = _Net().state_dict()
    sd["half"] = torch.randn(7, 2).to(torch.bfloat16)
    path = tmp_path / "model.pt"
    torch.save(sd, path, _use_new_zipfile_serialization=zip_format)
    with striate.open(path) as ckpt:
        assert ckpt.format == "pytorch"
        assert ckpt.names() == list(sd)
        for name, t in sd.items():
            info = ckpt.info(name)
            assert info.shape == tuple(t.shape)
            assert info.nbytes == t.numel() * t.element_size()
            np.testing.assert_array_equal(ckpt.read(name), t.float().numpy())
        assert ckpt.info("half").dtype == "bfloat16"


def test_training_checkpoint_is_flattened(tmp_path: Path) -> None:
    net = _Net()
    opt = torch.optim.AdamW(net.parameters())
    net.fc(torch.randn(4, 5)).sum().backward()
    opt.step()
    path = tmp_path / "ckpt.ckpt"
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": 7}, path)
    ckpt = striate.open(path)
    # the model's own names, unprefixed; optimizer moments under dotted paths
    assert ckpt.names()[:4] == ["fc.weight", "fc.bias", "norm.weight", "norm.bias"]
    assert "optimizer.state.0.exp_avg" in ckpt.names()
    np.testing.assert_array_equal(
        ckpt.read("optimizer.state.0.exp_avg"), opt.state_dict()["state"][0]["exp_avg"].numpy()
    )
    assert ckpt.skipped["epoch"] == "not a tensor (int)"
    assert ckpt.skipped["optimizer.param_groups.0.lr"] == "not a tensor (float)"


def test_lightning_style_nesting(tmp_path: Path) -> None:
    sd = {"model.encoder.weight": torch.ones(2, 2)}
    torch.save(
        {"state_dict": sd, "hyper": {"lr": 0.1, "blocks": [torch.zeros(3)]}}, tmp_path / "l.ckpt"
    )
    ckpt = striate.open(tmp_path / "l.ckpt")
    assert ckpt.names() == ["model.encoder.weight", "hyper.blocks.0"]
    assert ckpt.skipped == {"hyper.lr": "not a tensor (float)"}


class _Payload:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.target}",))


@pytest.mark.parametrize("zip_format", [True, False])
def test_malicious_pickle_is_refused_without_running(tmp_path: Path, zip_format: bool) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save(
        {"w": torch.zeros(2), "x": _Payload(marker)},
        path,
        _use_new_zipfile_serialization=zip_format,
    )
    with pytest.raises(StriateError, match=r"evil\.pt: refused to unpickle.*posix\.system") as err:
        striate.open(path)
    assert "weights_only` set to `False" not in str(err.value)  # never advise running it
    assert not marker.exists()


def test_sharded_bin_index(tmp_path: Path) -> None:
    import json

    torch.save({"a": torch.ones(2)}, tmp_path / "pytorch_model-00001-of-00002.bin")
    torch.save({"b": torch.full((3,), 2.0)}, tmp_path / "pytorch_model-00002-of-00002.bin")
    weight_map = {"a": "pytorch_model-00001-of-00002.bin", "b": "pytorch_model-00002-of-00002.bin"}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    ckpt = striate.open(tmp_path)
    assert ckpt.names() == ["a", "b"]
    np.testing.assert_array_equal(ckpt.read("b"), [2.0, 2.0, 2.0])


def test_folder_prefers_safetensors_over_bin(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2)}, tmp_path / "model.safetensors")
    torch.save({"w": torch.zeros(2)}, tmp_path / "pytorch_model.bin")
    ckpt = striate.open(tmp_path)
    assert ckpt.format == "safetensors"
    np.testing.assert_array_equal(ckpt.read("w"), [1.0, 1.0])


def test_quantized_tensor_is_dequantized(tmp_path: Path) -> None:
    x = torch.tensor([0.0, 0.5, -1.25, 3.0])
    q = torch.quantize_per_tensor(x, scale=0.25, zero_point=10, dtype=torch.quint8)
    torch.save({"q": q}, tmp_path / "q.pt")
    ckpt = striate.open(tmp_path / "q.pt")
    assert ckpt.info("q").dtype == "quint8"
    np.testing.assert_array_equal(ckpt.read("q"), x.numpy())
