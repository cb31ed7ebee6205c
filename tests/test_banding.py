"""Weight banding: the score on planted kernels in every layout, the NMF view against
scikit-learn, the CLI, and the packaged convnets."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import save_file
from sklearn.decomposition import NMF
from typer.testing import CliRunner

from striate.analyses.banding import (
    BandingConfig,
    as_oihw,
    banding_finding,
    banding_index,
    banding_score,
    nmf_view,
    rgb_from_factors,
)
from striate.cli import app
from striate.scan import scan
from striate.scan.banding import run_banding

RNG = np.random.default_rng(0)


def row_constant(out: int, n_in: int, kh: int, kw: int, seed: int = 0) -> np.ndarray:
    """[out, in, kh, kw] kernels whose every row is one value: perfect horizontal bands."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(out, n_in, kh, 1)).repeat(kw, axis=3).astype(np.float32)


@pytest.mark.parametrize(("kh", "kw"), [(3, 3), (5, 5), (3, 5), (7, 3)])
def test_planted_bands_and_noise(kh: int, kw: int) -> None:
    rows = row_constant(48, 32, kh, kw)
    b = banding_score(rows)
    assert b.direction == "horizontal"
    assert (b.share_rows, b.share_cols) == pytest.approx((1.0, 0.0), abs=1e-9)
    cols = rows.transpose(0, 1, 3, 2)  # the same kernels turned: [out, in, kw, kh]
    t = banding_score(cols)
    assert t.direction == "vertical"
    assert (t.share_rows, t.share_cols) == pytest.approx((0.0, 1.0), abs=1e-9)
    noise = banding_score(RNG.normal(size=(48, 32, kh, kw)))
    assert noise.direction == "none"
    # independent noise: rows explain (kh - 1) / (kh kw - 1) in expectation, columns likewise
    n = kh * kw - 1
    assert noise.share_rows == pytest.approx((kh - 1) / n, abs=0.02)
    assert noise.share_cols == pytest.approx((kw - 1) / n, abs=0.02)
    assert noise.null_mean == pytest.approx((kh - kw) / n, abs=0.01)
    assert abs(noise.z) < 4


def test_weak_bands_under_noise_and_thresholds() -> None:
    """Row-constant kernels plus noise: the shares follow the planted signal-to-noise ratio."""
    signal = row_constant(64, 64, 3, 3)
    noise = RNG.normal(size=signal.shape)
    for amplitude in (0.5, 1.0, 2.0):
        b = banding_score(amplitude * signal + noise)
        # per kernel, in units of the noise variance: the centred signal's 3 rows hold
        # E = 3 * 2 a^2 (all explained by rows); noise has 8 degrees of freedom, 2 by rows, 2 by
        # columns. So E[rows] = 6 a^2 + 2, E[cols] = 2, E[total] = 6 a^2 + 8.
        a2 = amplitude**2
        assert b.share_rows == pytest.approx((6 * a2 + 2) / (6 * a2 + 8), abs=0.01)
        assert b.share_cols == pytest.approx(2 / (6 * a2 + 8), abs=0.01)
    weak = banding_score(0.3 * signal + noise)  # score ~0.06: significant, too small to count
    assert weak.z > 3 and weak.direction == "none"
    assert banding_score(0.3 * signal + noise, BandingConfig(min_score=0.01)).direction == (
        "horizontal"
    )


def test_constant_and_nonfinite_kernels_do_not_count() -> None:
    k = row_constant(8, 8, 3, 3)
    k[0, 0] = np.nan  # one poisoned kernel
    k[1] = 5.0  # constant kernels: no spatial variance
    b = banding_score(k)
    assert b.n_kernels == 8 * 8 - 1 - 8
    assert b.share_rows == pytest.approx(1.0) and np.isfinite(b.z)


@pytest.mark.parametrize(("kh", "kw"), [(3, 3), (5, 5), (3, 5), (7, 3)])
def test_index_on_planted_bands(kh: int, kw: int) -> None:
    """B_h: 1 for row-constant kernels, 0 for column-constant ones, and for any kernels the
    score's shares with the interaction left out (both are kh * kw times the variances)."""
    rows = row_constant(16, 8, kh, kw)
    assert banding_index(rows) == pytest.approx(1.0, abs=1e-12)
    assert banding_index(rows.transpose(0, 1, 3, 2)) == pytest.approx(0.0, abs=1e-12)
    mixed = rows + RNG.normal(size=rows.shape)
    b = banding_score(mixed)
    assert b.index_h == pytest.approx(b.share_rows / (b.share_rows + b.share_cols), rel=1e-12)
    assert banding_index(mixed) == pytest.approx(b.index_h, rel=1e-12)
    assert b.row()["banding_bh"] == b.index_h


