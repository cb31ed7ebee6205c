"""The scan report in a real browser, from disk: filters, sorting, links, images, escaping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_report import XSS, build_scan

from striate.run import Run

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Run]:
    run_dir, _ = build_scan(tmp_path_factory.mktemp("browser-report"))
    return run_dir, Run.load(run_dir)


def _open(page: Any, run_dir: Path) -> tuple[list[str], list[str]]:
    """Open the report; return the lists that collect dialogs and requested URLs."""
    dialogs: list[str] = []
    requests: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: requests.append(r.url))
    page.goto((run_dir / "index.html").as_uri())
    return dialogs, requests


def _rows(page: Any) -> int:
    n: int = page.locator("#findings-table tbody tr").count()
    return n


def test_sections_filters_and_sorting(page: Any, report: tuple[Path, Run]) -> None:
    run_dir, run = report
    f = run.findings
    dialogs, requests = _open(page, run_dir)
    for anchor in ("glance", "findings", "residual", "curves", "gallery", "ffn", "spectra"):
        assert page.locator(f"section#{anchor} h2").count() == 1, anchor
    assert _rows(page) == len(f)
    assert page.text_content("#findings-count") == f"{len(f)} of {len(f)} findings"

    page.select_option("#filter-kind", "line")
    n_lines = int((f["kind"] == "line").sum())
    assert n_lines >= 5 and _rows(page) == n_lines
    assert set(page.locator("#findings-table tbody tr td:first-child").all_text_contents()) == {
        "line"
    }
    page.select_option("#filter-kind", "")

    page.fill("#filter-tensor", "C_FC")  # case-insensitive substring
    assert _rows(page) == int(f["tensor"].str.lower().str.contains("c_fc").sum()) > 0
    page.fill("#filter-tensor", "")
    page.fill("#filter-layer", "1")
    assert _rows(page) == int((f["layer"] == 1).sum())
    page.fill("#filter-layer", "")
    page.fill("#filter-score", "40")
    assert _rows(page) == int((f["score"] >= 40).sum())
    assert (
        page.text_content("#findings-count")
        == f"{int((f['score'] >= 40).sum())} of {len(f)} findings"
    )
    page.fill("#filter-score", "")

    column = list(page.locator("#findings-table thead th").all_text_contents()).index("score")
    page.click('#findings-table th[data-key="score"]')  # strongest first -> weakest first
    cells = page.locator(f"#findings-table tbody tr td:nth-child({column + 1})")
    shown = [float(x) for x in cells.all_text_contents()]
    expected = sorted(f["score"])
    assert shown == pytest.approx(expected, rel=1e-3)
    assert page.get_attribute('#findings-table th[data-key="score"]', "aria-sort") == "ascending"

    assert dialogs == [] and page.errors == []
    assert requests and all(u.startswith("file://") for u in requests)


def test_links_into_the_gallery_and_images(page: Any, report: tuple[Path, Run]) -> None:
    run_dir, run = report
    dialogs, requests = _open(page, run_dir)
    hotspot = run.findings[run.findings["kind"] == "hotspot"].iloc[0]["tensor"]
    position = int(run.tensors.index[run.tensors["name"] == hotspot][0])
    page.fill("#filter-tensor", hotspot)
    page.click(f"#findings-table tbody a[href='#t-{position}']")
    figure = page.locator(f"#t-{position}")
    assert figure.is_visible()  # its layer's <details> opened
    assert page.evaluate(f"document.getElementById('t-{position}').closest('details').open")
    image = figure.locator("img")
    image.scroll_into_view_if_needed()
    page.wait_for_function(
        f"document.querySelector('#t-{position} img').complete && "
        f"document.querySelector('#t-{position} img').naturalWidth > 0"
    )
    assert image.get_attribute("src") == run.tensors.loc[position, "image"]

    # the hostile tensor name is shown as text in its caption, and no script ran
    xss = int(run.tensors.index[run.tensors["name"] == XSS][0])
    page.click("#layer-none > summary")
    assert XSS in (page.text_content(f"#t-{xss} figcaption") or "")
    assert page.locator(f"#t-{xss} img").count() == 1  # only the tensor's own image

    # an image link opens the PNG itself, from the run directory
    page.click(f"#t-{position} a")
    page.wait_for_load_state()
    assert page.url == (run_dir / str(run.tensors.loc[position, "image"])).as_uri()
    assert dialogs == [] and page.errors == []
    assert all(u.startswith("file://") for u in requests)
