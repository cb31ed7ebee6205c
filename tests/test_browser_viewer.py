"""The viewer in a real browser: zoom to a planted hotspot and read it from the hover box; it
opens on the strongest finding, labels its axes in stored indices, shows its colour scale, and
wraps long names only between their pieces.

Debian's headless chromium (conftest's `page` fixture) against `striate view` on a free port.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from test_viewer import HOT, XSS, planted_model

import striate
from striate.render.scale import color_limit
from striate.scan import ImagesConfig, ScanConfig
from striate.viewer import ViewerServer, open_viewer
from striate.viewer.specimen import pyramid

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


# -- opening on the strongest finding, rulers, colour bar, names ---------------------------------

LONG = "model.layers.10.self_attn.q_proj.weight"
POSITIONS = "model.embed_positions.weight"  # the first matrix: what the viewer opened on before
LONG_HOT = (123, 45)
SEPARATORS = "._/"


@pytest.fixture(scope="module")
def long_names(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A run whose one finding (a hotspot of 6.5) is in the second of two long-named tensors,
    served as a run and, for comparison, as the bare model (no findings)."""
    d = tmp_path_factory.mktemp("browser-viewer-long")
    rng = np.random.default_rng(0)
    q = rng.normal(0, 0.02, (300, 200)).astype(np.float32)
    q[LONG_HOT] = 6.5
    tensors = {POSITIONS: rng.normal(0, 0.02, (64, 48)).astype(np.float32), LONG: q}
    model = d / "m.safetensors"
    save_file({k: torch.from_numpy(v) for k, v in tensors.items()}, str(model))
    striate.scan(model, out=d / "run", config=ScanConfig(images=ImagesConfig(enabled=False)))
    with ViewerServer(open_viewer(d / "run")) as run, ViewerServer(open_viewer(model)) as bare:
        yield {"run": run, "bare": bare}


def opened(page: Any, address: str) -> str:
    """Load the page with no click and return the tensor it opens on, once it is drawn."""
    page.set_viewport_size({"width": 1300, "height": 900})
    page.goto(address)
    page.wait_for_function("() => striate.state.meta.a && !striate.state.frame")
    name: str = page.evaluate("striate.state.name")
    return name


def ruler(page: Any, side: str) -> list[dict[str, Any]]:
    """The tick labels of pane 0's `cols` or `rows` ruler: text and box on the page."""
    return page.evaluate(
        f"""[...document.querySelectorAll('.pane .ruler.{side} span')].map((s) => {{
            const b = s.getBoundingClientRect();
            return {{label: s.textContent, left: b.left, right: b.right, top: b.top,
                     bottom: b.bottom, x: (b.left + b.right) / 2, y: (b.top + b.bottom) / 2}};
        }})"""
    )


def step_of(labels: list[int]) -> int:
    steps = {b - a for a, b in itertools.pairwise(labels)}
    assert len(steps) == 1, labels
    return steps.pop()


def is_nice(step: int) -> bool:
    return str(step).rstrip("0") in ("1", "2", "5")  # 1, 2 or 5 times a power of ten


def settle(page: Any) -> None:
    page.wait_for_function("() => !striate.state.frame")  # the frame asked for is drawn


def test_opens_on_the_strongest_finding_zoomed_onto_it(
    page: Any, long_names: dict[str, str]
) -> None:
    assert opened(page, long_names["run"]) == LONG
    page.wait_for_function("() => striate.state.mark")
    mark = page.evaluate("striate.state.mark")
    assert mark == {"rows": [LONG_HOT[0], LONG_HOT[0] + 1], "cols": [LONG_HOT[1], LONG_HOT[1] + 1]}
    assert page.evaluate("striate.state.scale") == 16
    canvas = page.locator(".pane .area canvas").first.bounding_box()
    at = page.evaluate(f"striate.toPage({LONG_HOT[0]}, {LONG_HOT[1]})")
    assert at["x"] == pytest.approx(canvas["x"] + canvas["width"] / 2, abs=1)  # centred on it
    assert at["y"] == pytest.approx(canvas["y"] + canvas["height"] / 2, abs=1)
    assert hover(page, *LONG_HOT)["value"] == "value 6.5000"
    assert "strongest finding: hotspot, index [123, 45]" in page.inner_text("#status")
    assert page.errors == []