def test_index_by_hand() -> None:
    """One kernel: row means (0, 1, 2) vary by 2/3, column means (1, 1, 1) not at all; then a
    second kernel whose column means (0, 3, 0) vary by 2 and row means not at all."""
    k = np.array([[0.0, 0, 0], [1, 1, 1], [2, 2, 2]])
    assert banding_index(k[None, None]) == 1.0
    c = np.array([[0.0, 3, 0], [0, 3, 0], [0, 3, 0]])
    assert banding_index(np.stack([k, c])[:, None]) == pytest.approx((2 / 3) / (2 / 3 + 2))


def test_index_of_noise_is_beta() -> None:
    """Kernels of i.i.d. Gaussian noise: B_h ~ Beta(n (kh - 1) / 2, n (kw - 1) / 2) for n
    kernels (row and column sums of squares are independent chi-squares); checked on 4,000
    layers of n = 6 kernels, for square and non-square kernels."""
    for kh, kw in ((3, 3), (3, 5)):
        values = np.array([banding_index(RNG.normal(size=(6, 1, kh, kw))) for _ in range(4000)])
        a, b = 6 * (kh - 1) / 2, 6 * (kw - 1) / 2
        mean, sd = a / (a + b), np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
        assert values.mean() == pytest.approx(mean, abs=4 * sd / np.sqrt(4000))
        assert values.std() == pytest.approx(sd, rel=0.05)
    # for 3x3, sd = 1 / (2 sqrt(2 n + 1)): 0.0055 for a 64 x 64 layer, as the docstring says
    assert 1 / (2 * np.sqrt(2 * 64 * 64 + 1)) == pytest.approx(0.0055, abs=5e-5)


def test_index_under_noise_follows_the_planted_ratio() -> None:
    """Row-constant kernels of amplitude a plus unit noise (3x3): expected sums of squares
    rows 6 a^2 + 2, columns 2, so B_h -> (6 a^2 + 2) / (6 a^2 + 4); a = 0 gives 0.5."""
    signal = row_constant(64, 64, 3, 3)
    noise = RNG.normal(size=signal.shape)
    for amplitude in (0.0, 0.3, 1.0):
        a2 = amplitude**2
        expected = (6 * a2 + 2) / (6 * a2 + 4)
        assert banding_index(amplitude * signal + noise) == pytest.approx(expected, abs=0.02)


def test_index_of_constant_and_nonfinite_kernels() -> None:
    assert np.isnan(banding_index(np.ones((4, 4, 3, 3))))  # no row or column variance at all
    k = row_constant(8, 8, 3, 3) + 0.5 * RNG.normal(size=(8, 8, 3, 3))
    clean = banding_index(k)
    k[0, 0, 1, 1] = np.inf  # a poisoned kernel is left out, like a constant one
    k2 = k.copy()
    k2[0, 0] = 0.0
    assert banding_index(k) == pytest.approx(banding_index(k2), rel=1e-12)
    assert banding_index(k) != clean
    assert banding_score(k).index_h == pytest.approx(banding_index(k), rel=1e-12)


def test_finding_and_layouts() -> None:
    rows = row_constant(16, 8, 3, 3)
    hwio = rows.transpose(2, 3, 1, 0)  # Keras / TF.js: [kh, kw, in, out]
    assert np.array_equal(as_oihw(hwio, "hwio"), rows)
    f = banding_finding(banding_score(as_oihw(hwio, "hwio")))
    assert f is not None and f.kind == "banding" and f.value == pytest.approx(1.0)
    assert "horizontal bands" in f.detail and f.extra["direction"] == "horizontal"
    assert banding_finding(banding_score(RNG.normal(size=(16, 8, 3, 3)))) is None


def _positions_by_channels(kernels: np.ndarray) -> np.ndarray:
    """X of the NMF built by loops, independently of `nmf_view`: one row per (neuron, r, c)."""
    out, _, kh, kw = kernels.shape
    rows = []
    for o in range(out):
        for r in range(kh):
            for c in range(kw):
                v = kernels[o, :, r, c]
                rows.append(np.concatenate([np.maximum(v, 0), np.maximum(-v, 0)]))
    return np.array(rows)


def test_nmf_error_matches_scikit_learn() -> None:
    kernels = RNG.normal(size=(24, 10, 3, 3))
    view = nmf_view(kernels, seed=0)
    x = _positions_by_channels(kernels)
    errors = []
    for seed in range(3):
        model = NMF(3, init="random", solver="mu", random_state=seed, max_iter=2000, tol=1e-6)
        model.fit(x)
        errors.append(model.reconstruction_err_)
    assert view.error == pytest.approx(min(errors), rel=0.01)
    assert view.relative_error == pytest.approx(view.error / np.linalg.norm(x))


