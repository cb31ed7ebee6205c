"""The viewer in a real browser: zoom to a planted hotspot and read it from the hover box.

Debian's headless chromium (conftest's `page` fixture) against `striate view` on a free port.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from test_viewer import HOT, XSS, planted_model

import striate
from striate.scan import ImagesConfig, ScanConfig
from striate.viewer import ViewerServer, open_viewer

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    d = tmp_path_factory.mktemp("browser-viewer")
    a = planted_model(d / "a.safetensors")
    b = planted_model(d / "b.safetensors", shift=0.5)
    striate.scan(a, out=d / "run", config=ScanConfig(images=ImagesConfig(enabled=False)))
    with ViewerServer(open_viewer(d / "run", b)) as served:
        yield served


def open_tensor(page: Any, url: str, name: str) -> None:
    page.set_viewport_size({"width": 1300, "height": 900})
    page.goto(url)
    page.wait_for_selector("#tensors li")
    page.locator("#tensors li", has_text=name).first.click()
    page.wait_for_function(f"() => striate.state.name === {name!r} && striate.state.meta.a")


def hover(page: Any, r: int, c: int, pane: int = 0) -> dict[str, str]:
    """Move the mouse onto display cell (r, c) and read the hover box once the tile is in."""
    at = page.evaluate(f"striate.toPage({r}, {c}, {pane})")
    page.mouse.move(at["x"], at["y"])
    page.wait_for_function("() => !document.querySelector('#hover').innerText.includes('loading')")
    rows = page.locator("#hover div")
    return {
        rows.nth(i).get_attribute("data-k"): rows.nth(i).inner_text() for i in range(rows.count())
    }


def test_zoom_until_the_hotspot_is_one_cell_and_read_it(page: Any, url: str) -> None:
    open_tensor(page, url, "big.weight")
    assert page.evaluate("striate.state.scale") < 1  # the whole 2048 x 1024 tensor fits
    step = 2 ** page.evaluate("striate.level()")
    assert step > 1
    box = hover(page, *(i // step * step + step // 2 for i in HOT))  # the middle of its block
    assert "block" in box["index"] and box["value"] == "largest |w| 7.5000"  # kept when shrunk
    for _ in range(40):
        at = page.evaluate(f"striate.toPage({HOT[0]}, {HOT[1]})")
        page.mouse.move(at["x"], at["y"])
        page.mouse.wheel(0, -400)
        page.wait_for_timeout(30)
        if page.evaluate("striate.state.scale") >= 24:
            break
    assert page.evaluate("striate.state.scale") >= 24  # one weight is 24+ screen pixels
    box = hover(page, *HOT)
    assert box["index"] == f"row {HOT[0]}, column {HOT[1]} · index [{HOT[0]}, {HOT[1]}]"
    assert box["value"] == "value 7.5000"
    neighbour = hover(page, HOT[0], HOT[1] + 1)
    assert abs(float(neighbour["value"].split()[-1])) < 0.2  # the next cell is noise
    assert "full resolution" in page.inner_text("#zoom")
    page.mouse.click(*page.evaluate(f"striate.toPage({HOT[0]}, {HOT[1]})").values())
    page.wait_for_selector("#curve-box:not([hidden])")
    assert f"row {HOT[0]} of big.weight" in page.inner_text("#curve-title")
    assert "max 7.5000" in page.inner_text("#curve-title")
    assert page.errors == []


def test_jump_from_a_finding(page: Any, url: str) -> None:
    open_tensor(page, url, "norm.weight")
    page.click(".tabs button[data-tab=findings]")
    page.select_option("#kind", "hotspot")
    row = page.locator("#findings tbody tr").first
    assert "big.weight" in row.inner_text()
    row.click()
    page.wait_for_function("() => striate.state.name === 'big.weight' && striate.state.mark")
    assert page.evaluate("striate.state.scale") == 16
    assert hover(page, *HOT)["value"] == "value 7.5000"


def test_compare_two_models_side_by_side_and_their_difference(page: Any, url: str) -> None:
    open_tensor(page, url, "big.weight")
    page.select_option("#mode", "all")
    page.wait_for_function("() => striate.state.meta.b && striate.state.meta.diff")
    page.evaluate("striate.jump({tensor: 'big.weight', row: 105, col: 3})")
    box = hover(page, 105, 3, pane=2)
    assert box["value"].startswith("A: value ")
    a, b = float(box["value"].split()[-1]), float(box["value-b"].split()[-1])
    assert b == pytest.approx(a + 0.5, abs=1e-4)
    assert float(box["value-diff"].split()[-1]) == pytest.approx(-0.5, abs=1e-4)
    assert page.errors == []


def test_a_hostile_tensor_name_is_text(page: Any, url: str) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    open_tensor(page, url, XSS)
    assert page.locator("#tensors li", has_text=XSS).count() == 1
    assert page.inner_text("#tname") == XSS
    assert page.locator("img").count() == 0  # nothing was parsed as markup
    assert dialogs == [] and page.errors == []