def test_the_strongest_is_by_significance_then_score(page: Any, url: str) -> None:
    # the planted run: banding in conv.weight (significance ~2300) beats the 7.5 hotspot (~100);
    # the old default was the first matrix, the hostile 8 x 8 name
    assert opened(page, url) == "conv.weight"
    assert "strongest finding: banding" in page.inner_text("#status")
    assert page.evaluate("striate.state.mark") is None  # banding has no one place: the whole
    assert page.errors == []


def test_an_address_naming_a_tensor_wins_and_a_bare_model_opens_as_before(
    page: Any, long_names: dict[str, str]
) -> None:
    assert opened(page, long_names["run"] + "#" + urlencode({"t": POSITIONS})) == POSITIONS
    page.wait_for_timeout(300)  # nothing moves it on to the finding afterwards
    assert page.evaluate("[striate.state.name, striate.state.mark]") == [POSITIONS, None]
    assert "strongest" not in page.inner_text("#status")
    assert opened(page, long_names["bare"]) == POSITIONS  # no run, no findings: the first matrix
    assert page.evaluate("striate.state.mark") is None
    assert page.errors == []


def test_ticks_in_storage_indices_at_nice_steps_follow_the_zoom(page: Any, url: str) -> None:
    open_tensor(page, url, "big.weight")
    settle(page)
    steps = {}
    for side, size in (("cols", 1024), ("rows", 2048)):
        ticks = ruler(page, side)
        labels = [int(t["label"]) for t in ticks]
        assert len(labels) >= 3 and labels[0] >= 0 and labels[-1] < size
        steps[side] = step_of(labels)
        assert is_nice(steps[side]) and steps[side] > 1  # the whole tensor: not every index
        for t, n in zip(ticks, labels, strict=True):  # each label is over its row or column
            at = page.evaluate(f"striate.toPage({n}, {n})")
            assert (t["x"] if side == "cols" else t["y"]) == pytest.approx(
                at["x"] if side == "cols" else at["y"], abs=1
            )
        for a, b in itertools.pairwise(ticks):  # labels do not overlap
            assert (a["right"] < b["left"]) if side == "cols" else (a["bottom"] < b["top"])
    page.click("#zin")
    page.click("#zin")
    settle(page)
    for side in ("cols", "rows"):
        labels = [int(t["label"]) for t in ruler(page, side)]
        assert step_of(labels) < steps[side] and is_nice(step_of(labels))
    page.evaluate(f"striate.jump({{tensor: 'big.weight', row: {HOT[0]}, col: {HOT[1]}}})")
    page.click("#zin")
    page.click("#zin")  # 64 pixels per weight: every index has its label
    settle(page)
    cols = [int(t["label"]) for t in ruler(page, "cols")]
    rows = [int(t["label"]) for t in ruler(page, "rows")]
    assert step_of(cols) == 1 and HOT[1] in cols
    assert step_of(rows) == 1 and HOT[0] in rows
    assert page.errors == []


def test_ticks_of_a_conv_kernel_grid_name_stored_indices(page: Any, url: str) -> None:
    # conv.weight (64, 32, 3, 3) is drawn as 64 x 32 tiles of 3 x 3: display row 3 * o + kh
    open_tensor(page, url, "conv.weight")
    settle(page)
    rows = [int(t["label"]) for t in ruler(page, "rows")]
    assert rows[-1] <= 63 and step_of(rows) >= 1  # output channels, not display rows (0..191)
    page.evaluate("striate.jump({tensor: 'conv.weight', row: 3 * 20 + 1, col: 3 * 10 + 2})")
    page.click("#zin")
    page.click("#zin")  # 64 pixels per weight: the kernel's own indices too
    settle(page)
    for side in ("rows", "cols"):
        ticks = ruler(page, side)
        assert ticks
        for t in ticks:
            outer, inner = map(int, t["label"].split(","))
            cell = 3 * outer + inner
            at = page.evaluate(f"striate.toPage({cell}, {cell})")
            assert (t["y"] if side == "rows" else t["x"]) == pytest.approx(
                at["y"] if side == "rows" else at["x"], abs=1
            )
    assert "20,1" in [t["label"] for t in ruler(page, "rows")]
    assert "10,2" in [t["label"] for t in ruler(page, "cols")]
    assert page.errors == []


