"""Scans of the real packaged models: the invariants that must hold on any model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from striate.analyses.findings import finding_groups
from striate.checkpoint import Checkpoint
from striate.run import Run
from striate.scan import scan
from striate.scan.cache import CACHE_DIR

README = Path(__file__).resolve().parents[1] / "README.md"


def _run_size_matches_readme(out: Path, ckpt: Checkpoint, sample: str) -> None:
    """A default run directory is at most half its model file; the README states both sizes."""
    run = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    model = sum(path.stat().st_size for path in ckpt.files)
    assert run <= model / 2, (run, model)
    words = f"`sample:{sample}` {round(run / 1e6)} MB in all (its file {round(model / 1e6)} MB)"
    assert words in " ".join(README.read_text(encoding="utf-8").split())


def _readme_counts_match(run: Run, sample: str) -> None:
    """The README's paragraph on this sample states the counts this scan gives."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"`striate scan sample:{sample}`")
    paragraph = " ".join(text[start : text.index("![", start)].split())
    f = run.findings
    lines = f[f["kind"] == "line"]["direction"].value_counts()
    dims = run.residual_dims
    hidden = int(run.manifest["hidden_size"])
    for phrase in (
        f"{len(f):,} findings",
        f"{int(lines.sum()):,} lines ({lines.get('loud', 0):,} loud, "
        f"{lines.get('quiet', 0):,} quiet)",
        f"{int((f['kind'] == 'hotspot').sum()):,} hotspots",
        f"{int((f['kind'] == 'norm_outlier').sum()):,} norm outliers",
        f"in {len(finding_groups(f)):,} groups",
        f"{int((dims['significance'] >= 3).sum()):,} of its {hidden} residual dimensions stand out",
        *_story(run, sample),
    ):
        assert phrase in paragraph, phrase


def _story(run: Run, sample: str) -> list[str]:
    """The numbers of the README's story about the sample's strongest dimension."""
    dims = run.residual_dims.set_index("residual_dim")
    if sample == "minilm":
        link = run.norm_links.iloc[0]  # the norm vector whose outliers sit most on line dims
        p = f"{link['p_value']:.0e}".replace("e-0", "e-")
        return [
            f"a LayerNorm outlier in {dims.loc[223, 'n_norm_outliers']} norm vectors",
            f"{link['overlap']} of the {link['n_outlier_dims']} outlier dims of layer "
            f"{link['layer']}'s attention-output LayerNorm {link['kind']}, p ~ {p}",
        ]
    group = finding_groups(run.findings).iloc[0]
    counts = run.findings[run.findings["residual_dim"] == group["residual_dim"]]["kind"]
    n = counts.value_counts()
    return [
        f"dimension {group['residual_dim']} is a quiet column",
        f"(its group: {n['line']} lines, {n['hotspot']} hotspots and {n['norm_outlier']} norm "
        f"outliers in {group['n_tensors']} tensors",
    ]


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
    # the README states the cache this scan leaves (scripts/readme_figures.py writes it)
    cache_mb = round(sum(p.stat().st_size for p in (tmp_path / CACHE_DIR).iterdir()) / 1e6)
    assert f"({cache_mb} MB for `sample:minilm`)" in README.read_text(encoding="utf-8")
    _run_size_matches_readme(tmp_path, minilm, "minilm")
    # the known super weights: FFN outputs write residual dim 99 with single huge weights; the
    # largest (z ~ 2200) is the strongest hotspot, and the dims of the norm outliers and lines
    # (99, 223, 267, 319) lead the residual dimensions ranked by their pooled evidence
    dims = run.residual_dims.set_index("residual_dim")
    assert {99, 223, 267, 319} <= set(run.residual_dims["residual_dim"].head(10))
    assert dims.loc[99, "n_hotspots"] >= 4 and dims.loc[99, "significance"] > 20
    assert run.residual_dims.iloc[0]["residual_dim"] == 223  # loud when written, quiet when read
    assert run.residual_dims.iloc[0]["direction"] == "mixed"
    spots = run.findings[run.findings["kind"] == "hotspot"]
    hot = spots.loc[spots["score"].idxmax()]
    assert (hot["tensor"], list(hot["index"])) == ("encoder.layer.0.output.dense.weight", [99, 856])
    assert hot["significance"] > 10  # expected < 1e-10 such weights under that tensor's own tail
    # learned position embeddings carry periodic channels
    periodic = run.findings[run.findings["kind"] == "periodic"]
    assert set(periodic["tensor"]) == {"embeddings.position_embeddings.weight"}
    assert len(periodic) >= 10
    _readme_counts_match(run, "minilm")


@pytest.mark.sample
def test_scan_smollm2(smollm2: Checkpoint, tmp_path: Path) -> None:
    run = scan(smollm2, tmp_path)
    _check_invariants(run, smollm2, 576, tmp_path)
    assert len(run.tensors) == 272
    assert pd.notna(run.tensors.set_index("name").loc["blk.0.attn_q.weight", "head_score"])
    _readme_counts_match(run, "smollm2")
    _run_size_matches_readme(tmp_path, smollm2, "smollm2")
