"""Tensor images: scale rule, outlier-preserving downsampling, the figure spec, and the PNG."""

from __future__ import annotations

import inspect
import itertools
import subprocess
import sys
from pathlib import Path

import matplotlib
import matplotlib.image
import numpy as np
import PIL.Image
import pytest

from striate.analyses.finding import Finding
from striate.errors import StriateError
from striate.render import (
    block_extreme,
    color_limit,
    describe_figure,
    draw_png,
    envelope,
    raster,
    render_tensor,
)
from striate.render import png as png_stage
from striate.render.describe import image_area, index_ticks
from striate.render.layout import layout
from striate.render.scale import SAMPLE, ColorLimit, format_limit
from striate.render.spec import (
    FigureSpec,
    ImagePanel,
    LinesPanel,
    Series,
    StripPanel,
    TextPanel,
)
from striate.render.style import style
from striate.render.view import DisplayAxis, view_of

PRIMES = [1, 2, 3, 5, 7, 11]
RED = np.array(matplotlib.colormaps["RdBu_r"](1.0)[:3])  # where +vmax saturates
BLUE = np.array(matplotlib.colormaps["RdBu_r"](0.0)[:3])


def line(index: tuple[int | None, ...], score: float = 10.0, kind: str = "line") -> Finding:
    return Finding(kind, index, score=score, value=score, detail="")


def image_panel(spec: FigureSpec) -> ImagePanel:
    panel = spec.panels[0]
    assert isinstance(panel, ImagePanel)
    return panel


# ---- colour scale -------------------------------------------------------------------------


def test_color_limit_is_the_999th_percentile_of_finite_abs_values() -> None:
    w = np.linspace(-1.0, 1.0, 2001)  # |w| takes 0, 0.001, ..., 1 (each twice but 0)
    vmax, how = color_limit(np.concatenate([w, [np.nan, np.inf, -np.inf]]))
    assert vmax == pytest.approx(np.percentile(np.abs(w), 99.9), rel=1e-12)
    assert how == "99.9th pct of |w|"
    assert format_limit(ColorLimit(0.42, how)) == "saturates at ±0.42 (99.9th pct of |w|)"


def test_color_limit_ignores_a_hotspot_and_handles_degenerate_tensors() -> None:
    w = np.full(10_000, 0.01)
    w[::2] = -0.01
    w[77] = 50.0
    assert color_limit(w).vmax == pytest.approx(0.01, rel=1e-12)
    assert color_limit(np.zeros(5)) == (1.0, "all zeros")
    assert color_limit(np.array([np.nan, np.inf])) == (1.0, "no finite values")
    sparse = np.zeros(10_000)
    sparse[3] = -3.0
    assert color_limit(sparse) == (3.0, "max |w|; most are 0")


def test_color_limit_of_a_big_tensor_is_estimated_from_a_fixed_sample() -> None:
    w = np.random.default_rng(1).uniform(-2.0, 2.0, SAMPLE * 2)
    first, second = color_limit(w), color_limit(w)
    assert first == second  # fixed seed: the same tensor gives the same image
    assert first.vmax == pytest.approx(1.998, rel=2e-3)
    assert first.how == "99.9th pct of |w|, sampled"
    sparse = np.zeros(SAMPLE * 2, dtype=np.float32)
    sparse[12345] = 5.0  # the sample misses it; the limit must not
    assert color_limit(sparse) == (5.0, "max |w|; most are 0")


# ---- downsampling -------------------------------------------------------------------------


