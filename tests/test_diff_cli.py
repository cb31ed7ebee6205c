"""`striate diff` as a user runs it (the command, its summary and errors), its report (sections,
escaped names, images, rebuilt from the run directory alone) and `striate view` of a diff run (A,
B and B - A tiles against the arrays themselves, B's GGUF names and permuted rows brought to A's
coordinates), and docs/diff.md's generated numbers."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient
from test_diff import GATE, LLAMA, NORM, UP, Q, llama_a, llama_b, save

import striate
from striate.errors import StriateError
from striate.viewer import ViewerServer, open_viewer
from striate.viewer.specimen import Specimen

XSS = "<img src=x onerror=alert(1)>"
ROOT = Path(__file__).resolve().parent.parent


def _striate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "striate", *args], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A one-layer LLaMA with a hostile tensor name, and B with planted changes (test_diff);
    diffed by the command with every option."""
    tmp = tmp_path_factory.mktemp("diff-cli")
    a = llama_a()
    a[XSS] = np.random.default_rng(3).normal(0, 0.02, (16, 32)).astype(np.float32)
    a["model.layers.0.extra.weight"] = np.ones((4, 4), np.float32)  # left out by --include
    b = llama_b(a)
    b[XSS] = a[XSS] + 1.0
    save(tmp / "a", a, LLAMA)
    save(tmp / "b", b, LLAMA)
    out = tmp / "run"
    done = _striate("diff", str(tmp / "a"), str(tmp / "b"), "--out", str(out),
                    "--set", "compare.top_k=4", "--include", r"^(?!.*extra)", "--jobs", "2",
                    "--device", "cpu")  # fmt: skip
    return {"a": a, "b": b, "tmp": tmp, "out": out, "done": done}


def test_the_command_prints_its_summary_and_writes_the_run(models: dict[str, Any]) -> None:
    done, out = models["done"], models["out"]
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line]  # the progress bar leaves one
    assert lines[0].startswith(f"A {models['tmp'] / 'a'} (llama, safetensors) → B ")
    assert "10 tensors compared in" in lines[1] and "0 failed, 0 unmatched" in lines[1]
    assert "findings: 4 lost, 3 weakened, 1 new, 3 kept" in lines[1]
    largest = done.stdout[done.stdout.index("Largest changes") :]
    assert largest.index(XSS) < largest.index(UP)  # rel_change 50 against 0.33, names as text
    assert "Findings not kept" in done.stdout and "Worst blocks" in done.stdout
    assert lines[-1] == f"report: {(out / 'index.html').resolve()}"
    manifest = json.loads((out / "manifest.json").read_text())
    settings = manifest["settings"]
    assert settings["compare"]["top_k"] == 4 and settings["compare"]["include"] == r"^(?!.*extra)"
    assert settings["scan"]["spectrum"]["device"] == "cpu"
    assert (manifest["n_matched"], manifest["n_excluded"]) == (10, 1)


def test_models_without_a_common_tensor_exit_2_with_one_line(tmp_path: Path) -> None:
    save(tmp_path / "a", {"x.weight": np.ones((4, 4))}, None)
    save(tmp_path / "b", {"y.weight": np.ones((4, 4))}, None)
    done = _striate("diff", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "o"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"striate: error: cannot diff {tmp_path / 'a'} and ")
    assert "no tensor in common" in done.stderr and len(done.stderr.splitlines()) == 1


def test_the_report_has_every_section_escapes_names_and_links_its_images(
    models: dict[str, Any],
) -> None:
    out = models["out"]
    text = (out / "index.html").read_text()
    for anchor in ("glance", "changes", "curves", "ranks", "findings", "blocks", "residual",
                   "images", "unmatched"):  # fmt: skip
        assert f'<section id="{anchor}">' in text, anchor
    assert 'class="failed"' not in text
    assert XSS not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "lost" in text and "norm_outlier" in text
    images = json.loads((out / "manifest.json").read_text())["images"]
    assert [i["tensor"] for i in images][:2] == [XSS, GATE]  # largest change, then worst block
    assert len(images) == 6 and all("error" not in i for i in images)
    for entry in images:
        for key in ("a", "b", "diff"):
            path = entry[key]
            assert path.startswith("images/diff/") and (out / path).read_bytes()[:4] == b"\x89PNG"
            assert f'src="{path}"' in text
    assert (out / "images" / "report" / "diff_update_ranks.png").is_file()


