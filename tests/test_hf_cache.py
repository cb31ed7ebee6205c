"""Hugging Face ids resolve through a cache folder laid out like huggingface_hub's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import striate
from striate import StriateError


def _cache_with_model(root: Path, model_id: str, commit: str = "abc123") -> Path:
    repo = root / ("models--" + model_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    # huggingface_hub keeps blobs separately and links them from the snapshot
    blobs = repo / "blobs"
    blobs.mkdir()
    save_file({"h.0.mlp.c_fc.weight": torch.full((4, 16), 0.5)}, blobs / "deadbeef")
    (snapshot / "model.safetensors").symlink_to(blobs / "deadbeef")
    (snapshot / "config.json").write_text('{"model_type": "gpt2", "n_embd": 4}')
    return snapshot


def test_hub_id_found_in_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    _cache_with_model(tmp_path, "acme/tiny-gpt")
    ckpt = striate.open("acme/tiny-gpt")
    assert ckpt.names() == ["h.0.mlp.c_fc.weight"]
    np.testing.assert_array_equal(ckpt.read("h.0.mlp.c_fc.weight"), np.full((4, 16), 0.5))
    assert ckpt.config == {"model_type": "gpt2", "n_embd": 4}


def test_hf_home_and_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    _cache_with_model(tmp_path / "hub", "acme/tiny-gpt", commit="f00d")
    assert striate.open("acme/tiny-gpt@f00d").names() == ["h.0.mlp.c_fc.weight"]


def test_missing_hub_id_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(StriateError, match=r"acme/absent: not in the local Hugging Face cache"):
        striate.open("acme/absent")