def test_a_single_hotspot_survives_downsampling_50000_by_1600() -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((50_000, 1_600), dtype=np.float32)
    w *= 0.01
    w[31_337, 999] = -0.75
    ds = block_extreme(w, max_pixels=1024)
    assert (ds.row_step, ds.col_step) == (49, 2)
    assert ds.image.shape == (1021, 800)  # ceil(50000 / 49), 1600 / 2
    at = np.unravel_index(np.argmax(np.abs(ds.image)), ds.image.shape)
    assert at == (31_337 // 49, 999 // 2)
    assert ds.image[at] == np.float32(-0.75)  # the weight itself, sign kept, not a mean
    assert (ds.lo, ds.hi) == (-0.75, float(w.max()))


@pytest.mark.parametrize("max_pixels", [1, 2, 3, 4])
def test_block_extreme_matches_a_loop_over_blocks(max_pixels: int) -> None:
    rng = np.random.default_rng(max_pixels)
    for m, n in itertools.product(PRIMES, PRIMES):
        w = rng.integers(-3, 4, (m, n)).astype(np.float32)  # small ints: ±x ties happen
        ds = block_extreme(w, max_pixels)
        rs, cs = -(-m // max_pixels), -(-n // max_pixels)
        assert (ds.row_step, ds.col_step) == (rs, cs)
        expected = np.empty((-(-m // rs), -(-n // cs)), np.float32)
        for i, j in np.ndindex(*expected.shape):
            block = w[i * rs : (i + 1) * rs, j * cs : (j + 1) * cs]
            top = np.abs(block).max()
            expected[i, j] = top if top in block else -top  # a tie goes to +x
        np.testing.assert_array_equal(ds.image, expected)


def test_non_finite_values_make_their_block_nan_and_nothing_else() -> None:
    w = np.zeros((6, 6), np.float32)
    w[0, 0], w[5, 5], w[2, 3] = np.nan, -np.inf, 7.0
    ds = block_extreme(w, max_pixels=3)
    expected = np.zeros((3, 3), np.float32)
    expected[0, 0] = expected[2, 2] = np.nan
    expected[1, 1] = 7.0
    np.testing.assert_array_equal(ds.image, expected)
    assert (ds.lo, ds.hi) == (0.0, 7.0)


def test_envelope_keeps_min_and_max_of_each_block() -> None:
    v = np.array([0.0, 5.0, -1.0, np.nan, 2.0, 3.0, -4.0])
    e = envelope(v, max_points=3)
    assert e.step == 3
    np.testing.assert_array_equal(e.x, [1.0, 4.0, 6.0])
    np.testing.assert_array_equal(e.lo, [-1.0, 2.0, -4.0])
    np.testing.assert_array_equal(e.hi, [5.0, 3.0, -4.0])
    np.testing.assert_array_equal(e.nonfinite, [3])


# ---- layout: storage coordinates on screen ------------------------------------------------


def test_image_area_scales_images_by_whole_numbers_and_clamps_the_aspect() -> None:
    assert image_area(1021, 800, 1024) == (800, 1021)
    assert image_area(1024, 64, 1024) == (256, 1024)  # 16:1 drawn 4:1
    assert image_area(8, 8, 1024) == (640, 640)
    for h, w in itertools.product([1, 3, 64, 700, 1024], repeat=2):
        width, height = image_area(h, w, 1024)
        assert width % w == 0 and height % h == 0  # whole screen pixels per image pixel
        assert max(width, height) / min(width, height) <= 4.0 + 1e-9


def test_views_lay_conv_kernels_out_as_tiles_in_storage_order() -> None:
    oihw = np.random.default_rng(0).normal(size=(5, 3, 2, 7)).astype(np.float32)
    pic = view_of(oihw.shape, "oihw").arrange(oihw)
    assert pic.shape == (10, 21)
    assert pic[2 * 2 + 1, 1 * 7 + 6] == oihw[2, 1, 1, 6]
    hwio = oihw.transpose(2, 3, 1, 0)  # the same kernels stored TF-style
    np.testing.assert_array_equal(view_of(hwio.shape, "hwio").arrange(hwio), pic)
    assert view_of((3, 3, 32, 64), None).rows.axes == (3, 0)  # guessed from the kernel sides
    stacked = view_of((8, 64, 32), None)  # [E, out, in]: experts down the rows
    assert (stacked.rows.axes, stacked.cols.axes) == ((0, 1), (2,))
    assert view_of((1, 197, 768), None).rows.axes == (1,)  # length-1 axes left out
    assert "does not fit" in view_of((4, 4, 4), "linear").note


def test_display_axis_places_findings_by_the_stored_axes_they_pin() -> None:
    cols = DisplayAxis((1, 3), (32, 3))
    assert cols.locate((None, 5, None, None)) == 16.0  # mid-tile of in-channel 5
    assert cols.locate((0, 5, 1, 2)) == 17.0
    assert cols.locate((3, None, None, None)) == "spans"
    assert cols.locate((None, None, None, 1)) == "scattered"
    ticks = index_ticks(DisplayAxis((0, 2), (64, 3)), 512)
    assert ticks.labels == ("0", "20", "40", "60")  # 512 px: about one tick per 110 px
    assert ticks.positions == (1.0, 61.0, 121.0, 181.0)  # out-channel i at 3 i + 1


# ---- the figure spec ----------------------------------------------------------------------


def test_spec_of_a_gpt2_matrix_in_storage_coordinates() -> None:
    w = np.random.default_rng(0).normal(0, 0.02, (768, 3072)).astype(np.float32)
    w[310, 1024] = 0.9
    found = [line((138, None), 20), line((None, 447), 25), line((310, 1024), 40, "hotspot")]
    spec = describe_figure(
        w, title="h.0.mlp.c_fc.weight", role="ffn_in", layout="conv1d", residual_axis=0,
        findings=found,
    max_pixels=1024,)  # fmt: skip
    p = image_panel(spec)
    assert p.image.shape == (768, 1024)  # columns in blocks of 3
    assert p.extent == (-0.5, 3071.5, 767.5, -0.5)
    assert (p.x.lim, p.y.lim) == ((-0.5, 3071.5), (-0.5, 767.5))
    assert p.y.label == "axis 0 — in, residual (768)"
    assert p.x.label == "axis 1 — out (3072)"
    assert p.x.ticks.positions == tuple(float(t) for t in p.x.ticks.labels)  # ticks = indices
    assert p.limit == color_limit(p.image, of="|pixels|")
    assert p.colorbar_label == f"w, saturates at ±{p.limit.vmax:.3g}\n(99.9th pct of |pixels|)"
    assert p.extend == "both"  # the 0.1% of weights past ±vmax saturate, and say so
    assert [(m.side, m.position, m.label) for m in p.edge_marks] == [
        ("rows", 138.0, "138"),
        ("cols", 447.0, "447"),
    ]
    assert [(m.x, m.y) for m in p.points] == [(1024.0, 310.0)]
    assert "block of 1 × 3" in spec.subtitle[1]
    assert spec.subtitle[0] == "shape (768, 3072) · float32 · role ffn_in · layout conv1d"


def test_spec_of_a_huge_embedding_keeps_tick_labels_in_storage_indices() -> None:
    w = np.zeros((50_000, 16), np.float32)
    p = image_panel(
        describe_figure(w, title="wte", layout="embedding", residual_axis=1, max_pixels=1024)
    )
    assert p.image.shape == (1021, 16)
    assert p.extent == (-0.5, 15.5, 1021 * 49 - 0.5, -0.5)  # the last block is cropped
    assert p.y.lim == (-0.5, 49_999.5)
    assert p.y.ticks.labels[-1] == "50000" or int(p.y.ticks.labels[-1]) <= 49_999
    assert all(0 <= t <= 49_999 for t in p.y.ticks.positions)
    assert p.limit == (1.0, "all zeros")


def test_spec_of_a_conv_kernel_marks_channels_mid_tile() -> None:
    w = np.random.default_rng(0).normal(0, 0.1, (64, 32, 3, 3)).astype(np.float32)
    found = [line((None, 7, None, None)), line((40, 3, 1, 1), 30, "hotspot")]
    p = image_panel(describe_figure(w, title="conv", role="conv", layout="oihw", findings=found))
    assert p.image.shape == (192, 96)
    assert p.y.ticks.positions[:3] == (1.0, 61.0, 121.0)  # out-channel i at 3 i + 1
    assert p.y.ticks.labels[:3] == ("0", "20", "40")
    assert [(m.side, m.position) for m in p.edge_marks] == [("cols", 22.0)]
    assert [(m.x, m.y) for m in p.points] == [(10.0, 121.0)]
    tile_lines = [r for r in p.rules if r.kind == "tile"]
    assert len(tile_lines) == 63 + 31 and tile_lines[0].position == 2.5
    hwio = image_panel(
        describe_figure(w.transpose(2, 3, 1, 0), title="k", layout="hwio",
                        findings=[line((None, None, 7, None))])
    )  # fmt: skip
    np.testing.assert_array_equal(hwio.image, p.image)
    assert [(m.side, m.position) for m in hwio.edge_marks] == [("cols", 22.0)]
    assert hwio.y.label == "axis 3 — out (64)"


def test_a_big_conv_shrinks_by_whole_kernels() -> None:
    w = np.random.default_rng(0).normal(size=(512, 512, 3, 3)).astype(np.float32)
    spec = describe_figure(w, title="conv", layout="oihw")
    p = image_panel(spec)
    assert p.image.shape == (512, 512)  # one pixel per kernel, not 2x2 blocks across kernels
    kernels = w.reshape(512, 512, 9)
    picked = np.take_along_axis(kernels, np.abs(kernels).argmax(-1)[..., None], -1)[..., 0]
    np.testing.assert_array_equal(p.image, picked)
    assert p.extent == (-0.5, 1535.5, 1535.5, -0.5)
    assert "block of 3 × 3 (whole kernels)" in spec.subtitle[1]
    assert not [r for r in p.rules if r.kind == "tile"]  # 1 px per tile: no grid


def test_spec_draws_head_boundaries_or_says_why_not() -> None:
    w = np.ones((768, 96), np.float32)
    spec = describe_figure(w, title="q", layout="linear", head_blocks=(12, 0))
    heads = [r.position for r in image_panel(spec).rules if r.kind == "head"]
    assert heads == [64.0 * k - 0.5 for k in range(1, 12)]
    bad = describe_figure(w, title="q", layout="linear", head_blocks=(7, 0))
    assert image_panel(bad).rules == ()
    assert "does not split into 7 heads" in " ".join(bad.notes)


def test_spec_of_a_position_embedding_adds_channel_lines() -> None:
    pos = np.arange(1024)[:, None] * (1.0 / 10_000 ** (np.arange(64)[None, :] / 64))
    w = np.sin(pos).astype(np.float32)
    spec = describe_figure(
        w, title="wpe", role="position_embedding", layout="embedding", residual_axis=1,
        periodic_channels=[10, 20, 999],
    )  # fmt: skip
    image, lines = spec.panels
    assert isinstance(image, ImagePanel) and isinstance(lines, LinesPanel)
    assert image.y.label == "axis 0 — position (1024)"
    assert [s.label for s in lines.series] == ["10", "20"]
    np.testing.assert_array_equal(lines.series[0].y, w[:, 10])
    assert lines.xaxis.label == "axis 0 — position (1024)"
    assert [(m.position, m.color) for m in image.edge_marks] == [
        (10.0, lines.series[0].color),
        (20.0, lines.series[1].color),
    ]
    assert any("1 periodic channels left out" in n for n in spec.notes)


def test_spec_of_a_gain_vector_is_a_strip_with_red_outliers() -> None:
    g = np.full(1600, 1.0, np.float32)
    g[99], g[777] = 4.2, np.nan
    found = [line((99,), 60, "norm_outlier"), line((2000,), 1, "norm_outlier")]
    spec = describe_figure(g, title="ln_1.weight", role="norm", layout="vector",
                           residual_axis=0, findings=found, max_pixels=1024)  # fmt: skip
    (p,) = spec.panels
    assert isinstance(p, StripPanel)
    assert p.step == 2 and p.x.size == 800  # a min-max envelope, 900 px wide at most
    assert [(m.x, m.y, m.label, m.color) for m in p.points] == [
        (99.0, pytest.approx(4.2, rel=1e-7), "99", "#d62728")
    ]
    assert p.nonfinite == (777.0,)
    assert p.ylim[0] < 1.0 and p.ylim[1] > 4.2
    assert p.xaxis.label == "axis 0 — residual (1600)"
    assert "1 finding not placeable" in spec.notes
    assert "green ticks: non-finite values (1 NaN)" in spec.notes


def test_spec_of_scalars_empty_and_length_one_axes() -> None:
    (card,) = describe_figure(np.float32(0.125), title="s").panels
    assert isinstance(card, TextPanel) and card.lines == ("a single value: 0.125",)
    (empty,) = describe_figure(np.zeros((0, 8)), title="e").panels
    assert isinstance(empty, TextPanel) and empty.lines == ("empty tensor: no values",)
    (strip,) = describe_figure(np.arange(8.0).reshape(1, 8, 1), title="cls").panels
    assert isinstance(strip, StripPanel) and strip.xaxis.label == "axis 1 (8)"
    with pytest.raises(StriateError, match="unknown layout 'nchw'"):
        describe_figure(np.ones((2, 2)), title="x", layout="nchw")


def test_spec_counts_and_circles_non_finite_values() -> None:
    w = np.zeros((64, 64), np.float32)
    w[3, 4], w[10, 10] = np.nan, np.inf
    spec = describe_figure(w, title="x")
    p = image_panel(spec)
    assert [(m.x, m.y, m.kind) for m in p.points] == [
        (4.0, 3.0, "nonfinite"),
        (10.0, 10.0, "nonfinite"),
    ]
    assert "green: non-finite values (1 NaN, 1 +Inf), circled in green" in spec.notes


# ---- the PNG ------------------------------------------------------------------------------


def png_pixel(spec: FigureSpec, x: float, y: float) -> tuple[int, int]:
    """(row, column) in the PNG of display position (x, y) in the first panel."""
    with style():
        fig = png_stage.build_figure(spec)
        px, py = fig.axes[0].transData.transform((x, y))
        return int(fig.bbox.height - py), int(px)


def test_png_shows_hotspots_saturated_where_they_are(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4000, 3000), dtype=np.float32) * np.float32(0.01)
    w[1234, 2345], w[3001, 17] = 0.9, -0.8
    spec = describe_figure(w, title="big", max_pixels=1024)
    p = image_panel(spec)
    assert p.image.shape == (1000, 1000) and p.size == (1000, 1000)
    draw_png(spec, tmp_path / "big.png")
    rgb = matplotlib.image.imread(tmp_path / "big.png")[..., :3]
    with style():
        fig = png_stage.build_figure(spec)
        assert rgb.shape[:2] == (round(fig.bbox.height), round(fig.bbox.width))
        box = fig.axes[0].get_window_extent()
        assert (round(box.width), round(box.height)) == p.size  # drawn 1:1, never shrunk
    np.testing.assert_allclose(rgb[png_pixel(spec, 2345, 1234)], RED, atol=0.02)
    np.testing.assert_allclose(rgb[png_pixel(spec, 17, 3001)], BLUE, atol=0.02)
    top, left = png_pixel(spec, -0.5, -0.5)
    area = rgb[top : top + 1000, left : left + 1000]
    saturated = np.linalg.norm(area - RED, axis=-1) < 0.05
    assert saturated.mean() < 0.003  # robust scale: only the top 0.1% of pixels saturate


def test_png_draws_nan_green(tmp_path: Path) -> None:
    w = np.zeros((40, 40), np.float32)
    w[20:30, 5:15] = np.nan
    spec = describe_figure(w, title="nan")
    render_tensor(w, tmp_path / "nan.png", title="nan")
    rgb = matplotlib.image.imread(tmp_path / "nan.png")[..., :3]
    np.testing.assert_allclose(rgb[png_pixel(spec, 10, 25)], [0.0, 0.753, 0.0], atol=0.02)
    np.testing.assert_allclose(rgb[png_pixel(spec, 30, 5)], [1.0, 1.0, 1.0], atol=0.1)


def test_names_with_math_characters_are_drawn_verbatim(tmp_path: Path) -> None:
    name = r"$x$ {} a_b^c \frac{ $"  # unbalanced: mathtext would raise on it
    spec = describe_figure(np.eye(4, dtype=np.float32), title=name)
    render_tensor(np.eye(4, dtype=np.float32), tmp_path / "m.png", title=name)
    assert (tmp_path / "m.png").stat().st_size > 0
    with style():
        fig = png_stage.build_figure(spec)
    texts = [t for t in fig.texts if t.get_text() == name]
    assert len(texts) == 1 and texts[0].get_parse_math() is False


@pytest.mark.parametrize("renderer", ["raster", "matplotlib"])
def test_png_is_written_atomically(
    renderer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "deep" / "t.png"
    render_tensor(np.ones((3, 3), np.float32), out, title="t", renderer=renderer)
    before = out.read_bytes()

    def broken(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(png_stage, "_encode", broken)
    monkeypatch.setattr(raster, "encode", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        render_tensor(np.zeros((3, 3), np.float32), out, title="t", renderer=renderer)
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["t.png"]  # no temp file left


def test_a_broken_panel_becomes_a_message_and_the_rest_renders(tmp_path: Path) -> None:
    good = describe_figure(np.eye(8, dtype=np.float32), title="x")
    bad = LinesPanel(np.arange(5.0), (Series("0", np.arange(3.0), "k"),), image_panel(good).x,
                     "w", (600, 64))  # fmt: skip
    spec = FigureSpec("x", (), (good.panels[0], bad), ())
    draw_png(spec, tmp_path / "x.png")
    with style():
        fig = png_stage.build_figure(spec)
    words = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any(w.startswith("could not draw this panel") for w in words)


def test_rendering_leaves_pyplot_and_rcparams_alone(tmp_path: Path) -> None:
    code = (
        "import sys, numpy as np, matplotlib\n"
        "from striate.render import render_tensor\n"
        # raw reads: rcParams['backend'] (or ==, which reads it) would itself import pyplot
        "raw = lambda: dict(dict.items(matplotlib.rcParams))\n"
        "rc = raw()\n"
        f"render_tensor(np.eye(5, dtype=np.float32), {str(tmp_path / 'e.png')!r}, title='e')\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "assert raw() == rc\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_render_tensor_signature_is_the_orchestrators_contract() -> None:
    params = inspect.signature(render_tensor).parameters
    assert list(params) == [
        "w", "path", "title", "role", "layout", "residual_axis", "findings", "head_blocks",
        "periodic_channels", "max_pixels", "renderer",
    ]  # fmt: skip
    assert all(params[p].kind is inspect.Parameter.KEYWORD_ONLY for p in list(params)[2:])
    assert params["max_pixels"].default == 512


@pytest.mark.parametrize(
    "w",
    [
        np.full((3, 5), np.nan, np.float32),
        np.full(7, np.inf, np.float32),
        np.arange(30, dtype=np.int64).reshape(2, 3, 5),
        np.ones((2, 3, 5, 7), np.float16),
        np.zeros((1, 1, 11), bool),
        np.random.default_rng(0).normal(size=(2, 3, 5, 7, 11)),
        np.zeros((5, 0), np.float32),
    ],
    ids=lambda w: "x".join(map(str, w.shape)) + f"-{w.dtype}",
)
def test_odd_tensors_still_render(w: np.ndarray, tmp_path: Path) -> None:
    findings = [line((0,) * w.ndim)]
    render_tensor(w, tmp_path / "odd.png", title="odd", findings=findings)
    with PIL.Image.open(tmp_path / "odd.png") as image:
        assert image.mode == "P"
    plan = layout(describe_figure(w, title="odd", findings=findings))
    canvas = raster.Canvas(plan.width, round(plan.height), 150)
    for box in plan.panels:  # no panel fails (a failure would be drawn as a message)
        raster._draw_panel(canvas, box.left, box.top, box.panel, box.colorbar_left)