def test_nmf_recovers_planted_factors() -> None:
    """Non-negative kernels built from 3 channel mixes: exact fit, the mixes come back."""
    h = RNG.uniform(size=(3, 12)) * (RNG.uniform(size=(3, 12)) < 0.5)  # sparse, distinct
    a = RNG.uniform(size=(20, 3, 3, 3))  # [out, kh, kw, factor]
    kernels = np.einsum("orck,ki->oirc", a, h)  # [out, in, kh, kw], all >= 0
    view = nmf_view(kernels, seed=0)
    assert view.relative_error < 1e-3
    planted = h / np.linalg.norm(h, axis=1, keepdims=True)
    found = view.factors[:, :12]  # the W- half is empty
    cos = found @ planted.T
    assert sorted(np.round(cos.max(axis=1), 3)) == pytest.approx([1, 1, 1], abs=2e-3)
    assert np.allclose(view.factors[:, 12:], 0, atol=1e-6)


def test_rgb_mapping_ignores_the_order_of_factors() -> None:
    a, h = RNG.uniform(size=(50, 3)), RNG.uniform(size=(3, 7))
    a2, h2 = rgb_from_factors(a, h)
    np.testing.assert_allclose(a2 @ h2, a @ h, rtol=1e-12)
    for perm in itertools.permutations(range(3)):
        p = list(perm)
        pa, ph = rgb_from_factors(a[:, p], h[p])
        np.testing.assert_allclose(pa, a2, rtol=1e-12)
        np.testing.assert_allclose(ph, h2, rtol=1e-12)
    assert np.all(np.diff(a2.sum(axis=0)) <= 0)  # red carries the most weight


def test_neurons_sorted_by_similarity() -> None:
    """Two planted kinds of neuron, interleaved: the order puts each kind together."""
    top = np.zeros((3, 3))
    top[0] = 1
    bottom = np.zeros((3, 3))
    bottom[2] = 1
    kernels = np.stack([(top if i % 2 else bottom)[None] * RNG.uniform(0.5, 1, (6, 1, 1))
                        for i in range(12)])  # fmt: skip
    order = nmf_view(kernels + 0.01 * RNG.uniform(size=kernels.shape), seed=0).order
    kinds = [i % 2 for i in order]
    assert sum(a != b for a, b in itertools.pairwise(kinds)) == 1


def _convnet(path: Path) -> dict[str, np.ndarray]:
    """A PyTorch-layout convnet whose last conv layer bands horizontally, the one before not."""
    tensors = {
        "features.0.weight": RNG.normal(size=(16, 3, 3, 3)).astype(np.float32),
        "features.2.weight": RNG.normal(size=(32, 16, 3, 3)).astype(np.float32),
        "features.4.weight": (
            row_constant(32, 32, 3, 3) + 0.2 * RNG.normal(size=(32, 32, 3, 3))
        ).astype(np.float32),
        "features.6.weight": RNG.normal(size=(8, 32, 1, 1)).astype(np.float32),
        "classifier.weight": RNG.normal(size=(10, 8)).astype(np.float32),
    }
    save_file(tensors, str(path))
    return tensors


def test_scan_reports_banding(tmp_path: Path) -> None:
    _convnet(tmp_path / "net.safetensors")
    run = scan(tmp_path / "net.safetensors", tmp_path / "run")
    t = run.tensors.set_index("name")
    assert t.loc["features.4.weight", "banding_direction"] == "horizontal"
    assert t.loc["features.2.weight", "banding_direction"] == "none"
    # B_h beside the score: rows 6 + 0.04 * 2, columns 0.04 * 2 in expectation (0.987); noise 0.5
    assert t.loc["features.4.weight", "banding_bh"] == pytest.approx(6.08 / 6.16, abs=0.01)
    assert t.loc["features.2.weight", "banding_bh"] == pytest.approx(0.5, abs=0.05)  # sd 0.011
    assert t.loc["features.6.weight", "banding_skipped"].startswith("kernel 1x1")
    assert pd.isna(t.loc["classifier.weight", "banding_score"])
    banding = run.findings[run.findings["kind"] == "banding"]
    assert list(banding["tensor"]) == ["features.4.weight"]
    assert (tmp_path / "run" / t.loc["features.4.weight", "banding_image"]).is_file()
    report = (tmp_path / "run" / "index.html").read_text()
    assert "Weight banding" in report and t.loc["features.4.weight", "banding_image"] in report