def bar_labels(page: Any) -> tuple[float, str, float]:
    lo, zero, hi = (page.inner_text(f".pane .cbar .{k}") for k in ("lo", "zero", "hi"))
    return float(lo), zero, float(hi)


def test_colour_bar_shows_the_limit_the_canvas_uses(page: Any, url: str, tmp_path: Path) -> None:
    open_tensor(page, url, "big.weight")
    settle(page)
    w = striate.open(planted_model(tmp_path / "a.safetensors")).read("big.weight")  # as served
    levels_ = pyramid(w, 4)
    shrunk = page.evaluate("striate.level()")
    assert shrunk > 0
    expected = color_limit(levels_[shrunk], of="|pixels|").vmax  # the report's rule, this level
    lo, zero, hi = bar_labels(page)
    assert hi == pytest.approx(expected, rel=1e-4) and lo == -hi and zero == "0"
    page.evaluate(f"striate.jump({{tensor: 'big.weight', row: {HOT[0]}, col: {HOT[1]}}})")
    assert hover(page, *HOT)["value"] == "value 7.5000"  # full resolution, its tile is in
    settle(page)
    lo, zero, hi = bar_labels(page)
    assert hi == pytest.approx(color_limit(w).vmax, rel=1e-4) and lo == -hi
    # the bar's ends are the canvas's colours at -vmax and +vmax: 7.5 saturates to the red end
    bar = page.evaluate(
        """(() => { const c = document.querySelector('.pane .cbar canvas');
                    const d = c.getContext('2d').getImageData(0, 0, c.width, 1).data;
                    return [[...d.slice(0, 3)], [...d.slice(-4, -1)], c.width]; })()"""
    )
    assert bar[0] == [5, 48, 97] and bar[1] == [103, 0, 31]  # RdBu_r's ends
    at = page.evaluate(
        f"""(() => {{ const c = document.querySelector('.pane .area canvas');
            const b = c.getBoundingClientRect(), p = striate.toPage({HOT[0]}, {HOT[1]});
            const d = c.getContext('2d').getImageData(p.x - b.left, p.y - b.top, 1, 1).data;
            return [...d.slice(0, 3)]; }})()"""
    )
    assert at == bar[1]
    assert page.errors == []


CHAR_TOPS = """(box) => {
    // each character of the element's text with the top of its box on the page
    const out = [], walk = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
    for (let n = walk.nextNode(); n; n = walk.nextNode()) {
        for (let i = 0; i < n.data.length; i++) {
            const r = document.createRange();
            r.setStart(n, i); r.setEnd(n, i + 1);
            out.push([n.data[i], r.getClientRects()[0].top]);
        }
    }
    return out;
}"""


def line_breaks(page: Any, selector: str) -> list[int]:
    """Where the name in `selector` wraps: the index of each character that starts a new line."""
    chars = page.locator(selector).first.evaluate(CHAR_TOPS)
    assert "".join(c for c, _ in chars) == LONG  # all of it, as text
    return [i for i in range(1, len(chars)) if chars[i][1] > chars[i - 1][1] + 2]


def test_long_names_wrap_only_after_separators(page: Any, long_names: dict[str, str]) -> None:
    opened(page, long_names["run"])
    page.evaluate("document.querySelector('#side').style.width = '150px'")
    page.wait_for_timeout(50)
    breaks = line_breaks(page, f"#tensors li[data-name='{LONG}'] .name")
    assert len(breaks) >= 2  # it does wrap in a 150-pixel panel
    assert all(LONG[i - 1] in SEPARATORS for i in breaks), [LONG[:i] for i in breaks]
    page.click(".tabs button[data-tab=findings]")
    page.wait_for_selector("#findings tbody tr")
    breaks = line_breaks(page, "#findings td.tensor .name")
    assert breaks and all(LONG[i - 1] in SEPARATORS for i in breaks)
    page.set_viewport_size({"width": 600, "height": 900})  # the title beside the side panel
    page.wait_for_timeout(50)
    assert all(LONG[i - 1] in SEPARATORS for i in line_breaks(page, "#tname .name"))
    assert page.errors == []
