"""Scans of the real packaged models: the invariants that must hold on any model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from striate.checkpoint import Checkpoint
from striate.run import Run
from striate.scan import scan


def _check_invariants(run: Run, ckpt: Checkpoint, hidden: int, out: Path) -> None:
    f = run.findings
    assert run.failed == {}
    dims = f["residual_dim"].dropna()
    assert ((dims >= 0) & (dims < hidden)).all()
    # every finding's index is inside its tensor, and no finding sits on a non-finite value
    shapes = dict(zip(run.tensors["name"], run.tensors["shape"], strict=True))
    for _, row in f.iterrows():
        shape = tuple(shapes[row["tensor"]])
        assert len(row["index"]) == len(shape)
        assert all(i is None or 0 <= i < n for i, n in zip(row["index"], shape, strict=True))
    for _, row in f[f["kind"] == "hotspot"].iterrows():
        w = ckpt.read(row["tensor"])
        assert np.isfinite(w[tuple(row["index"])])
        assert w[tuple(row["index"])] == pytest.approx(row["value"])
    # images for every non-empty tensor, and the report
    for _, t in run.tensors.iterrows():
        assert (out / t["image"]).is_file(), t["name"]
    assert (out / "index.html").is_file()
    # a model gets tens of strong findings, not thousands
    assert len(f) < 40 * len(run.tensors)


@pytest.mark.sample
def test_scan_minilm(minilm: Checkpoint, tmp_path: Path) -> None:
    run = scan(minilm, tmp_path)
    _check_invariants(run, minilm, 384, tmp_path)
    # the known super weights: FFN outputs write residual dim 99 with single huge weights
    top = run.residual_dims.iloc[0]
    assert top["residual_dim"] == 99 and top["n_hotspots"] >= 4
    hot = run.findings[run.findings["kind"] == "hotspot"].iloc[0]
    assert (hot["tensor"], list(hot["index"])) == ("encoder.layer.0.output.dense.weight", [99, 856])
    # learned position embeddings carry periodic channels
    periodic = run.findings[run.findings["kind"] == "periodic"]
    assert set(periodic["tensor"]) == {"embeddings.position_embeddings.weight"}
    assert len(periodic) >= 10


@pytest.mark.sample
def test_scan_smollm2(smollm2: Checkpoint, tmp_path: Path) -> None:
    run = scan(smollm2, tmp_path)
    _check_invariants(run, smollm2, 576, tmp_path)
    assert len(run.tensors) == 272
    assert pd.notna(run.tensors.set_index("name").loc["blk.0.attn_q.weight", "head_score"])