def test_the_report_is_rebuilt_from_the_run_directory_alone(
    models: dict[str, Any], tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(models["out"], copy, ignore=shutil.ignore_patterns(".striate-cache"))
    (copy / "index.html").unlink()
    shutil.rmtree(copy / "images" / "report")
    done = _striate("report", str(copy))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"report: {copy / 'index.html'}"
    assert (copy / "index.html").read_text() == (models["out"] / "index.html").read_text()
    assert (copy / "images" / "report" / "diff_update_ranks.png").is_file()


def tile(client: TestClient, name: str, src: str) -> np.ndarray:
    r = client.get("/api/tile", params={"name": name, "src": src, "level": 0, "ty": 0, "tx": 0})
    assert r.status_code == 200, r.text
    h, w = map(int, r.headers["x-tile-shape"].split(","))
    return np.frombuffer(r.content, dtype="<f4").reshape(h, w)


def test_the_viewer_shows_a_b_and_b_minus_a(models: dict[str, Any]) -> None:
    client = TestClient(open_viewer(models["out"]), base_url="http://127.0.0.1")
    model = client.get("/api/model").json()
    assert (model["difference"], model["diff_run"], model["b"]) == (
        "B − A",
        True,
        str(models["tmp"] / "b"),
    )
    a, b = models["a"][UP], models["b"][UP]
    np.testing.assert_array_equal(tile(client, UP, "a"), a[:256, :256])
    np.testing.assert_array_equal(tile(client, UP, "b"), b[:256, :256])
    np.testing.assert_array_equal(tile(client, UP, "diff"), (b - a)[:256, :256])
    # the viewer opens on the most significant lost finding, marked on A's picture
    strongest = model["strongest"]
    assert strongest["kind"] == "lost norm_outlier" and strongest["detail"].startswith("lost: ")
    facts = client.get("/api/tensor", params={"name": NORM, "src": "a"}).json()
    assert [f["kind"] for f in facts["findings"]] == ["weakened norm_outlier"]
    new = client.get("/api/tensor", params={"name": GATE, "src": "b"}).json()["findings"]
    assert ("new hotspot", [100, 40]) in [(f["kind"], f["index"]) for f in new]
    kinds = {f["kind"] for f in client.get("/api/findings").json()}
    assert {"lost hotspot", "weakened hotspot", "new hotspot", "kept line"} <= kinds
    dims = client.get("/api/residual").json()
    assert dims[0]["residual_dim"] == 7 and dims[0]["n_norm_outliers"] == 3


def test_a_diff_run_is_viewed_alone(models: dict[str, Any]) -> None:
    with pytest.raises(StriateError, match="already holds its B: drop --compare"):
        open_viewer(models["out"], models["tmp"] / "b")
    with pytest.raises(StriateError, match="a diff run is viewed alone"):
        Specimen(models["out"])


def test_the_viewer_brings_gguf_names_and_permuted_rows_to_a(tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    from test_diff_quant import QT, deq_q4_0, gguf, llama_cpp_permute, write_gguf

    a = llama_a()
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 1)
    raw = gguf.quants.quantize(a[UP], QT.Q4_0)
    tensors: dict[str, tuple[np.ndarray, Any]] = {}
    for name, w in a.items():
        values = llama_cpp_permute(w, 4) if name == Q else w
        tensors[names.get_name(name, try_suffixes=(".weight",))] = (
            (raw, QT.Q4_0) if name == UP else (values, None)
        )
    write_gguf(tmp_path / "b.gguf", "llama", 1, tensors, embedding_length=64,
               attention__head_count=4, attention__head_count_kv=4)  # fmt: skip
    striate.diff(save(tmp_path / "a", a, LLAMA), tmp_path / "b.gguf", tmp_path / "run")
    client = TestClient(open_viewer(tmp_path / "run"), base_url="http://127.0.0.1")
    np.testing.assert_array_equal(tile(client, Q, "b"), a[Q])  # rows put back
    assert not tile(client, Q, "diff").any()
    deq = deq_q4_0(raw, a[UP].shape)
    np.testing.assert_array_equal(tile(client, UP, "diff"), (deq - a[UP])[:256, :256])
    facts = client.get("/api/tensor", params={"name": UP, "src": "b"}).json()
    assert facts["dtype"] == "Q4_0" and facts["name"] == UP


@pytest.fixture(scope="module")
def served(models: dict[str, Any]) -> Iterator[str]:
    with ViewerServer(open_viewer(models["out"])) as url:
        yield url


@pytest.mark.browser
def test_the_browser_opens_a_diff_run_on_a_b_and_b_minus_a(page: Any, served: str) -> None:
    page.set_viewport_size({"width": 1300, "height": 900})
    page.goto(served + "#t=" + UP)
    page.wait_for_function("() => striate.state.meta.a && striate.state.meta.diff")
    assert page.locator("#mode").input_value() == "all"
    labels = page.locator("#panes .label").all_inner_texts()
    assert [t.split(":")[0] for t in labels] == ["A", "B", "B − A"]
    assert "B − A" in page.locator("#mode option[value=diff]").inner_text()
    assert page.errors == []


def test_docs_numbers_are_generated_from_the_numbers_they_hold() -> None:
    spec = importlib.util.spec_from_file_location("diff_cases", ROOT / "scripts" / "diff_cases.py")
    assert spec is not None and spec.loader is not None
    cases = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cases)
    page = (ROOT / "docs" / "diff.md").read_text(encoding="utf-8")
    assert not cases.stale(page), "run: python scripts/diff_cases.py write"
    numbers = json.loads(cases.NUMBERS.search(page).group(1))
    assert set(numbers) == {"Q8_0", "Q4_0", "lottery"}