def test_keras_layout_through_the_reader(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    kernel = row_constant(16, 8, 3, 3).transpose(2, 3, 1, 0)  # [out, in, kh, kw] -> hwio
    with h5py.File(tmp_path / "model.h5", "w") as f:
        f.attrs["keras_version"] = "2.9.0"
        f.create_dataset("model_weights/conv2d/conv2d/kernel:0", data=kernel)
    table = run_banding(tmp_path / "model.h5", tmp_path / "out")
    assert list(table["banding_direction"]) == ["horizontal"]
    assert list(table["banding_bh"]) == pytest.approx([1.0])


def test_onnx_layout_through_the_reader(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    kernels = {"conv1.weight": RNG.normal(size=(8, 4, 3, 3)).astype(np.float32),
               "conv2.weight": row_constant(16, 8, 3, 3).transpose(0, 1, 3, 2).copy()}  # fmt: skip
    out = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [16, 8, 3, 3])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["conv2.weight"], ["y"])], "g", [], [out],
        initializer=[numpy_helper.from_array(a, n) for n, a in kernels.items()],
    )  # fmt: skip
    onnx.save(helper.make_model(graph), str(tmp_path / "net.onnx"))
    table = run_banding(tmp_path / "net.onnx", tmp_path / "out")
    assert list(table["banding_direction"]) == ["none", "vertical"]  # ONNX is [out, in, kh, kw]


def test_cli_banding(tmp_path: Path) -> None:
    _convnet(tmp_path / "net.safetensors")
    out = tmp_path / "bands"
    result = CliRunner().invoke(app, ["banding", str(tmp_path / "net.safetensors"), "--out",
                                      str(out), "--neurons", "9"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "horizontal" in result.output and "1 conv tensors skipped" in result.output
    table = pd.read_parquet(out / "banding.parquet")
    assert list(table["tensor"]) == [f"features.{i}.weight" for i in (0, 2, 4, 6)]
    assert list(table["banding_direction"].fillna("")) == ["none", "none", "horizontal", ""]
    assert (out / "banding.png").is_file()
    assert all((out / p).is_file() for p in table["image"].dropna())
    only = CliRunner().invoke(app, ["banding", str(tmp_path / "net.safetensors"), "--out",
                                    str(tmp_path / "b2"), "--match", r"features\.4"])  # fmt: skip
    assert only.exit_code == 0
    assert list(pd.read_parquet(tmp_path / "b2" / "banding.parquet")["tensor"]) == [
        "features.4.weight"
    ]


def test_a_bad_tensor_loses_only_its_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from striate.checkpoint import open_checkpoint

    _convnet(tmp_path / "net.safetensors")
    with open_checkpoint(tmp_path / "net.safetensors") as ckpt:
        read = ckpt.read

        def broken(name: str) -> np.ndarray:
            if name == "features.2.weight":
                raise ValueError("bytes 0..10 past the end")
            return read(name)

        monkeypatch.setattr(ckpt, "read", broken)
        table = run_banding(ckpt, tmp_path / "out").set_index("tensor")
    failed = table.loc["features.2.weight", "skipped"]
    assert failed == "failed: ValueError: bytes 0..10 past the end"
    assert table.loc["features.4.weight", "banding_direction"] == "horizontal"


def test_cli_banding_without_convs(tmp_path: Path) -> None:
    save_file({"w": RNG.normal(size=(8, 8)).astype(np.float32)}, str(tmp_path / "mlp.safetensors"))
    result = CliRunner().invoke(app, ["banding", str(tmp_path / "mlp.safetensors"), "--out",
                                      str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 0 and "no conv kernels" in result.output
    assert pd.read_parquet(tmp_path / "out" / "banding.parquet").empty


@pytest.mark.sample
def test_packaged_convnets(tmp_path: Path) -> None:
    """VGG16 (ImageNet, then HED edges) bands in its last conv layer only; the CIFAR-10 CNN,
    which flattens into dense layers instead of pooling, nowhere."""
    vgg = run_banding("sample:vgg16-hed", tmp_path / "vgg").dropna(subset=["banding_score"])
    banded = vgg[vgg["banding_direction"] != "none"]
    assert list(banded["tensor"]) == ["block5/layers/conv2d_2/vars/0"]
    assert banded["banding_score"].iloc[0] == pytest.approx(0.22, abs=0.01)
    cifar = run_banding("sample:cifar10-cnn", tmp_path / "cifar")
    assert set(cifar["banding_direction"]) == {"none"}
    assert cifar["banding_score"].abs().max() < 0.1
