"""The `striate` command as a user runs it: a subprocess, its stdout, stderr and exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file


def _striate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "striate", *args], capture_output=True, text=True, check=False
    )


@pytest.fixture
def tiny_llama(tmp_path: Path) -> Path:
    d, f = 8, 12
    tensors = {"model.embed_tokens.weight": torch.randn(50, d), "model.norm.weight": torch.ones(d)}
    for i in range(2):
        p = f"model.layers.{i}."
        tensors |= {
            p + "self_attn.q_proj.weight": torch.randn(d, d),
            p + "self_attn.o_proj.weight": torch.randn(d, d),
            p + "mlp.gate_proj.weight": torch.randn(f, d),
            p + "mlp.up_proj.weight": torch.randn(f, d),
            p + "mlp.down_proj.weight": torch.randn(d, f),
            p + "input_layernorm.weight": torch.ones(d),
        }
    save_file(tensors, tmp_path / "model.safetensors")
    return tmp_path / "model.safetensors"


def test_info_json(tiny_llama: Path) -> None:
    done = _striate("info", str(tiny_llama), "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert {k: info[k] for k in ("format", "family", "n_layers", "hidden_size")} == {
        "format": "safetensors", "family": "llama", "n_layers": 2, "hidden_size": 8,
    }  # fmt: skip
    assert info["n_params"] == 50 * 8 + 8 + 2 * (2 * 64 + 3 * 96 + 8)
    rows = {t["name"]: t for t in info["tensors"]}
    assert len(rows) == 14
    assert rows["model.layers.1.mlp.down_proj.weight"] == {
        "name": "model.layers.1.mlp.down_proj.weight", "shape": [8, 12], "dtype": "F32",
        "role": "ffn_out", "layer": 1, "residual_axis": 0,
    }  # fmt: skip
    assert rows["model.layers.0.mlp.up_proj.weight"]["residual_axis"] == 1


def test_info_table(tiny_llama: Path) -> None:
    done = _striate("info", str(tiny_llama))
    assert done.returncode == 0, done.stderr
    assert "model.layers.1.mlp.gate_proj.weight" in done.stdout
    assert "ffn_gate" in done.stdout
    assert "family  llama" in done.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    done = _striate("info", str(bad))
    assert done.returncode == 2
    assert done.stderr.startswith("striate: error: ") and str(bad) in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert "Traceback" in _striate("--debug", "info", str(bad)).stderr


def test_samples_lists_names() -> None:
    done = _striate("samples")
    assert done.returncode == 0
    for name in ("sample:minilm", "sample:smollm2", "sample:efficientnet-lite0"):
        assert name in done.stdout
