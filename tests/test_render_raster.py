"""The PIL renderer: colours against matplotlib's own colormap, marks where the spec puts them,
the same canvas as the matplotlib renderer, palette PNGs."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import PIL.Image
import pytest
from matplotlib.colors import Normalize

from striate.analyses.finding import Finding
from striate.render import describe_figure, draw_png
from striate.render.layout import layout
from striate.render.png import build_figure
from striate.render.raster import (
    LEVELS,
    build_image,
    color_index,
    colormap_table,
    draw_raster,
    image_pixels,
    nice_ticks,
    palette_colors,
    palette_index,
    rgb,
    tick_label,
)
from striate.render.spec import CMAP, ImagePanel
from striate.render.style import style


def finding(index: tuple[int | None, ...], kind: str = "line") -> Finding:
    return Finding(kind, index, score=10.0, value=10.0, detail="")


def read(path: Path) -> np.ndarray:
    with PIL.Image.open(path) as image:
        assert image.mode == "P"  # one byte a pixel
        return np.asarray(image.convert("RGB"))


def data_area(spec_path: tuple[object, Path]) -> tuple[np.ndarray, int, int]:
    spec, path = spec_path
    box = layout(spec).panels[0]  # type: ignore[arg-type]
    return read(path), box.left, round(box.top)


def test_colours_are_matplotlibs_for_the_same_limit() -> None:
    rng = np.random.default_rng(0)
    vmax = 0.37
    v = np.concatenate([rng.normal(0, 0.3, 5000), [-vmax, vmax, -5.0, 5.0, 0.0, np.nan]])
    cmap = matplotlib.colormaps[CMAP].resampled(LEVELS).with_extremes(bad="#00c000")
    expected = np.round(cmap(Normalize(-vmax, vmax)(np.ma.masked_invalid(v)))[:, :3] * 255)
    np.testing.assert_array_equal(colormap_table()[color_index(v, vmax)], expected)


def test_image_pixels_blow_each_weight_up_to_a_uniform_block() -> None:
    w = np.random.default_rng(1).normal(size=(64, 48)).astype(np.float32)
    panel = describe_figure(w, title="w", max_pixels=1024).panels[0]
    assert isinstance(panel, ImagePanel) and panel.size == (480, 640)  # 10 px a weight
    pixels = image_pixels(panel)
    colours = colormap_table()[color_index(w, panel.limit.vmax)]
    np.testing.assert_array_equal(pixels, np.repeat(np.repeat(colours, 10, 0), 10, 1))


def test_a_shrunk_image_keeps_its_hotspots_saturated_where_they_are(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4000, 3000), dtype=np.float32) * np.float32(0.01)
    w[1234, 2345], w[3001, 17] = 0.9, -0.8
    spec = describe_figure(w, title="big", max_pixels=1024)
    draw_raster(spec, tmp_path / "big.png")
    pixels, left, top = data_area((spec, tmp_path / "big.png"))
    # 4000 x 3000 shown as 1000 x 1000 pixels: block (4, 3); the hotspot's block is its pixel
    np.testing.assert_array_equal(pixels[top + 1234 // 4, left + 2345 // 3], colormap_table()[-2])
    np.testing.assert_array_equal(pixels[top + 3001 // 4, left + 17 // 3], colormap_table()[0])
    area = pixels[top : top + 1000, left : left + 1000]
    saturated = (area == colormap_table()[LEVELS - 1]).all(-1)
    assert 0 < saturated.mean() < 0.003  # robust scale: only the top 0.1% of pixels saturate


def test_marks_rules_and_non_finite_values_are_drawn(tmp_path: Path) -> None:
    w = np.zeros((64, 48), np.float32)
    w[40, :5] = np.nan
    found = [finding((30, None)), finding((10, 20), "hotspot")]
    spec = describe_figure(w, title="marks", findings=found, head_blocks=(4, 1), max_pixels=1024)
    draw_raster(spec, tmp_path / "m.png")
    pixels, left, top = data_area((spec, tmp_path / "m.png"))
    s = 10  # pixels a weight
    green = rgb("#00c000")
    np.testing.assert_array_equal(pixels[top + 40 * s + 5, left + 2 * s + 5], green)
    white = colormap_table()[color_index(np.zeros(1), 1.0)][0]
    np.testing.assert_array_equal(pixels[top + 20 * s + 5, left + 2 * s + 5], white)
    # the row line's mark: a black triangle just right of the image at row 30's centre
    right = left + 48 * s
    assert (pixels[top + 30 * s + 5, right + 4 : right + 12] == 0).all(-1).any()
    # the hotspot's circle: black pixels on a ring of radius ~8 around (10, 20)'s centre
    cy, cx = top + 10 * s + 5, left + 20 * s + 5
    ring = [pixels[cy + round(8 * np.sin(a)), cx + round(8 * np.cos(a))] for a in np.arange(8)]
    assert sum(int(p.max()) < 90 for p in ring) >= 6
    # head boundaries: 4 blocks of 12 columns; a dark line at columns 12, 24, 36
    row = pixels[top + 5 * s + 5, left : left + 48 * s].astype(int).sum(-1)
    dark = {x // s for x in np.flatnonzero(row < 3 * 120)}
    assert dark == {12, 24, 36}


def test_same_canvas_as_the_matplotlib_renderer(tmp_path: Path) -> None:
    w = np.random.default_rng(2).normal(size=(300, 200)).astype(np.float32)
    spec = describe_figure(w, title="t", findings=[finding((None, 7))])
    draw_raster(spec, tmp_path / "r.png")
    draw_png(spec, tmp_path / "m.png")
    with PIL.Image.open(tmp_path / "r.png") as r, PIL.Image.open(tmp_path / "m.png") as m:
        assert r.size == m.size
    with style():
        fig = build_figure(spec)
        box = fig.axes[0].get_window_extent()
    placed = layout(spec).panels[0]
    assert round(box.x0) == placed.left
    assert round(fig.bbox.height - box.y1) == round(placed.top)


def test_palette_holds_the_maps_colours_exactly_and_maps_other_colours_to_the_nearest() -> None:
    colors = palette_colors()
    assert len(colors) <= 256
    others = np.random.default_rng(3).integers(0, 256, (50, 3))
    index = palette_index(np.vstack([colors, others]).astype(np.uint8)[None])[0]
    np.testing.assert_array_equal(colors[index[: len(colors)]], colors)
    for color, k in zip(others, index[len(colors) :], strict=True):
        gaps = [int(((color - c.astype(int)) ** 2).sum()) for c in colors]
        assert gaps[k] == min(gaps)


def test_a_broken_panel_becomes_a_message(tmp_path: Path) -> None:
    good = describe_figure(np.eye(8, dtype=np.float32), title="x").panels[0]
    assert isinstance(good, ImagePanel)
    bad = ImagePanel(np.arange(3.0), good.extent, good.x, good.y, good.limit, "w", "both", (), (),
                     (), good.size)  # fmt: skip
    spec = describe_figure(np.eye(8, dtype=np.float32), title="x")
    spec = type(spec)("x", (), (good, bad), ())
    image = np.asarray(build_image(spec))
    box = layout(spec).panels[1]
    area = image[round(box.top) : round(box.top) + bad.size[1], box.left : box.left + bad.size[0]]
    assert (np.abs(area.astype(int) - rgb("#b00000")).sum(-1) < 60).any()  # the red message
    assert (area == 255).all(-1).mean() > 0.9  # and no image


@pytest.mark.parametrize(
    ("lo", "hi", "labels"),
    [(-0.1, 0.1, ["−0.10", "−0.05", "0", "0.05", "0.10"]), (0.0, 30.0, ["0", "10", "20", "30"])],
)
def test_ticks_are_round_and_labelled_with_the_decimals_they_need(
    lo: float, hi: float, labels: list[str]
) -> None:
    ticks = nice_ticks(lo, hi, 5)
    assert [tick_label(v, ticks) for v in ticks] == labels
