"""The HTML report: sections, the first screen, findings data, escaping, no network, failures,
rebuilds, curves, and the figures it shows (legends, labels)."""

from __future__ import annotations

import html as html_text
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import planted
import pytest
import torch
from safetensors.torch import load_file, save_file

from striate.display import findings_summary
from striate.errors import StriateError
from striate.render import describe_figure, spectrum_figures
from striate.render.png import build_figure
from striate.render.style import style
from striate.report import rebuild_report, scan_figures
from striate.report.curves import anomalies, metric_series, robust_z
from striate.report.scan_html import render_scan_report, strongest_tensor
from striate.run import Run
from striate.scan import scan

HOT = planted.HOT_DIM
XSS = "<img src=x onerror=alert(1)>"
BREAKOUT = "evil</script><script>alert(2)</script><!--.weight"  # carries a planted row line
BREAKOUT_ROW = 3
# the first screen (facts; groups beside residual dims and curves), then everything in full
SECTIONS = ["glance", "top-groups", "top-residual", "top-curves", "findings", "residual",
            "norm-links", "curves", "gallery", "ffn", "spectra", "banding"]  # fmt: skip


def build_scan(folder: Path) -> tuple[Path, planted.Planted]:
    """The planted GPT-2 plus two tensors with hostile names; scanned into folder/run."""
    truth = planted.gpt2(folder / "model")
    file = truth.path / "model.safetensors"
    tensors = load_file(str(file))
    rng = np.random.default_rng(1)
    tensors[XSS] = torch.from_numpy(rng.standard_normal((16, 16)).astype(np.float32))
    breakout = 0.02 * rng.standard_normal((64, 64))
    breakout[BREAKOUT_ROW, :] *= 8
    tensors[BREAKOUT] = torch.from_numpy(breakout.astype(np.float32))
    save_file(tensors, str(file))
    scan(truth.path, folder / "run")
    return folder / "run", truth


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, planted.Planted]:
    return build_scan(tmp_path_factory.mktemp("report"))


@pytest.fixture
def run_copy(scanned: tuple[Path, planted.Planted], tmp_path: Path) -> Path:
    """A copy of the scanned run that a test may change."""
    return Path(shutil.copytree(scanned[0], tmp_path / "run"))


