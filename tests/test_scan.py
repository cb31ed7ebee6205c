"""`striate scan` on planted synthetic models (both layouts) and on real sample models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import planted
import pytest
import torch
from safetensors.torch import load_file, save_file

from striate.config import apply_overrides
from striate.run import Run
from striate.scan import ScanConfig, scan


def _lines(run: Run) -> dict[str, set[tuple[int | None, ...]]]:
    found: dict[str, set[tuple[int | None, ...]]] = {}
    for _, f in run.findings[run.findings["kind"] == "line"].iterrows():
        found.setdefault(f["tensor"], set()).add(
            tuple(None if pd.isna(i) else int(i) for i in f["index"])
        )
    return found


@pytest.mark.parametrize("build", [planted.gpt2, planted.llama])
def test_planted_structure_is_found_in_both_layouts(tmp_path: Path, build: object) -> None:
    truth: planted.Planted = build(tmp_path / "model")  # type: ignore[operator]
    run = scan(truth.path, tmp_path / "run", config=ScanConfig())
    f = run.findings
    # lines: every planted line found at its exact index, and no line anywhere else
    lines = _lines(run)
    for tensor, index in truth.line_tensors.items():
        assert index in lines.get(tensor, set()), tensor
    # the sinusoids' slowest channels are real dark stripes of the position embeddings
    wpe = f["role"] == "position_embedding"
    quiet = f[wpe & (f["kind"] == "line")]
    assert (quiet["direction"] == "quiet").all()
    extra = {t: i for t, i in lines.items() if t not in truth.line_tensors or len(i) > 1}
    assert set(extra) <= set(quiet["tensor"])
    line_rows = f[(f["kind"] == "line") & ~wpe]
    assert (line_rows["residual_dim"] == planted.LINE_DIM).all()
    # norm outliers: dim 7 in every gain vector, nothing else
    norms = f[f["kind"] == "norm_outlier"]
    assert sorted(norms["tensor"]) == sorted(truth.norm_tensors)
    assert (norms["residual_dim"] == planted.LINE_DIM).all()
    # the one hotspot, at its storage index, linked to residual dim 20
    hot = f[f["kind"] == "hotspot"]
    assert len(hot) == 1
    assert hot.iloc[0]["tensor"] == truth.hotspot[0]
    assert tuple(hot.iloc[0]["index"]) == truth.hotspot[1]
    assert hot.iloc[0]["residual_dim"] == planted.HOT_DIM
    # residual dims: 7 first, with its lines and norm outliers counted by tensor
    top = run.residual_dims.iloc[0]
    assert top["residual_dim"] == planted.LINE_DIM
    assert top["n_lines"] == len(truth.line_tensors)
    assert top["n_norm_outliers"] == len(truth.norm_tensors)
    assert list(top["layers"]) == [0, 1]
    pinned = f[f["kind"].isin(["line", "hotspot", "norm_outlier"]) & ~wpe]
    assert set(pinned["residual_dim"]) == {planted.LINE_DIM, planted.HOT_DIM}
    assert top["direction"] == "loud" and top["pooled_z_read"] > 10 and top["pooled_z_write"] > 10
    # the strong head of layer 0's query projection
    heads = f[(f["kind"] == "head") & (f["tensor"] == truth.head_tensor)]
    assert list(heads["head"]) == [planted.STRONG_HEAD]


def test_sinusoidal_position_embedding_is_periodic(tmp_path: Path) -> None:
    truth = planted.gpt2(tmp_path / "model")
    run = scan(truth.path, config=ScanConfig())
    periodic = run.findings[(run.findings["kind"] == "periodic")]
    assert set(periodic["tensor"]) == {"wpe.weight"}
    # channel 2i has period 2*pi*10000^(2i/d); those well inside 128 positions must be found
    d = planted.D
    for channel in (0, 1, 2, 3, 4, 5):
        i = channel // 2
        period = 2 * np.pi * 10000 ** (2 * i / d)
        row = periodic[periodic["index"].map(lambda x, c=channel: x[1] == c)]
        assert len(row) == 1, channel
        assert row.iloc[0]["value"] == pytest.approx(period, rel=0.02)


def test_run_directory_contract(tmp_path: Path) -> None:
    truth = planted.llama(tmp_path / "model")
    run = scan(truth.path, tmp_path / "run")
    out = tmp_path / "run"
    for name in ("manifest.json", "tensors.parquet", "findings.parquet",
                 "residual_dims.parquet", "index.html"):  # fmt: skip
        assert (out / name).is_file(), name
    back = Run.load(out)
    pd.testing.assert_frame_equal(back.findings, run.findings, check_dtype=False)
    t = back.tensors.set_index("name")
    for column in ("shape", "dtype", "role", "layer", "numel", "mean", "std", "min", "max",
                   "abs_max", "n_nan", "n_inf", "kurtosis", "frac_beyond_6sigma"):  # fmt: skip
        assert column in t.columns, column
    assert (t["status"] == "done").all()
    for name, row in t.iterrows():
        assert (out / row["image"]).is_file(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["lines"]["alpha"] == ScanConfig().lines.alpha
    assert set(manifest["tensors"]) == set(t.index)


def test_a_failing_tensor_is_recorded_and_the_scan_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    truth = planted.llama(tmp_path / "model")
    from striate.checkpoint.safetensors_format import SafetensorsCheckpoint

    real_read = SafetensorsCheckpoint._read

    def flaky(self: SafetensorsCheckpoint, name: str) -> np.ndarray:
        if name == "model.layers.0.mlp.gate_proj.weight":
            raise OSError("disk on fire")
        return real_read(self, name)

    monkeypatch.setattr(SafetensorsCheckpoint, "_read", flaky)
    run = scan(truth.path, tmp_path / "run")
    assert run.failed == {
        "model.layers.0.mlp.gate_proj.weight": (
            f"{truth.path / 'model.safetensors'}: tensor 'model.layers.0.mlp.gate_proj.weight': "
            "cannot read tensor: OSError: disk on fire"
        )
    }
    assert (run.tensors["status"] == "done").sum() == len(run.tensors) - 1
    assert planted.LINE_DIM in set(run.residual_dims["residual_dim"])


def test_cli_scan_with_settings(tmp_path: Path) -> None:
    truth = planted.gpt2(tmp_path / "model")
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "striate", "scan", str(truth.path), "--out", str(out),
         "--set", "lines.min_count=100000", "--no-images"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "report: " in done.stdout and "finding groups" in done.stdout
    run = Run.load(out)
    assert (run.findings["kind"] != "line").all()  # no axis has 100,000 lines: no lines
    assert run.manifest["settings"]["lines"]["min_count"] == 100000
    assert run.tensors["image"].isna().all()
    bad = subprocess.run(
        [sys.executable, "-m", "striate", "scan", str(truth.path), "--set", "lines.nope=1"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "unknown setting 'lines.nope'" in bad.stderr


def test_periodicity_on_request(tmp_path: Path) -> None:
    truth = planted.llama(tmp_path / "model")  # no position embedding: nothing periodic
    assert (scan(truth.path).findings["kind"] != "periodic").all()
    weights = load_file(truth.path / "model.safetensors")
    weights["model.rope_table"] = torch.from_numpy(planted.sinusoidal(128, 16).astype(np.float32))
    save_file(weights, truth.path / "model.safetensors")
    config = apply_overrides(ScanConfig(), [r"periodicity.include=rope_table$"])
    periodic = scan(truth.path, config=config).findings.query("kind == 'periodic'")
    assert set(periodic["tensor"]) == {"model.rope_table"}
    assert len(periodic) >= 4


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_ffn_tables_in_both_layouts(tmp_path: Path) -> None:
    g = scan(planted.gpt2(tmp_path / "g").path, tmp_path / "g-run")
    m = scan(planted.llama(tmp_path / "m").path, tmp_path / "m-run")
    assert len(g.ffn) == len(m.ffn) == planted.LAYERS * planted.F
    assert list(g.ffn_layers["layer"]) == list(m.ffn_layers["layer"]) == [0, 1]
    # GPT-2 Conv1D: neuron j reads column j of c_fc [d, F] and writes row j of c_proj [F, d]
    wg = load_file(tmp_path / "g" / "model.safetensors")
    j = 17
    row = g.ffn[(g.ffn["layer"] == 1) & (g.ffn["neuron"] == j)].iloc[0]
    fc, proj = wg["h.1.mlp.c_fc.weight"].numpy(), wg["h.1.mlp.c_proj.weight"].numpy()
    assert row["alignment"] == pytest.approx(_cos(fc[:, j], proj[j]), abs=1e-6)
    assert row["in_norm"] == pytest.approx(np.linalg.norm(fc[:, j]), rel=1e-6)
    assert row["bias"] == 0.0
    # LLaMA Linear: up_proj [F, d] row j in, down_proj [d, F] column j out, gate_proj row j
    wm = load_file(tmp_path / "m" / "model.safetensors")
    row = m.ffn[(m.ffn["layer"] == 1) & (m.ffn["neuron"] == j)].iloc[0]
    up, down = (
        wm["model.layers.1.mlp.up_proj.weight"].numpy(),
        wm["model.layers.1.mlp.down_proj.weight"].numpy(),
    )
    gate = wm["model.layers.1.mlp.gate_proj.weight"].numpy()
    assert row["alignment"] == pytest.approx(_cos(up[j], down[:, j]), abs=1e-6)
    assert row["gate_in_alignment"] == pytest.approx(_cos(gate[j], up[j]), abs=1e-6)
    assert pd.isna(row["bias"])
    back = Run.load(tmp_path / "m-run")
    assert (
        len(back.ffn) == len(m.ffn)
        and (tmp_path / "m-run" / "images" / "ffn" / "depth.png").is_file()
    )


def test_cli_ffn(tmp_path: Path) -> None:
    truth = planted.llama(tmp_path / "model")
    done = subprocess.run(
        [sys.executable, "-m", "striate", "ffn", str(truth.path), "--out", str(tmp_path / "f"),
         "--layers", "1"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = pd.read_parquet(tmp_path / "f" / "ffn_layers.parquet")
    assert list(table["layer"]) == [0, 1]
    assert pd.isna(table.loc[0, "in_similarity_mean"]) and pd.notna(
        table.loc[1, "in_similarity_mean"]
    )
    assert (tmp_path / "f" / "images" / "ffn" / "layer_001.png").is_file()


def test_spectrum_columns_and_table(tmp_path: Path) -> None:
    truth = planted.gpt2(tmp_path / "model")
    config = apply_overrides(ScanConfig(), ["images.spectra=true"])
    run = scan(truth.path, tmp_path / "run", config=config)
    w = load_file(truth.path / "model.safetensors")["h.1.mlp.c_fc.weight"].numpy()
    s = np.linalg.svd(w.astype(np.float64), compute_uv=False)
    row = run.tensors.set_index("name").loc["h.1.mlp.c_fc.weight"]
    assert row["spectral_norm"] == pytest.approx(s[0], rel=1e-9)
    assert row["stable_rank"] == pytest.approx((s**2).sum() / s[0] ** 2, rel=1e-9)
    sigma = run.spectra[run.spectra["tensor"] == "h.1.mlp.c_fc.weight"]
    np.testing.assert_allclose(sigma.sort_values("k")["sigma"], s, rtol=1e-9)
    assert row["spectrum_skipped"] is None or pd.isna(row["spectrum_skipped"])
    assert run.tensors.set_index("name").loc["ln_f.weight", "spectrum_skipped"] == "not a matrix"
    assert (tmp_path / "run" / row["spectrum_image"]).is_file()
    assert (tmp_path / "run" / "images" / "spectra" / "depth.png").is_file()
    back = Run.load(tmp_path / "run")
    assert len(back.spectra) == len(run.spectra)


def test_a_failing_image_loses_only_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import striate.render.tensor_image

    truth = planted.llama(tmp_path / "model")
    real = striate.render.tensor_image.render_tensor

    def flaky(w: np.ndarray, path: Path, **kwargs: object) -> None:
        if kwargs["title"] == "model.norm.weight":
            raise RuntimeError("matplotlib gave up")
        real(w, path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(striate.render.tensor_image, "render_tensor", flaky)
    run = scan(truth.path, tmp_path / "run")
    status = run.manifest["tensors"]["model.norm.weight"]
    assert status == {"status": "done", "image_error": "RuntimeError: matplotlib gave up"}
    t = run.tensors.set_index("name")
    assert pd.isna(t.loc["model.norm.weight", "image"]) and t["image"].notna().sum() == len(t) - 1
    norms = run.findings.query("kind == 'norm_outlier' and tensor == 'model.norm.weight'")
    assert len(norms) == 1
