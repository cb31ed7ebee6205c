"""The live viewer's server: tiles, findings placement, comparison, errors and headers.

Answers are planted (a hotspot of 7.5 in noise of 0.02, a conv kernel value at a known place)
and checked against the tensor read directly, so every zoom level and layout is tested against
an independent computation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import planted
import pytest
import torch
from safetensors.torch import save_file
from starlette.testclient import TestClient

import striate
from striate.errors import StriateError
from striate.render.downsample import block_extreme
from striate.render.view import view_of
from striate.run import Run
from striate.scan import ImagesConfig, ScanConfig
from striate.viewer import ViewerServer, is_loopback, open_viewer
from striate.viewer.specimen import TILE, Specimen, levels, pyramid

HOT = (1234, 567)
XSS = "<img src=x onerror=alert(1)>"


def planted_model(path: Path, shift: float = 0.0, big: tuple[int, int] = (2048, 1024)) -> Path:
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.02, big).astype(np.float32)
    if big > HOT:
        w[HOT] = 7.5
    w[100:110] += shift
    conv = np.arange(64 * 32 * 3 * 3, dtype=np.float32).reshape(64, 32, 3, 3)
    tensors = {
        "big.weight": w, "conv.weight": conv, "norm.weight": np.ones(1024, np.float32),
        XSS: np.zeros((8, 8), np.float32),
    }  # fmt: skip
    save_file({k: torch.from_numpy(v) for k, v in tensors.items()}, str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("viewer")
    a = planted_model(d / "a.safetensors")
    b = planted_model(d / "b.safetensors", shift=0.5)
    run = d / "run"
    striate.scan(a, out=run, config=ScanConfig(images=ImagesConfig(enabled=False)))
    return {"a": a, "b": b, "run": run, "other": planted_model(d / "c.safetensors", big=(64, 64))}


@pytest.fixture(scope="module")
def client(models: dict[str, Path]) -> TestClient:
    return TestClient(open_viewer(models["run"], models["b"]), base_url="http://127.0.0.1")


def tile(client: TestClient, name: str, level: int, ty: int, tx: int, src: str = "a") -> np.ndarray:
    r = client.get(
        "/api/tile", params={"name": name, "level": level, "ty": ty, "tx": tx, "src": src}
    )
    assert r.status_code == 200, r.text
    h, w = map(int, r.headers["x-tile-shape"].split(","))
    return np.frombuffer(r.content, dtype="<f4").reshape(h, w)


def test_pyramid_levels_equal_direct_block_extremes() -> None:
    rng = np.random.default_rng(1)
    m = rng.normal(0, 1, (1000, 777)).astype(np.float32)
    m[3, 5], m[999, 776], m[500, 2] = np.inf, -40.0, np.nan
    levels_ = pyramid(m, 5)
    assert levels_[0] is m and np.isinf(levels_[0][3, 5])
    for k in range(1, 5):
        direct = block_extreme(m, 1 << 20, steps=(1 << k, 1 << k)).image
        np.testing.assert_array_equal(levels_[k], direct)  # NaN == NaN for assert_array_equal
        assert levels_[k].shape == (-(-1000 // 2**k), -(-777 // 2**k))
        assert levels_[k][999 >> k, 776 >> k] == -40.0  # the outlier survives every level


def test_hotspot_is_in_its_tile_at_every_zoom(client: TestClient, models: dict[str, Path]) -> None:
    facts = client.get("/api/tensor", params={"name": "big.weight"}).json()
    assert (facts["height"], facts["width"], facts["tile"]) == (2048, 1024, TILE)
    assert facts["levels"] == 4  # 2048 / 256 = 8 = 2^3: levels 0..3
    assert len(facts["vmax"]) == facts["levels"]
    assert facts["stats"]["max"] == pytest.approx(7.5)
    w = striate.open(models["a"]).read("big.weight")
    np.testing.assert_array_equal(tile(client, "big.weight", 0, 4, 2), w[1024:1280, 512:768])
    for level in range(facts["levels"]):
        step = 1 << level
        r, c = HOT[0] // step, HOT[1] // step
        t = tile(client, "big.weight", level, r // TILE, c // TILE)
        assert t[r % TILE, c % TILE] == pytest.approx(7.5)
        assert np.abs(t).max() == pytest.approx(7.5)
    coarsest = tile(client, "big.weight", 3, 0, 0)
    assert coarsest.shape == (256, 128)


def test_finding_is_placed_on_the_picture(client: TestClient) -> None:
    facts = client.get("/api/tensor", params={"name": "big.weight"}).json()
    hot = [f for f in facts["findings"] if f["kind"] == "hotspot"]
    assert [(f["row"], f["col"], f["value"]) for f in hot] == [(1234.0, 567.0, 7.5)]
    every = client.get("/api/findings").json()
    assert any(f["tensor"] == "big.weight" and f["index"] == list(HOT) for f in every)


def test_the_model_names_its_strongest_finding(client: TestClient, models: dict[str, Path]) -> None:
    strongest = client.get("/api/model").json()["strongest"]
    stored = Run.load(models["run"]).findings
    assert strongest["significance"] == pytest.approx(stored["significance"].max(), rel=1e-12)
    assert (strongest["kind"], strongest["tensor"]) == ("banding", "conv.weight")  # not the hotspot
    bare = TestClient(open_viewer(models["a"]), base_url="http://127.0.0.1")
    assert bare.get("/api/model").json()["strongest"] is None  # no run: the page opens as before


def test_strongest_is_by_significance_then_score_in_a_tensor_the_model_has(
    models: dict[str, Path],
) -> None:
    spec = Specimen(models["run"])
    assert spec.run is not None
    stored = spec.run.findings
    spec.run.findings = stored.iloc[::-1].reset_index(drop=True)  # weakest first
    first = spec.strongest_finding()
    assert first is not None and first["tensor"] == "conv.weight"
    banding, hot = stored.iloc[0].copy(), stored.iloc[1].copy()
    banding["tensor"] = "gone.weight"  # the strongest, of a tensor the model does not have
    banding["significance"] = 1e6
    tied = [hot.copy(), hot.copy()]
    for row, score, index in zip(tied, (1.0, 2.0), ([5, 6], [7, 8]), strict=True):
        row["significance"], row["score"], row["index"] = 10_000.0, score, index
    spec.run.findings = pd.DataFrame([banding, tied[0], hot, tied[1]]).reset_index(drop=True)
    best = spec.strongest_finding()
    assert best is not None
    assert (best["tensor"], best["index"]) == ("big.weight", [7, 8])  # the higher score of the tie
    assert (best["row"], best["col"]) == (7.0, 8.0)


def test_conv_kernels_are_laid_out_as_tiles(client: TestClient) -> None:
    facts = client.get("/api/tensor", params={"name": "conv.weight"}).json()
    assert facts["rows"] == {"axes": [0, 2], "sizes": [64, 3]}
    assert facts["cols"] == {"axes": [1, 3], "sizes": [32, 3]}
    t = tile(client, "conv.weight", 0, 0, 0)
    conv = np.arange(64 * 32 * 9, dtype=np.float32).reshape(64, 32, 3, 3)
    for o, i, kh, kw in [(0, 0, 0, 0), (5, 7, 2, 1), (63, 31, 2, 2)]:
        assert t[o * 3 + kh, i * 3 + kw] == conv[o, i, kh, kw]


def test_vector_is_one_row_and_line_curves(client: TestClient) -> None:
    facts = client.get("/api/tensor", params={"name": "norm.weight"}).json()
    assert (facts["height"], facts["width"]) == (1, 1024)
    row = client.get("/api/line", params={"name": "big.weight", "axis": "row", "i": HOT[0]}).json()
    assert row["step"] == 1 and row["values"][HOT[1]] == pytest.approx(7.5)
    col = client.get("/api/line", params={"name": "big.weight", "axis": "col", "i": HOT[1]}).json()
    assert len(col["values"]) == 2048 and col["values"][HOT[0]] == pytest.approx(7.5)


def test_compare_side_by_side_and_difference(client: TestClient, models: dict[str, Path]) -> None:
    a = striate.open(models["a"]).read("big.weight")
    b = striate.open(models["b"]).read("big.weight")
    np.testing.assert_array_equal(tile(client, "big.weight", 0, 0, 0, "b"), b[:256, :256])
    diff = tile(client, "big.weight", 0, 0, 0, "diff")
    np.testing.assert_array_equal(diff, (a - b)[:256, :256])
    assert diff[105, 3] == pytest.approx(-0.5, abs=1e-6) and diff[200, 3] == 0.0
    facts = client.get("/api/tensor", params={"name": "big.weight", "src": "diff"}).json()
    assert facts["stats"]["min"] == pytest.approx(-0.5, abs=1e-6)
    assert facts["findings"] == []


def test_compare_refuses_what_does_not_match(models: dict[str, Path]) -> None:
    c = TestClient(open_viewer(models["a"], models["other"]), base_url="http://127.0.0.1")
    r = c.get("/api/tensor", params={"name": "big.weight", "src": "diff"})
    assert r.status_code == 400
    assert r.json()["error"] == "tensor 'big.weight' has shape (2048, 1024) in A and (64, 64) in B"
    alone = TestClient(open_viewer(models["a"]), base_url="http://127.0.0.1")
    r = alone.get("/api/tensor", params={"name": "big.weight", "src": "b"})
    assert r.status_code == 400 and "--compare" in r.json()["error"]


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"name": "nope"}, 404, "no tensor named 'nope'"),
        ({"name": "big.weight", "level": 9, "ty": 0, "tx": 0}, 400, "zoom level 9"),
        ({"name": "big.weight", "level": "x", "ty": 0, "tx": 0}, 400, "level must be an integer"),
        ({"name": "big.weight", "level": 0, "ty": 99, "tx": 0}, 404, "outside the tensor"),
        ({"name": "big.weight", "level": 0, "ty": -1, "tx": 0}, 404, "outside the tensor"),
        ({"name": "big.weight", "level": 0, "ty": 0, "tx": 0, "src": "c"}, 400, "src must be"),
    ],
)
def test_bad_requests_get_clear_errors(
    client: TestClient, params: dict[str, object], status: int, words: str
) -> None:
    r = client.get("/api/tile", params=params)
    assert r.status_code == status
    assert words in r.json()["error"]
    assert "default-src 'none'" in r.headers["content-security-policy"]


def test_headers_hosts_and_static_files(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "viewer.js" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'; script-src")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in page.text  # no inline script: the CSP forbids it
    assert client.get("/static/viewer.js").status_code == 200
    for path in ("/static/index.html", "/static/..%2f..%2fapp.py", "/static/../app.py"):
        assert client.get(path).status_code == 404, path
    evil = client.get("/api/model", headers={"host": "evil.example"})
    assert evil.status_code == 400  # DNS rebinding: only this machine's names are answered


def test_model_list_keeps_names_verbatim(client: TestClient) -> None:
    model = client.get("/api/model").json()
    names = [t["name"] for t in model["tensors"]]
    assert XSS in names and model["scanned"] is True
    assert model["b"].endswith("b.safetensors")


def test_cache_stays_within_its_budget(models: dict[str, Path]) -> None:
    spec = Specimen(models["a"], cache_bytes=9 << 20)  # one 2048x1024 pyramid is ~11 MB
    for name in ("big.weight", "conv.weight", "norm.weight", "big.weight", "conv.weight"):
        spec.pyramid(name)
    assert len(spec._pictures) == 1  # always the one being looked at, nothing more
    spec = Specimen(models["a"], cache_bytes=64 << 20)
    for name in ("big.weight", "conv.weight", "norm.weight"):
        spec.pyramid(name)
    assert len(spec._pictures) == 3


def test_residual_dims_of_a_scanned_model(tmp_path: Path) -> None:
    model = planted.llama(tmp_path / "m")
    run = tmp_path / "run"
    striate.scan(model.path, out=run, config=ScanConfig(images=ImagesConfig(enabled=False)))
    c = TestClient(open_viewer(run), base_url="http://127.0.0.1")
    dims = c.get("/api/residual").json()
    assert dims[0]["residual_dim"] == planted.LINE_DIM
    assert set(model.line_tensors) <= set(dims[0]["tensors"])


def test_levels_cover_the_picture() -> None:
    assert levels(view_of((256, 256), None)) == 1
    assert levels(view_of((257, 10), None)) == 2
    assert levels(view_of((49152, 576), None)) == 9  # 49152 / 256 = 192 -> 2^8 >= 192


def test_server_listens_on_loopback_and_reports_a_busy_port(models: dict[str, Path]) -> None:
    import urllib.request

    app = open_viewer(models["other"])
    with ViewerServer(app) as url:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "api/model") as r:
            names = {t["name"] for t in json.load(r)["tensors"]}
        assert "big.weight" in names
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        with pytest.raises(StriateError, match=f"cannot listen on 127.0.0.1:{port}"):
            ViewerServer(app, port=port)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")


def test_viewer_of_a_missing_model_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StriateError, match="no such file or folder"):
        open_viewer(tmp_path / "missing.safetensors")


@pytest.mark.sample
def test_a_real_135m_model_opens_and_its_largest_tensor_keeps_its_extremes() -> None:
    c = TestClient(open_viewer("sample:smollm2"), base_url="http://127.0.0.1")
    model = c.get("/api/model").json()
    assert len(model["tensors"]) == 272 and model["family"] == "llama"
    facts = c.get("/api/tensor", params={"name": "token_embd.weight"}).json()
    assert (facts["height"], facts["width"], facts["levels"]) == (49152, 576, 9)
    top = tile(c, "token_embd.weight", 8, 0, 0)  # the whole embedding in one 192 x 3 tile
    assert top.shape == (192, 3)
    st = facts["stats"]
    assert np.abs(top).max() == pytest.approx(max(-st["min"], st["max"]))
    w = striate.open("sample:smollm2").read("token_embd.weight")
    np.testing.assert_array_equal(tile(c, "token_embd.weight", 0, 100, 2), w[25600:25856, 512:])
