"""Every command writes its run directory through one typed manifest (`striate.store.Manifest`),
and `striate report` opens every kind."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import planted
import pytest
from safetensors.numpy import save_file
from typer.testing import CliRunner

from striate.cli import app
from striate.scan.banding import run_banding
from striate.scan.ffn import run_ffn
from striate.store import KINDS, Manifest

COMMON = {"striate_version", "code", "kind", "source", "settings", "started", "finished", "seconds",
          "figures", "tensors"}  # fmt: skip


def test_the_manifest_has_the_common_fields_first_and_refuses_unknown_kinds() -> None:
    m = Manifest("track", source="runs/x", settings={"a": 1}, extra={"checkpoints": []})
    m.finish(time.time() - 100.0)  # a manifest made at the end of a run that took 100 s
    data = m.as_dict()
    began, ended = (datetime.fromisoformat(data[k]) for k in ("started", "finished"))
    assert 99 <= (ended - began).total_seconds() <= 110
    assert list(data)[: len(COMMON)] == [
        "striate_version",
        "code",
        "kind",
        "source",
        "settings",
        "started",
        "finished",
        "seconds",
        "figures",
        "tensors",
    ]
    assert data["checkpoints"] == [] and 99.9 < data["seconds"] < 110
    with pytest.raises(ValueError, match="unknown run kind 'dif'"):
        Manifest("dif")
    with pytest.raises(ValueError, match=r"repeats common manifest fields: \['source'\]"):
        Manifest("scan", extra={"source": "x"}).as_dict()
    assert KINDS == ("scan", "spectra", "ffn", "banding", "track", "diff", "experiment", "lab")


def _report(run_dir: Path) -> str:
    (run_dir / "index.html").unlink()
    result = CliRunner().invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    return (run_dir / "index.html").read_text(encoding="utf-8")


def test_ffn_run_records_each_tensor_and_opens_with_striate_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from striate.checkpoint.safetensors_format import SafetensorsCheckpoint

    truth = planted.llama(tmp_path / "model")
    real_read = SafetensorsCheckpoint._read
    broken = "model.layers.1.mlp.down_proj.weight"

    def flaky(self: SafetensorsCheckpoint, name: str) -> np.ndarray:
        if name == broken:
            raise OSError("disk on fire")
        return real_read(self, name)

    monkeypatch.setattr(SafetensorsCheckpoint, "_read", flaky)
    out = tmp_path / "ffn"
    neurons, layers = run_ffn(truth.path, out)
    assert sorted(neurons["layer"].unique()) == [0]
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest) >= COMMON and manifest["kind"] == "ffn"
    assert manifest["source"] == str(truth.path)
    statuses = {n: s["status"] for n, s in manifest["tensors"].items()}
    assert (
        statuses.pop(broken) == "failed" and "disk on fire" in manifest["tensors"][broken]["error"]
    )
    assert len(statuses) == 5 and set(statuses.values()) == {"done"}  # layer 0: gate, up, down
    assert layers["layer"].tolist() == [0] and manifest["skipped"] == {"1": f"missing {broken}"}
    assert all((out / p).is_file() for p in manifest["figures"]["ffn"])
    html = _report(out)
    assert "<h1>striate ffn: " in html and "Failed tensors" in html and broken in html
    assert html.count('src="images/ffn/') == len(manifest["figures"]["ffn"]) > 0


def test_banding_run_opens_with_striate_report(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = np.repeat(rng.normal(size=(32, 1, 3, 3)), 32, axis=1)  # every input the same kernel
    tensors = {
        "features.0.weight": rng.normal(size=(32, 3, 3, 3)).astype(np.float32),
        "features.2.weight": (rows + 0.2 * rng.normal(size=(32, 32, 3, 3))).astype(np.float32),
        "classifier.weight": rng.normal(size=(10, 32)).astype(np.float32),
    }
    save_file(tensors, str(tmp_path / "net.safetensors"))
    out = tmp_path / "banding"
    table = run_banding(tmp_path / "net.safetensors", out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest) >= COMMON and manifest["kind"] == "banding"
    assert manifest["tensors"] == {n: {"status": "done"} for n in table["tensor"]}
    assert list(table["tensor"]) == ["features.0.weight", "features.2.weight"]
    assert manifest["figures"] == ["banding.png"] and (out / "banding.png").is_file()
    assert manifest["settings"]["banding"]["min_kernel"] == 3
    html = _report(out)
    assert "<h1>striate banding: " in html and 'src="banding.png"' in html
    assert html.count("<td>features.") == 2


def test_spectra_alone_are_the_scans_spectra_and_open_with_striate_report(tmp_path: Path) -> None:
    import pandas as pd

    from striate.analyses.spectrum import SPECTRUM_KEYS
    from striate.scan import ImagesConfig, ScanConfig, scan
    from striate.scan.spectra import run_spectra

    truth = planted.llama(tmp_path / "model")
    run = scan(truth.path, config=ScanConfig(images=ImagesConfig(enabled=False)))
    out = tmp_path / "spectra"
    tensors = run_spectra(truth.path, out)
    columns = ["name", "spectrum_skipped", *SPECTRUM_KEYS]
    pd.testing.assert_frame_equal(tensors[columns], run.tensors[columns])
    pd.testing.assert_frame_equal(pd.read_parquet(out / "spectra.parquet"), run.spectra)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "spectra" and manifest["settings"]["spectrum"]["device"] == "cpu"
    assert manifest["figures"] == ["images/spectra/depth.png"]
    assert set(manifest["tensors"]) == set(run.tensors["name"])
    again = run_spectra(truth.path, out)  # from the cache: the same table
    pd.testing.assert_frame_equal(again, tensors)
    html = _report(out)
    assert "<h1>striate spectra: " in html and 'src="images/spectra/depth.png"' in html
    assert html.count("<td>model.layers.") >= 14  # every layer matrix has a row
