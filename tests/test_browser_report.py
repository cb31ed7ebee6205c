"""The scan report in a real browser, from disk: the first screen, widths, filters, sorting,
pages, links, images, escaping."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_report import XSS, build_scan

from striate import store
from striate.report import rebuild_report
from striate.run import Run

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Run]:
    run_dir, _ = build_scan(tmp_path_factory.mktemp("browser-report"))
    return run_dir, Run.load(run_dir)


@pytest.fixture(scope="module")
def many(report: tuple[Path, Run], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Run]:
    """The report's run with its findings repeated, each copy a little weaker: over 100 rows."""
    run_dir = Path(shutil.copytree(report[0], tmp_path_factory.mktemp("many") / "run"))
    f = report[1].findings
    copies = [
        f.assign(score=f["score"] * 0.5**k, significance=f["significance"] - k) for k in range(6)
    ]
    store.write_table(run_dir / "findings.parquet", pd.concat(copies, ignore_index=True))
    rebuild_report(run_dir)
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
    for anchor in ("glance", "top-groups", "top-residual", "top-curves", "findings", "residual",
                   "curves", "gallery", "ffn", "spectra"):  # fmt: skip
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


FOLD = 900  # the first screen of a 1400 x 900 window


def _box(page: Any, selector: str) -> dict[str, float]:
    box: dict[str, float] = page.evaluate(
        "s => { const r = document.querySelector(s).getBoundingClientRect();"
        " return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; }",
        selector,
    )
    return box


def test_the_first_screen_is_the_answer(page: Any, report: tuple[Path, Run]) -> None:
    """Facts, the strongest groups with images, residual dims and curves start above the fold."""
    run_dir, _ = report
    page.set_viewport_size({"width": 1400, "height": FOLD})
    dialogs, requests = _open(page, run_dir)
    assert page.evaluate("window.scrollY") == 0
    thumbs = page.locator("#top-groups-table img.thumb")
    assert thumbs.count() >= 1
    page.wait_for_function(
        "Array.from(document.querySelectorAll('#top-groups img, #top-curves img'))"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    tops = {
        s: _box(page, s)["top"]
        for s in ("#glance dl.cards", "#top-groups-table", "#top-groups-table img.thumb",
                  "#top-residual-table", "#top-curves .thumbs img")
    }  # fmt: skip
    assert all(0 < top < FOLD for top in tops.values()), tops
    # the residual dimensions sit beside the groups, not under them
    assert _box(page, "#top-residual-table")["left"] > _box(page, "#top-groups-table")["right"]
    assert _box(page, "#findings")["top"] > max(tops.values())  # every finding: below
    # a thumbnail opens its tensor in the gallery
    first = thumbs.first
    anchor = (first.locator("xpath=..").get_attribute("href") or "")[1:]
    first.click()
    assert page.evaluate(f"document.getElementById('{anchor}').closest('details').open")
    assert dialogs == [] and page.errors == []
    assert all(u.startswith("file://") for u in requests)


def test_nothing_is_wider_than_a_1280_px_window(page: Any, report: tuple[Path, Run]) -> None:
    """Wide tables wrap or scroll inside themselves; the page never scrolls sideways, with
    every layer of the gallery and every fold open too."""
    run_dir, _ = report
    page.set_viewport_size({"width": 1280, "height": FOLD})
    _open(page, run_dir)
    width = "document.documentElement.scrollWidth"
    assert page.evaluate(width) <= 1280
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
    page.wait_for_timeout(200)
    assert page.evaluate(width) <= 1280
    assert page.evaluate("document.body.scrollWidth") <= 1280
    assert page.errors == []


def test_findings_come_100_to_a_page(page: Any, many: tuple[Path, Run]) -> None:
    run_dir, run = many
    n = len(run.findings)
    assert n > 200
    _open(page, run_dir)
    assert _rows(page) == 100
    assert page.text_content("#findings-count") == f"{n} of {n} findings"
    assert page.text_content("#findings-page") == f"rows 1–100 (page 1 of {-(-n // 100)})"
    assert page.is_disabled("#findings-prev") and not page.is_disabled("#findings-next")
    scores = "#findings-table tbody tr td[data-key=score]"
    first = [float(x) for x in page.locator(scores).all_text_contents()]
    page.click("#findings-next")
    assert _rows(page) == 100
    assert page.text_content("#findings-page") == f"rows 101–200 (page 2 of {-(-n // 100)})"
    second = [float(x) for x in page.locator(scores).all_text_contents()]
    expected = sorted(run.findings["score"], reverse=True)
    assert first + second == pytest.approx(expected[:200], rel=1e-3)
    while not page.is_disabled("#findings-next"):
        page.click("#findings-next")
    assert _rows(page) == n - 100 * (-(-n // 100) - 1)
    page.click("#findings-prev")
    assert _rows(page) == 100
    # a filter starts again at its first page; one page needs no pager
    page.fill("#filter-score", str(expected[50]))
    assert _rows(page) == int((run.findings["score"] >= expected[50]).sum()) <= 100
    assert page.text_content("#findings-page").startswith("rows 1–")
    assert not page.is_visible("#findings-pager")
    assert page.errors == []
