"""The viewer opens no door: no files by path, no bodies, loopback by default, and it holds up
under hundreds of concurrent tile requests with bounded memory."""

from __future__ import annotations

import http.client
import json
import os
import resource
import socket
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient
from test_viewer import HOT, planted_model
from typer.testing import CliRunner

import striate
from striate.scan import ImagesConfig, ScanConfig
from striate.viewer import ViewerServer, open_viewer
from striate.viewer.specimen import TILE_CACHE

TRAVERSALS = [
    "/../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/static/..%2f..%2f..%2fetc%2fpasswd",
    "/static/%2e%2e%2fapp.py",
    "/static/%2fetc%2fpasswd",
    "//etc/passwd",
    "/etc/passwd",
    "/manifest.json",
    "/images/secret.txt",
    "/tensors.parquet",
]


def app_viewer(app: Any) -> Any:
    return app.app.state.viewer


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("viewer-security")
    model = planted_model(d / "a.safetensors")
    run = d / "run"
    striate.scan(model, out=run, config=ScanConfig(images=ImagesConfig(enabled=False)))
    outside = d / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("do not serve")
    (run / "images").mkdir(exist_ok=True)
    os.symlink(outside / "secret.txt", run / "images" / "secret.txt")  # a link out of the run
    return run


@pytest.fixture(scope="module")
def client(run_dir: Path) -> TestClient:
    return TestClient(open_viewer(run_dir), base_url="http://127.0.0.1")


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_path_reaches_a_file(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert "do not serve" not in r.text and "root:" not in r.text


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "/etc/passwd", "%2e%2e/secret", "images/secret.txt", ""]
)
def test_tensor_names_are_looked_up_never_opened(client: TestClient, name: str) -> None:
    r = client.get("/api/tensor", params={"name": name})
    assert r.status_code in (400, 404)
    assert "do not serve" not in r.text


def test_bodies_and_other_methods_are_refused(client: TestClient) -> None:
    assert client.post("/api/model", content=b"x" * 10).status_code == 405
    assert client.put("/api/model").status_code == 405
    r = client.request("GET", "/api/model", content=b"x" * 100_000)
    assert r.status_code == 405 and "content-security-policy" in r.headers


def test_oversized_headers_are_cut_off(run_dir: Path) -> None:
    with ViewerServer(open_viewer(run_dir)) as url:
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", "/api/tensor?name=" + "a" * 100_000)
        assert conn.getresponse().status in (400, 413, 414, 431)
        conn.close()


def test_json_keeps_hostile_names_as_data(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    name = "</script><script>alert(1)</script>\"'&"
    save_file({name: torch.ones(4, 4)}, str(tmp_path / "m.safetensors"))
    c = TestClient(open_viewer(tmp_path / "m.safetensors"), base_url="http://127.0.0.1")
    r = c.get("/api/model")
    assert r.headers["content-type"] == "application/json"
    assert r.json()["tensors"][0]["name"] == name
    assert c.get("/api/tensor", params={"name": name}).json()["name"] == name


def test_hundreds_of_concurrent_tile_requests(run_dir: Path) -> None:
    """400 tile requests from 64 threads: every answer right, caches within their bounds."""
    jobs = [
        (level, ty, tx)
        for level in range(4)
        for ty in range(8 >> level)
        for tx in range(4 >> level)
    ]
    jobs = (jobs * 20)[:400]
    w = striate.open(run_dir.parent / "a.safetensors").read("big.weight")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    app = open_viewer(run_dir)
    with ViewerServer(app) as url:

        def get(job: tuple[int, int, int]) -> tuple[int, int, int, bytes, str]:
            level, ty, tx = job
            q = f"name=big.weight&level={level}&ty={ty}&tx={tx}"
            with urllib.request.urlopen(f"{url}api/tile?{q}", timeout=60) as r:
                return level, ty, tx, r.read(), r.headers["X-Tile-Shape"]

        with ThreadPoolExecutor(64) as pool:
            answers = list(pool.map(get, jobs))
    assert len(answers) == 400
    for level, ty, tx, body, shape in answers:
        h, wd = map(int, shape.split(","))
        tile = np.frombuffer(body, "<f4").reshape(h, wd)
        if level == 0:
            np.testing.assert_array_equal(
                tile, w[ty * 256 : ty * 256 + h, tx * 256 : tx * 256 + wd]
            )
        step = 1 << level
        if (HOT[0] // step) // 256 == ty and (HOT[1] // step) // 256 == tx:
            assert np.abs(tile).max() == pytest.approx(7.5)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 300, grown_mb  # one 8 MB tensor, its levels and at most 512 tiles
    assert len(app_viewer(app).tiles) <= TILE_CACHE


def test_loopback_by_default_and_a_warning_otherwise(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from striate import cli

    served: list[str] = []
    monkeypatch.setattr("striate.viewer.ViewerServer.run", lambda self: served.append(self.url))
    runner = CliRunner()
    result = runner.invoke(cli.app, ["view", str(run_dir), "--port", "0"])
    assert result.exit_code == 0, result.output
    assert served[-1].startswith("http://127.0.0.1:") and "warning" not in result.output
    result = runner.invoke(cli.app, ["view", str(run_dir), "--port", "0", "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    assert served[-1].startswith("http://0.0.0.0:")
    assert "warning" in result.output and "anyone who can reach" in result.output


def test_a_busy_port_is_one_line_and_exit_2(run_dir: Path) -> None:
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "striate", "view", str(run_dir), "--port", str(port)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr


def test_unknown_routes_are_json_errors_not_tracebacks(client: TestClient) -> None:
    r = client.get("/api/tile", params={"name": "big.weight", "level": "0", "ty": "0"})
    assert r.status_code == 400 and r.json() == {"error": "tx must be an integer"}
    assert json.loads(client.get("/api/residual").text) == []