def findings_json(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="findings-data">(.*?)</script>', html)
    assert match is not None
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def section_ids(html: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)">', html)


def test_sections_and_the_planted_findings(scanned: tuple[Path, planted.Planted]) -> None:
    run_dir, truth = scanned
    html = (run_dir / "index.html").read_text()
    assert section_ids(html) == SECTIONS
    assert html.count('<div class="failed">') == 0
    run = Run.load(run_dir)
    data = findings_json(html)
    assert len(data["rows"]) == len(run.findings)
    hot = [r for r in data["rows"] if r["kind"] == "hotspot"]
    assert [(r["tensor"], r["index"], r["residual_dim"]) for r in hot] == [
        (truth.hotspot[0], "[20, 100]", planted.HOT_DIM)
    ]
    # its link leads to the gallery entry of that tensor, which shows the tensor's image
    position = run.tensors.index[run.tensors["name"] == truth.hotspot[0]][0]
    assert hot[0]["anchor"] == f"t-{position}"
    figure = re.search(rf'<figure id="t-{position}">(.*?)</figure>', html)
    assert figure is not None and run.tensors.loc[position, "image"] in figure.group(1)
    # the gallery groups by layer: layer 1 holds it, the token embedding has no layer
    layer1 = html[
        html.index('<details id="layer-1">') : html.index('<details id="layer-1">') + 10**6
    ]
    assert f'id="t-{position}"' in layer1.split("</details>")[0]
    no_layer = html[html.index('<details id="layer-none">') :].split("</details>")[0]
    wte = run.tensors.index[run.tensors["name"] == "wte.weight"][0]
    assert f'id="t-{wte}"' in no_layer
    # residual dim 7 links its norm gains (all five) to their gallery entries
    residual = html[html.index('<section id="residual">') : html.index('<section id="curves">')]
    for name in truth.norm_tensors:
        t = run.tensors.index[run.tensors["name"] == name][0]
        assert f'<a href="#t-{t}"><code>{name}</code></a> = 6' in residual
    # one curve figure per metric with data, each written
    for metric in ("frobenius_norm", "stable_rank", "alpha", "kurtosis"):
        assert f'src="images/report/{metric}.png"' in html
        assert (run_dir / "images" / "report" / f"{metric}.png").read_bytes()[:4] == b"\x89PNG"


def test_no_external_url_and_every_link_is_a_file_of_the_run(
    scanned: tuple[Path, planted.Planted],
) -> None:
    run_dir, _ = scanned
    html = (run_dir / "index.html").read_text()
    assert not re.search(r"https?://", html, re.IGNORECASE)
    assert not re.search(r"url\(", html, re.IGNORECASE)
    assert not re.search(r"@import", html, re.IGNORECASE)
    markup = re.sub(r"<script>.*?</script>", "", html, flags=re.DOTALL)  # the page's own JS
    targets = re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', markup)
    assert len(targets) > 50
    ids = set(re.findall(r'\bid="([^"]+)"', html))
    for target in targets:
        assert not re.match(r"^[a-z][a-z0-9+.-]*:|^//", target, re.IGNORECASE), target
        if target.startswith("#"):
            assert target[1:] in ids, target
        else:
            assert (run_dir / target).is_file(), target


def test_names_from_the_file_are_escaped(scanned: tuple[Path, planted.Planted]) -> None:
    html = (scanned[0] / "index.html").read_text()
    assert XSS not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    # the hostile name cannot end the JSON block: it parses, and holds the name exactly
    assert "</script><script>alert(2)" not in html
    rows = findings_json(html)["rows"]
    breakout = [r for r in rows if r["tensor"] == BREAKOUT]
    assert [(r["kind"], r["index"]) for r in breakout] == [("line", f"[{BREAKOUT_ROW}, :]")]
    assert html.count("<script") == 2  # the data block and the page's own script


def test_a_failing_section_becomes_a_placeholder(
    run_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> str:
        raise RuntimeError("gallery <b>broke</b>")

    monkeypatch.setattr(scan_figures, "gallery", broken)
    html = rebuild_report(run_copy).read_text()
    assert section_ids(html) == SECTIONS
    expected = (
        '<div class="failed">section Tensors by layer and role could not be built: '
        "RuntimeError: gallery &lt;b&gt;broke&lt;/b&gt;</div>"
    )
    assert html.count('<div class="failed">') == 1 and expected in html
    assert len(findings_json(html)["rows"]) == len(Run.load(run_copy).findings)
    assert 'src="images/report/stable_rank.png"' in html


def test_failed_tensors_are_listed_escaped(run_copy: Path) -> None:
    manifest = json.loads((run_copy / "manifest.json").read_text())
    manifest["tensors"]["wte.weight"] = {"status": "failed", "error": "bad <bytes> here"}
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    html = rebuild_report(run_copy).read_text()
    glance = html[: html.index('<section id="top-groups">')]
    assert "<div><dt>failed tensors</dt><dd>1</dd></div>" in glance
    assert "<code>wte.weight</code></a>: bad &lt;bytes&gt; here</li>" in glance


def test_first_screen_shows_the_strongest_groups_with_their_images(
    scanned: tuple[Path, planted.Planted],
) -> None:
    run_dir, truth = scanned
    html = (run_dir / "index.html").read_text()
    run = Run.load(run_dir)
    first = html[html.index('<section id="top-groups">') : html.index('<section id="findings">')]
    (groups,) = [t for t in findings_summary(run, top=8) if t.name == "groups"]
    rows = re.findall(r"<tr><td>(.*?)</tr>", first.split('id="top-residual"')[0])
    assert len(rows) == len(groups.rows) == min(8, groups.total) > 1
    names = sorted(run.tensors["name"], key=len, reverse=True)
    for row, cells in zip(rows, groups.rows, strict=True):
        tensor = strongest_tensor(cells[-1], names)  # "tensor: detail"
        assert tensor is not None and cells[-1].startswith(f"{tensor}: ")
        position = run.tensors.index[run.tensors["name"] == tensor][0]
        image = run.tensors.loc[position, "image"]
        assert f'<a href="#t-{position}"><img class="thumb" src="{image}"' in row
        assert html_text.escape(cells[0]) in row  # the hostile name of BREAKOUT too
    # the planted hotspot's dimension is a group, shown with the hotspot's tensor
    (hot,) = [r for r, c in zip(rows, groups.rows, strict=True) if c[0] == f"residual dim {HOT}"]
    position = run.tensors.index[run.tensors["name"] == truth.hotspot[0]][0]
    assert f'<a href="#t-{position}"><img class="thumb"' in hot
    # the residual dimensions link to their rows in the full table, the curves to theirs
    assert re.findall(r'href="#dim-(\d+)"', first)[:2] == [
        str(d) for d in run.residual_dims["residual_dim"].head(2)
    ]
    for d in re.findall(r'href="#dim-(\d+)"', first):
        assert f'<tr id="dim-{d}">' in html
    assert 'href="#curve-stable_rank"><img src="images/report/stable_rank.png"' in first
    assert strongest_tensor("a.b: c: d", ["a.b: c", "a.b"]) == "a.b: c"
    assert strongest_tensor("x: y", ["a"]) is None


def test_scan_time_says_what_came_from_the_cache(run_copy: Path) -> None:
    manifest = json.loads((run_copy / "manifest.json").read_text())
    glance = rebuild_report(run_copy).read_text().split('<section id="top-groups">')[0]
    computed = manifest["cache"]["computed"]
    assert manifest["cache"]["reused"] == 0 and computed > 10
    assert f"<dt>scan time</dt><dd>{manifest['seconds']:,.1f} s</dd>" in glance
    manifest["seconds"], manifest["cache"] = 0.6, {"reused": computed, "computed": 0}
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    glance = rebuild_report(run_copy).read_text().split('<section id="top-groups">')[0]
    expected = f"<dt>scan time</dt><dd>0.6 s ({computed} of {computed} tensors from the cache)</dd>"
    assert expected in glance
    manifest["seconds"], manifest["cache"] = 12.25, {"reused": 3, "computed": computed - 3}
    (run_copy / "manifest.json").write_text(json.dumps(manifest))
    glance = rebuild_report(run_copy).read_text().split('<section id="top-groups">')[0]
    assert f"<dd>12.2 s (3 of {computed} tensors from the cache)</dd>" in glance


def test_failing_curves_leave_the_rest_of_the_first_screen(
    run_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(run: Run) -> dict[str, Any]:
        raise RuntimeError("no <canvas>")

    monkeypatch.setattr(scan_figures, "curve_figures", broken)
    html = rebuild_report(run_copy).read_text()
    assert section_ids(html) == SECTIONS
    expected = "section Tensor metrics by layer could not be built: RuntimeError: no &lt;canvas&gt;"
    assert html.count(expected) == 2  # the thumbnails and the full section
    assert html.count('<div class="failed">') == 2
    assert '<img class="thumb"' in html and 'href="#dim-' in html


def test_rebuild_gives_the_same_report(run_copy: Path) -> None:
    before = (run_copy / "index.html").read_text()
    (run_copy / "index.html").unlink()
    path = rebuild_report(str(run_copy))
    assert path == run_copy / "index.html"
    after = path.read_text()
    assert section_ids(after) == section_ids(before) == SECTIONS
    assert findings_json(after) == findings_json(before)
    assert re.findall(r'<figure id="(t-\d+)">', after) == re.findall(
        r'<figure id="(t-\d+)">', before
    )
    assert not list(run_copy.glob(".index.html.*"))  # the atomic write left no temp file


def test_rebuild_refuses_what_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(StriateError) as info:
        rebuild_report(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path}: not a striate run directory: no manifest.json")
    assert "\n" not in message
    (tmp_path / "manifest.json").write_text('{"kind": "banana"}')
    with pytest.raises(StriateError, match="names no known run kind \\('banana'\\)"):
        rebuild_report(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(StriateError, match=r"manifest\.json cannot be read: JSONDecodeError"):
        rebuild_report(tmp_path)
    assert not (tmp_path / "index.html").exists()


def test_rebuild_lab_and_experiment_runs(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    (lab / "figures").mkdir(parents=True)
    (lab / "figures" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    manifest = {"kind": "lab", "name": "superposition", "preset": "quick", "seed": 0,
                "instances": 3, "wall_time_s": 1.25, "striate_version": "x",
                "config": {"note": "</pre><b>"}, "figures": ["figures/a.png"]}  # fmt: skip
    (lab / "manifest.json").write_text(json.dumps(manifest))
    (lab / "summary.json").write_text(json.dumps({"claim": "<i>holds</i>"}))
    html = rebuild_report(lab).read_text()
    assert section_ids(html) == ["figures", "summary", "config"]
    assert html.count("<img ") == 1 and 'src="figures/a.png"' in html
    assert "&lt;i&gt;holds&lt;/i&gt;" in html and "&lt;/pre&gt;&lt;b&gt;" in html
    assert "Toy Models of Superposition" in html or "superposition" in html.lower()
    exp = tmp_path / "exp"
    exp.mkdir()
    manifest = {"kind": "experiment", "name": "grok<x>", "preset": "quick", "wall_time_s": 2.0,
                "conditions": [{"name": "wd=1", "checkpoints": "checkpoints/wd_1"}],
                "figures": []}  # fmt: skip
    (exp / "manifest.json").write_text(json.dumps(manifest))
    (exp / "summary.json").write_text(json.dumps({"grokked": True}))
    claim = {"id": "grokked<b>", "statement": "It groks.", "criterion": "grokked is true",
             "measure": "test accuracy >= 0.99", "per_seed": [1.0, 0.0, 1.0], "mean": 2 / 3,
             "sd": 0.58, "n_seeds": 3, "op": "true", "verdict": "met"}  # fmt: skip
    (exp / "claims.json").write_text(json.dumps([claim]))
    html = rebuild_report(exp).read_text()
    assert section_ids(html) == ["conditions", "claims", "figures", "summary"]
    assert "<h1>striate experiment grok&lt;x&gt; (quick)</h1>" in html
    assert "<td><b>grokked&lt;b&gt;</b><br>It groks.</td>" in html  # claims.json, escaped
    assert '<td>1, 0, 1</td><td>yes in 2 of 3 seeds</td><td class="verdict">met</td>' in html
    (exp / "claims.json").unlink()  # a run from before the claims contract
    assert "This run wrote no claims.json." in rebuild_report(exp).read_text()


def test_rebuild_a_track_run(tmp_path: Path) -> None:
    from striate.track import track

    rng = np.random.default_rng(0)
    w = rng.standard_normal((16, 12)).astype(np.float32)
    for step in (0, 10, 20):
        w = w + 0.1 * rng.standard_normal(w.shape).astype(np.float32)
        save_file({"a.weight": torch.from_numpy(w)}, str(tmp_path / f"ckpt_{step}.safetensors"))
    track([str(tmp_path / "ckpt_*.safetensors")], tmp_path / "run")
    (tmp_path / "run" / "index.html").unlink()
    html = rebuild_report(tmp_path / "run").read_text()
    assert "<h1>striate track: 3 checkpoints, 1 tensors</h1>" in html
    assert section_ids(html) == ["checkpoints", "figures"]
    for target in re.findall(r'\b(?:src|href)="([^"#]+)"', html):
        assert (tmp_path / "run" / target).is_file(), target


def _series(values: dict[str, list[float]]) -> pd.DataFrame:
    rows = [{"name": f"blocks.{layer}.{kind}.weight", "role": kind, "layer": layer, "alpha": v}
            for kind, vs in values.items() for layer, v in enumerate(vs)]  # fmt: skip
    table: pd.DataFrame = pd.DataFrame(rows).astype({"layer": "Int64"})
    return table


def test_anomalies_mark_one_layer_far_off_and_nothing_on_smooth_series() -> None:
    rng = np.random.default_rng(0)
    noisy = 3.0 * (1 + 0.02 * rng.standard_normal(12))
    spiked = noisy.copy()
    spiked[5] *= 1.5
    assert np.flatnonzero(anomalies(spiked)).tolist() == [5]
    median = np.median(spiked)
    mad = np.median(np.abs(spiked - median))
    assert robust_z(spiked)[5] == pytest.approx(0.6745 * (spiked[5] - median) / mad, rel=1e-3)
    # a geometric series (2^layer) is judged in log units, where it is a straight line
    geometric = 2.0 ** np.arange(10)
    assert robust_z(geometric) == pytest.approx((np.arange(10) - 4.5) / (1.4826 * 2.5), rel=1e-12)
    assert not anomalies(noisy).any()
    for smooth in (np.linspace(1.0, 2.0, 12), np.sqrt(np.arange(1, 25)), geometric):
        assert not anomalies(smooth).any()
    assert not anomalies(np.ones(12)).any()  # a constant series: MAD and mean deviation 0
    assert not anomalies(np.array([1.0, 1.0, 1.0, 9.0])).any()  # too few layers to judge
    flat = np.ones(12)
    flat[7] = 1.05  # 11 equal values: the mean-deviation fallback still marks the odd one
    assert np.flatnonzero(anomalies(flat)).tolist() == [7]
    flat[7] = 1.03  # but a difference under 3.5% of the median never stands out
    assert not anomalies(flat).any()


def test_metric_series_judges_each_kind_of_tensor_across_layers(tmp_path: Path) -> None:
    smooth = list(np.linspace(2.0, 4.0, 8))
    odd = [3.0, 3.1, 2.9, 3.05, 9.0, 3.0, 2.95, 3.1]
    tensors = _series({"attn_q": smooth, "ffn_in": odd})
    series = metric_series(tensors, "alpha")
    assert sorted(set(series["series"])) == ["blocks.*.attn_q.weight", "blocks.*.ffn_in.weight"]
    marked = series[series["anomaly"]]
    assert marked["name"].tolist() == ["blocks.4.ffn_in.weight"]
    # the report draws the figure and lists the marked point with a link to its tensor
    tensors["image"] = None
    empty = pd.DataFrame(columns=["kind", "tensor", "index", "score", "value", "residual_dim",
                                  "detail", "layer", "role"])  # fmt: skip
    run = Run(tmp_path, {"source": "toy"}, tensors, empty, pd.DataFrame())
    html = render_scan_report(run)
    curves = html[html.index('<section id="curves">') : html.index('<section id="gallery">')]
    assert '<div class="failed">' not in curves
    assert 'src="images/report/alpha.png"' in curves
    position = tensors.index[tensors["name"] == "blocks.4.ffn_in.weight"][0]
    rows = re.findall(r'<table class="anomalies">.*?</table>', curves)
    assert len(rows) == 1 and rows[0].count("<tr>") == 2
    assert f'<a href="#t-{position}"><code>blocks.4.ffn_in.weight</code></a>' in rows[0]
    assert (tmp_path / "images" / "report" / "alpha.png").is_file()


def test_the_depth_legend_lists_only_series_with_points(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"name": f"h.{layer}.{kind}", "role": role, "layer": layer,
             "alpha": 3.0 + layer if role != "norm" else np.nan,
             "stable_rank": 10.0 + layer if role != "norm" else np.nan}
            for layer in range(3)
            for kind, role in (("q", "attn_q"), ("fc", "ffn_in"), ("ln", "norm"))]  # fmt: skip
    drawn: list[Any] = []
    monkeypatch.setattr(spectrum_figures, "save_figure", lambda fig, path: drawn.append(fig))
    spectrum_figures.draw_depth_metrics(pd.DataFrame(rows), Path("unused.png"))
    (fig,) = drawn
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["attn_q", "ffn_in"]
    assert fig.texts[0].get_text() == "spectral metrics by depth · 6 matrices in layers"


def test_the_channel_labels_of_a_position_embedding_fit_its_figure() -> None:
    """Each periodic channel's label sits right of its row: inside the figure, 5 digits too."""
    rng = np.random.default_rng(0)
    for shape, residual_axis, channels in (((512, 384), 1, [218, 92, 190, 198]),
                                           ((12_000, 64), 0, [11_111, 10_000, 7])):  # fmt: skip
        w = rng.standard_normal(shape).astype(np.float32)
        spec = describe_figure(w, title="wpe", role="position_embedding", layout="embedding",
                               residual_axis=residual_axis, periodic_channels=channels)  # fmt: skip
        with style():
            fig = build_figure(spec)
            fig.canvas.draw()
            renderer = fig.canvas.get_renderer()
            labels = [t for ax in fig.axes for t in ax.texts if t.get_text().startswith("channel")]
            assert [t.get_text() for t in labels] == [f"channel {c}" for c in channels]
            for text in labels:
                box = text.get_window_extent(renderer)
                assert box.x0 >= 0 and box.x1 <= fig.bbox.width - 2, (text.get_text(), box)


def test_ffn_table_shows_the_norm_bias_correlations_with_their_intervals(run_copy: Path) -> None:
    """The planted GPT-2 has no FFN biases (empty cells); planted correlations are shown."""
    layers = pd.read_parquet(run_copy / "ffn_layers.parquet")
    assert layers["pearson_in_norm_bias_ci_low"].isna().all()
    planted_r = {"": 0.31234, "_ci_low": 0.2712, "_ci_high": 0.35}
    for end, value in planted_r.items():
        layers[f"pearson_in_norm_bias{end}"] = value
    layers.to_parquet(run_copy / "ffn_layers.parquet")
    rebuild_report(run_copy)
    page = (run_copy / "index.html").read_text()
    assert "r(|M1|,b) [95%]" in page and "r(|M2|,b) [95%]" in page
    assert page.count("<td>0.312 [0.271, 0.35]</td>") == len(layers)


def test_a_scan_draws_each_curve_figure_once_before_its_report(
    scanned: tuple[Path, planted.Planted], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The curve figures are drawn with the end figures (in parallel with several jobs), not by
    the report after them: one drawing per figure, all before the report, which shows them."""
    import importlib

    from striate.report import curves

    pipeline = importlib.import_module("striate.scan.pipeline")
    events: list[str | Path] = []
    draw, report = curves._draw, pipeline.write_report

    def drawing(rows: pd.DataFrame, label: str, path: Path) -> None:
        events.append(path)
        draw(rows, label, path)

    def reporting(run: Run) -> None:
        events.append("report")
        report(run)

    monkeypatch.setattr(curves, "_draw", drawing)
    monkeypatch.setattr(pipeline, "write_report", reporting)
    scan(scanned[1].path, tmp_path / "run", resume=False)  # jobs=1: every figure in this process
    pictures = sorted((tmp_path / "run" / "images" / "report").glob("*.png"))
    assert len(pictures) >= 4 and events[-1] == "report"
    assert sorted(p for p in events if p != "report") == pictures
    page = (tmp_path / "run" / "index.html").read_text(encoding="utf-8")
    assert all(f'src="images/report/{p.name}"' in page for p in pictures)
