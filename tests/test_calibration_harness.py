"""benchmarks/calibration.py: its quick run end to end, and the pieces its numbers rest on."""

from __future__ import annotations

import sys
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import calibration
import calibration_cases as cases
from pictures import assert_drawn


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[cases.Results, Path]:
    out = tmp_path_factory.mktemp("calibration")
    doc = out / "calibration.md"
    argv = ["--quick", "--quiet", "--out-doc", str(doc), "--out-images", str(out / "images")]
    return calibration.main(argv), doc


def _recall(results: cases.Results, **where: Any) -> Any:
    r = results.recall
    for k, v in where.items():
        r = r[np.isclose(r[k], v)] if isinstance(v, float) else r[r[k] == v]
    return r


@pytest.mark.sample
def test_quick_run_finds_a_3x_loud_row(quick: tuple[cases.Results, Path]) -> None:
    results, _ = quick
    alpha = results.detectors.lines.alpha
    rows = _recall(results, kind="loud", size="384x1536", layout="rows", strength=3.0, alpha=alpha)
    plan = results.plan
    assert len(rows) == plan.line_trials * len(plan.dtypes)
    assert rows["hit"].all()
    assert (rows["significance"] > -np.log10(alpha)).all()


@pytest.mark.sample
def test_quick_run_hotspot_recall_rises_with_strength(quick: tuple[cases.Results, Path]) -> None:
    results, _ = quick
    d = _recall(results, kind="hotspot", alpha=results.detectors.hotspots.alpha)
    d = d[d["size"].map(calibration.is_target_size)]
    recall = d.groupby("strength")["hit"].mean().sort_index()
    assert list(recall.index) == list(results.plan.strengths["hotspot"])
    assert recall.iloc[-1] == 1.0  # 50 sigma
    # the same matrix and place at every strength: recall may only dip by noise of the fit
    assert np.all(np.diff(recall.to_numpy()) >= -0.15), recall
    assert recall.iloc[-1] >= recall.iloc[0]


@pytest.mark.sample
def test_quick_run_records_cover_the_plan(quick: tuple[cases.Results, Path]) -> None:
    results, _ = quick
    plan, det = results.plan, results.detectors
    nulls = results.nulls
    alphas = sorted({*det.alphas, det.lines.alpha})
    per = nulls[(nulls["detector"] == "lines") & np.isclose(nulls["alpha"], det.lines.alpha)]
    synthetic = per[per["family"].isin(plan.families)]
    assert synthetic.groupby(["family", "size"]).size().eq(plan.null_tensors).all()
    assert len(synthetic) == len(plan.families) * len(plan.sizes) * plan.null_tensors
    shuffled = per[per["family"] == "minilm shuffled"]
    assert len(shuffled) >= plan.real_tensors
    assert sorted(nulls.loc[nulls["detector"] == "lines", "alpha"].unique()) == alphas
    # the sweep reruns the target strength only; every other strength is at the default alpha
    loud = _recall(results, kind="loud")
    assert sorted(loud.loc[np.isclose(loud["strength"], 1.5), "alpha"].unique()) == alphas
    assert set(loud.loc[~np.isclose(loud["strength"], 1.5), "alpha"]) == {det.lines.alpha}
    models = results.pooled_nulls[np.isclose(results.pooled_nulls["alpha"], det.residual.alpha)]
    assert len(models) == plan.pooled_null_models * 2 * 2
    assert models["tensors"].between(20, 40).all()


@pytest.mark.sample
def test_quick_run_page_has_every_section(quick: tuple[cases.Results, Path]) -> None:
    results, doc = quick
    text = doc.read_text()
    for heading in ["# Calibration of the detectors", "## Verdict",
                    "## (a) False findings on structure-free tensors",
                    "## (b) Recall against planted strength", "## (c) The false-alarm knobs",
                    "## Method notes"]:  # fmt: skip
        assert f"\n{heading}\n" in f"\n{text}", heading
    assert "`.venv/bin/python benchmarks/calibration.py --quick`" in text
    for name in ("calibration_recall.png", "calibration_sweep.png"):
        assert f"](images/{name})" in text
        assert_drawn(doc.parent / "images" / name)
    assert text.count("**yes**") + text.count("**no**") == len(calibration.verdicts(results))
    assert "| nan" not in text and "nan%" not in text  # every cell computed


def test_cp_upper_closed_forms() -> None:
    for n in (1, 30, 300):
        np.testing.assert_allclose(calibration.cp_upper(0, n), 1 - 0.05 ** (1 / n), rtol=1e-9)
    assert calibration.cp_upper(5, 5) == 1.0
    np.testing.assert_allclose(calibration.cp_upper(2, 10), stats.beta.ppf(0.95, 3, 8), rtol=1e-12)


@pytest.mark.parametrize("df", [3, 4, 6])
def test_student_t_nulls_have_the_t_quantiles(df: int) -> None:
    w = cases.null_matrix(np.random.default_rng(1), f"t{df}", (1000, 1000))
    assert w.dtype == np.float32
    q = np.array([0.75, 0.95, 0.99, 0.999])
    np.testing.assert_allclose(np.quantile(w, q) / cases.SIGMA, stats.t.ppf(q, df), rtol=0.02)


def test_gaussian_nulls_have_sd_sigma() -> None:
    w = cases.null_matrix(np.random.default_rng(2), "gaussian", (1000, 1000))
    np.testing.assert_allclose(w.std(), cases.SIGMA, rtol=0.005)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_planting_one_cast_line_equals_casting_the_planted_matrix(dtype: str) -> None:
    """`planted` casts the base matrix once, then only the line it changes."""
    import torch

    rng = np.random.default_rng(3)
    w = cases.null_matrix(rng, "gaussian", (96, 384))
    full = w.copy()
    full[:, 7] *= np.float32(0.3)
    want = torch.from_numpy(full).to(getattr(torch, dtype)).float().numpy()
    got = cases.cast(w, dtype).copy()
    got[cases.line_slice(1, 7)] = cases.cast(w[:, 7] * np.float32(0.3), dtype)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, w)


def test_task_generators_are_keyed_not_ordered() -> None:
    a = cases.rng_for(0, "null", "t3", (96, 384), 5).standard_normal(4)
    b = cases.rng_for(0, "null", "t3", (96, 384), 5).standard_normal(4)
    c = cases.rng_for(0, "null", "t3", (96, 384), 6).standard_normal(4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_stricter_alpha_reports_a_subset() -> None:
    """What the sweep's shortcut rests on: a tensor's findings at a smaller alpha are among
    those at a larger one, for lines and hotspots, on heavy-tailed nulls and on plants."""
    api = cases.api()
    alphas = [1e-1, 1e-2, 1e-3, 1e-4, 1e-6]
    rng = np.random.default_rng(4)
    tensors = [cases.null_matrix(rng, "t3", (96, 384)) for _ in range(6)]
    planted = cases.null_matrix(rng, "gaussian", (384, 1536))
    planted[11] *= np.float32(1.3)
    planted[:, 40] *= np.float32(0.8)
    planted[5, 9] = 9 * cases.SIGMA
    tensors.append(planted)
    seen = 0
    for w in tensors:
        for find, config in ((api.find_lines, api.LinesConfig()),
                             (api.find_hotspots, api.HotspotsConfig())):  # fmt: skip
            found = [{f.index for f in find(w, replace(config, alpha=a))} for a in alphas]
            seen += len(found[0])
            for looser, stricter in pairwise(found):
                assert stricter <= looser
    assert seen > 0  # the check saw findings to compare
