"""`striate.show` and `Run._repr_html_`: the summary's numbers, and the same pixels as a scan."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import planted
import pytest
import torch
from PIL import Image

import striate
from striate.analyses.findings import finding_groups
from striate.run import Run
from striate.scan.images import image_name

XSS = "<img src=x onerror=alert(1)>"


def _pixels(png: bytes | Path) -> np.ndarray:
    data = png.read_bytes() if isinstance(png, Path) else png
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[planted.Planted, Run]:
    root = tmp_path_factory.mktemp("display")
    truth = planted.gpt2(root / "model")
    return truth, striate.scan(truth.path, root / "run")


def _image(run: Run, name: str) -> Path:
    assert run.path is not None
    position = list(run.tensors["name"]).index(name)
    path = run.path / "images" / image_name(position, name)
    assert path.is_file()
    return path


def test_summary_statistics_ignore_nan_and_inf() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(0.5, 2.0, (37, 53)).astype(np.float32)
    finite = w.copy()
    w[3, 5] = w[11, 0] = w[36, 52] = np.nan
    w[7, 7] = np.inf
    w[20, 1] = -np.inf
    ok = np.isfinite(w)
    shown = striate.show(w, "planted")
    assert (shown.n_nan, shown.n_inf, shown.numel) == (3, 2, 37 * 53)
    assert shown.shape == (37, 53) and shown.dtype == "float32"
    x = w[ok].astype(np.float64)
    assert x.size == 37 * 53 - 5 and not np.array_equal(x, finite.ravel())
    assert shown.mean == pytest.approx(x.mean(), rel=1e-12)
    assert shown.std == pytest.approx(x.std(), rel=1e-12)
    assert (shown.min, shown.max) == (float(x.min()), float(x.max()))
    assert (
        str(shown)
        == repr(shown)
        == (
            f"planted: shape (37, 53) · float32 · range [{shown.min:.4g}, {shown.max:.4g}] · "
            f"mean {shown.mean:.4g} · std {shown.std:.4g} · 3 NaN · 2 Inf"
        )
    )


def test_stats_of_a_tensor_past_one_chunk_match_numpy() -> None:
    w = np.random.default_rng(1).normal(3.0, 0.25, 3 * (1 << 20) + 7).astype(np.float32)
    shown = striate.show(w)
    np.testing.assert_allclose([shown.mean, shown.std], [w.mean(dtype=np.float64),
                               w.astype(np.float64).std()], rtol=1e-12)  # fmt: skip
    assert Image.open(io.BytesIO(shown.png)).size[0] > 0


def test_png_decodes_and_html_embeds_it() -> None:
    shown = striate.show(np.eye(7, dtype=np.float32), "eye")
    image = Image.open(io.BytesIO(shown._repr_png_()))
    assert image.format == "PNG" and min(image.size) >= 256
    assert shown.png.startswith(b"\x89PNG")
    html = shown._repr_html_()
    assert 'src="data:image/png;base64,' in html and "eye: shape (7, 7)" in html


@pytest.mark.parametrize(
    ("x", "says"),
    [
        (
            np.arange(12, dtype=np.int32).reshape(3, 4),
            "shape (3, 4) · int32 · range [0, 11] · mean 5.5",
        ),
        (np.array([True, False, True, True]), "shape (4,) · bool · range [0, 1] · mean 0.75"),
        (np.float32(2.5), "shape () · float32 · value 2.5 · 0 NaN · 0 Inf"),
        (np.zeros((0, 5), dtype=np.float32), "shape (0, 5) · float32 · empty"),
        (np.full((3, 2), np.nan), "shape (3, 2) · float64 · no finite values · 6 NaN · 0 Inf"),
        (np.array([1.0, 2.0], dtype=np.float16), "shape (2,) · float16 · range [1, 2] · mean 1.5"),
        ([[1, 2], [3, 5]], "shape (2, 2) · int64 · range [1, 5] · mean 2.75"),
    ],
)
def test_odd_arrays_say_what_they_are(x: object, says: str) -> None:
    shown = striate.show(x)
    assert str(shown).startswith(says)
    assert _pixels(shown.png).ndim == 3


def test_torch_bfloat16_tensor() -> None:
    t = torch.linspace(-1, 1, 6 * 10, requires_grad=True).reshape(6, 10).to(torch.bfloat16)
    shown = striate.show(t * 2, "bf16")
    x = (t * 2).detach().float().numpy().astype(np.float64)
    assert shown.dtype == "bfloat16" and shown.shape == (6, 10)
    assert (shown.min, shown.max) == (-2.0, 2.0)
    assert shown.mean == pytest.approx(x.mean(), abs=1e-12)
    assert shown.std == pytest.approx(x.std(), rel=1e-12)


def test_a_checkpoint_tensor_is_the_image_the_scan_wrote(
    scanned: tuple[planted.Planted, Run],
) -> None:
    truth, run = scanned
    name = "h.0.attn.c_proj.weight"  # no findings, so no marks to pass
    assert not (run.findings["tensor"] == name).any()
    shown = striate.show(name, model=truth.path)
    np.testing.assert_array_equal(_pixels(shown.png), _pixels(_image(run, name)))
    assert (shown.dtype, shown.shape) == ("F32", (planted.D, planted.D))
    assert str(shown).startswith(f"{name}: shape (64, 64) · F32 · range [")
    with striate.open(truth.path) as ckpt:
        a = striate.show(ckpt, "h.0.attn.c_proj.weight")
        b = striate.show("h.0.attn.c_proj.weight", model=ckpt)
    assert a.png == b.png


def test_run_show_marks_the_findings_as_the_report_does(
    scanned: tuple[planted.Planted, Run],
) -> None:
    truth, run = scanned
    # a line and a head finding; a hotspot; norm outliers on a strip; periodic channels
    names = [truth.head_tensor, truth.hotspot[0], "ln_f.weight", "wpe.weight"]
    for name in names:
        assert (run.findings["tensor"] == name).any(), name
        shown = run.show(name)
        np.testing.assert_array_equal(_pixels(shown.png), _pixels(_image(run, name)), err_msg=name)
        plain = striate.show(name, model=truth.path)
        assert not np.array_equal(_pixels(plain.png), _pixels(shown.png)), name
    loaded = Run.load(run.path)  # type: ignore[arg-type]
    again = loaded.show(truth.hotspot[0])
    np.testing.assert_array_equal(_pixels(again.png), _pixels(_image(run, truth.hotspot[0])))


def test_names_are_escaped_in_html(scanned: tuple[planted.Planted, Run]) -> None:
    shown = striate.show(np.ones((2, 3)), XSS)
    html = shown._repr_html_()
    assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt;" in html

    _, run = scanned
    strongest = finding_groups(run.findings).iloc[0]
    page = run._repr_html_()
    assert f"<td>{strongest['group']}</td>" in page
    assert f"<td>{run.manifest['family']}</td>" in page and "<td>failures</td><td>0</td>" in page
    evil = Run(run.path, run.manifest, run.tensors, run.findings.assign(tensor=XSS),
               run.residual_dims)  # fmt: skip
    page = evil._repr_html_()
    assert XSS not in page and "<td>&lt;img src=x onerror=alert(1)&gt;</td>" in page


def test_errors_say_what_to_do(scanned: tuple[planted.Planted, Run]) -> None:
    truth, _ = scanned
    with pytest.raises(striate.StriateError, match=r"only with the model it is in"):
        striate.show("h.0.attn.c_proj.weight")
    with pytest.raises(striate.StriateError, match=r"'h.99.nothing': no such tensor"):
        striate.show("h.99.nothing", model=truth.path)
    with pytest.raises(striate.StriateError, match=r"cannot draw an array of dtype complex128"):
        striate.show(np.ones(3, dtype=complex))


def test_ipython_picks_up_the_html() -> None:
    pytest.importorskip("IPython")
    from IPython.core.interactiveshell import InteractiveShell

    formatter = InteractiveShell.instance().display_formatter
    data, _ = formatter.format(striate.show(np.eye(3), "eye"))
    assert "text/html" in data and "image/png" in data
    assert data["text/plain"].startswith("eye: shape (3, 3)")
