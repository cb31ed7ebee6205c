"""The toy-models lab: metrics on planted weights, the optimizer against PyTorch's, batched
training against training alone, and the claims theory fixes, on the quick presets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from striate.errors import StriateError
from striate.experiments import LABS, run_lab
from striate.experiments.claims import VERDICTS
from striate.experiments.data import antipodal_set, importance, sparse_features, unit_rows
from striate.experiments.toy import metrics as M
from striate.experiments.toy.instance import Instance, pack
from striate.experiments.toy.models import build, init_
from striate.experiments.toy.train import AdamW, TrainConfig, lr_factor, train_group

torch.set_num_threads(1)


def _polygon(k: int, radius: float = 1.0) -> torch.Tensor:
    """k vectors spread evenly around the circle: (k, 2)."""
    angles = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
    return radius * torch.stack([angles.cos(), angles.sin()], dim=1)


# --- metrics against closed forms ---------------------------------------------------------


def test_orthogonal_features_have_dimensionality_one_and_no_superposition() -> None:
    W = torch.zeros(7, 5, dtype=torch.float64)  # 7 features in 5 dims, 3 of them represented
    W[0, 0], W[3, 1], W[5, 4] = 2.0, 0.5, 1.0
    np.testing.assert_allclose(M.dimensionality(W), [1, 0, 0, 1, 0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(M.superposition(W), np.zeros(7), atol=1e-12)
    np.testing.assert_allclose(M.norms(W), [2, 0, 0, 0.5, 0, 1, 0], atol=1e-12)
    assert float(M.fraction_represented(W)) == pytest.approx(2 / 7)  # 0.5 is not > 0.5
    assert float(M.dims_per_feature(W)) == pytest.approx(5 / 5.25)


@pytest.mark.parametrize("k", [3, 5, 7, 11])
def test_polygon_features_share_two_dimensions(k: int) -> None:
    """k unit vectors evenly spread in 2-D: D_i = 2/k, sum_{j!=i} cos^2 = k/2 - 1."""
    W = _polygon(k, radius=1.3)
    np.testing.assert_allclose(M.dimensionality(W), np.full(k, 2 / k), rtol=1e-12)
    np.testing.assert_allclose(M.superposition(W), np.full(k, 1.3**2 * (k / 2 - 1)), rtol=1e-12)
    assert float(M.dims_per_feature(W)) == pytest.approx(2 / (k * 1.3**2), rel=1e-12)


def test_antipodal_pair_has_dimensionality_one_half() -> None:
    W = torch.tensor([[1.5, 0.0], [-1.5, 0.0], [0.0, 3.0]], dtype=torch.float64)
    np.testing.assert_allclose(M.dimensionality(W), [0.5, 0.5, 1.0], rtol=1e-12)
    W[1, 0] = -0.5  # an unequal pair: the longer feature owns more of the dimension
    np.testing.assert_allclose(M.dimensionality(W), [2.25 / 2.5, 0.25 / 2.5, 1.0], rtol=1e-12)
    np.testing.assert_allclose(M.superposition(W), [0.25, 2.25, 0.0], rtol=1e-12)


def test_dimensionality_agrees_with_the_pairwise_definition() -> None:
    """The Gram-matrix shortcut equals sum_j (V_i_hat . V_j)^2 computed pair by pair."""
    gen = torch.Generator().manual_seed(3)
    V = torch.randn(2, 13, 3, generator=gen, dtype=torch.float64)  # batched: (2, p, m)
    U = V / V.norm(dim=-1, keepdim=True)
    pairwise = ((U @ V.transpose(-1, -2)) ** 2).sum(-1)  # (2, p): O(p^2)
    np.testing.assert_allclose(M.dimensionality(V), (V * V).sum(-1) / pairwise, rtol=1e-12)
    sq = (V * V).sum(-1)
    np.testing.assert_allclose(M.superposition(V), pairwise - sq, rtol=1e-10, atol=1e-12)
    mask = torch.zeros(2, 13, dtype=torch.float64)
    mask[:, :5] = 1  # only the first 5 vectors take part
    np.testing.assert_allclose(M.dimensionality(V, mask)[:, :5], M.dimensionality(V[:, :5]))


def test_losses_and_accuracy_on_hand_values() -> None:
    out = torch.tensor([[[0.5, 0.0, 2.0]]])  # (K=1, B=1, n=3)
    y = torch.tensor([[[1.0, 0.0, 0.0]]])
    imp = torch.tensor([[1.0, 0.5, 0.25]])
    assert float(M.mse(out, y, imp)) == pytest.approx(0.25 + 0 + 0.25 * 4)
    p = torch.tensor([[[0.0, 0.0, 1.0]]])
    expected = -(2.0 - math.log(math.exp(0.5) + 1 + math.exp(2.0)))
    assert float(M.cross_entropy(out, p)) == pytest.approx(expected, rel=1e-6)
    outs = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [5.0, 0.0], [0.0, 0.0]]])
    ys = torch.tensor([[[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]])  # last: no argmax
    w = torch.tensor([[1.0, 1.0, 0.0, 1.0]])  # third row weighted out
    assert float(M.argmax_accuracy(outs, ys, w)) == pytest.approx(1 / 2)


# --- data -------------------------------------------------------------------------------


def test_importance_and_sparse_features() -> None:
    np.testing.assert_allclose(importance("decay", 5), 100 ** -np.linspace(0, 1, 5), rtol=1e-6)
    np.testing.assert_allclose(importance("0.7", 4), [1, 0.7, 0.49, 0.343], rtol=1e-6)
    with pytest.raises(StriateError, match="uniform"):
        importance("steep", 3)
    x = sparse_features(20_000, 11, 0.9, torch.Generator().manual_seed(0))
    active = x > 0
    assert float(active.float().mean()) == pytest.approx(0.1, abs=0.005)  # 1 - S
    assert float(x[active].mean()) == pytest.approx(0.5, abs=0.01)  # uniform on [0, 1)
    assert float(x.max()) < 1.0
    u = unit_rows(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(u, [[0.6, 0.8], [0.0, 0.0]])
    np.testing.assert_allclose(antipodal_set(2), [[1, 0], [-1, 0], [0, 1], [0, -1]])


# --- optimizer and schedule -------------------------------------------------------------


def test_batched_adamw_matches_torch_per_instance() -> None:
    """Two instances with their own lr and weight decay, each against torch.optim.AdamW."""
    cfg = TrainConfig()
    gen = torch.Generator().manual_seed(1)
    start = torch.randn(2, 3, 5, generator=gen)
    grads = [torch.randn(2, 3, 5, generator=gen) for _ in range(7)]
    lrs, wds = [1e-2, 3e-3], [0.1, 0.0]
    p = start.clone().requires_grad_()
    ours = AdamW([p], torch.tensor(lrs), torch.tensor(wds), cfg)
    for step, g in enumerate(grads, 1):
        p.grad = g.clone()
        ours.step(0.5 * step)  # a schedule factor that changes every step
    for k in range(2):
        q = start[k].clone().requires_grad_()
        ref = torch.optim.AdamW([q], lr=lrs[k], weight_decay=wds[k])
        for step, g in enumerate(grads, 1):
            ref.param_groups[0]["lr"] = lrs[k] * 0.5 * step
            q.grad = g[k].clone()
            ref.step()
        np.testing.assert_allclose(p[k].detach(), q.detach(), rtol=1e-6, atol=1e-7)


def test_warmup_then_cosine_schedule() -> None:
    cfg = TrainConfig(steps=1000, warmup=0.1)
    assert lr_factor(50, cfg) == pytest.approx(0.5)
    assert lr_factor(100, cfg) == pytest.approx(1.0)
    assert lr_factor(550, cfg) == pytest.approx(0.5)  # halfway through the cosine
    assert lr_factor(1000, cfg) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(700, TrainConfig(schedule="constant")) == 1.0


# --- batched training is training alone --------------------------------------------------


def _params(result_model: torch.nn.Module, k: int) -> dict[str, np.ndarray]:
    return {n: p[k].detach().numpy() for n, p in result_model.named_parameters()}


@pytest.mark.parametrize(
    "instances",
    [
        [  # fresh batches, different sparsities and hyperparameters
            Instance(index=0, model="relu-output", n_features=7, n_hidden=3, sparsity=0.0),
            Instance(index=4, model="relu-output", n_features=7, n_hidden=3, sparsity=0.9,
                     lr=3e-3, weight_decay=0.0, importance="0.7"),
            Instance(index=9, model="relu-output", n_features=7, n_hidden=3, sparsity=0.5,
                     lr=2e-2, weight_decay=0.1, noise=0.1),
        ],
        [  # fixed sets of different sizes, padded into one group; an MLP with biases
            Instance(index=1, model="mlp", n_features=11, n_hidden=2, sparsity=0.8,
                     dataset_size=5, unit_norm=True),
            Instance(index=2, model="mlp", n_features=11, n_hidden=2, sparsity=0.8,
                     dataset_size=13, unit_norm=True, lr=5e-3),
        ],
        [  # cross-entropy, untied, soft labels
            Instance(index=3, model="unembed", n_features=5, n_hidden=2, sparsity=0.6,
                     dataset_size=7, tied=False, labels="soft"),
            Instance(index=5, model="unembed", n_features=5, n_hidden=2, sparsity=0.6,
                     dataset_size=7, tied=False, labels="soft", replicate=1),
        ],
    ],
)  # fmt: skip
def test_an_instance_trains_the_same_in_a_group_as_alone(instances: list[Instance]) -> None:
    cfg = TrainConfig(steps=60, batch_size=32, log_every=30, test_size=50, bias_init="uniform")
    assert len(pack(instances, cfg.pad_elements)) == 1  # they really share one tensor
    together = train_group(instances, 7, cfg)
    for k, inst in enumerate(instances):
        alone = train_group([inst], 7, cfg)
        for name, value in _params(alone.model, 0).items():
            np.testing.assert_allclose(
                _params(together.model, k)[name], value, rtol=1e-5, atol=1e-6, err_msg=name
            )
        rows = pd.DataFrame(together.rows)
        mine = rows[rows["instance"] == inst.index].reset_index(drop=True)
        theirs = pd.DataFrame(alone.rows)
        np.testing.assert_allclose(mine["test_loss"], theirs["test_loss"], rtol=1e-5)
    # and the instances did differ: otherwise the comparison above proves nothing
    first, second = _params(together.model, 0), _params(together.model, 1)
    assert not np.allclose(first[next(iter(first))], second[next(iter(second))])


def test_pack_groups_by_shape_and_pads_small_sets() -> None:
    def inst(i: int, T: int, m: int = 2) -> Instance:
        return Instance(index=i, model="relu-output", n_features=10, n_hidden=m, dataset_size=T)

    group_ids = [[i.index for i in g] for g in pack(
        [inst(0, 5), inst(1, 9), inst(2, 9, m=3), inst(3, 4000), inst(4, 4000), inst(5, 0)],
        pad_elements=1000,
    )]  # fmt: skip
    # 5 and 9 rows pad into one group (2 x 9 x 20 <= 1000); equal sizes always share one
    assert group_ids == [[0, 1], [2], [3, 4], [5]]


def test_init_draws_each_instance_from_its_own_generator() -> None:
    model = build("mlp", 2, 5, 3, 5)
    gens = [torch.Generator().manual_seed(s) for s in (11, 11)]
    init_(model, gens, "xavier-normal", "zero")
    np.testing.assert_array_equal(model.W1[0].detach(), model.W1[1].detach())
    assert float(model.W1.detach().std()) == pytest.approx(math.sqrt(2 / 8), rel=0.5)
    assert float(model.b1.detach().abs().max()) == 0.0  # biases start at zero by default


# --- the claims, on the quick presets ------------------------------------------------------


def _no_nan(word: str) -> None:
    raise AssertionError(f"summary.json holds {word}, which is not JSON")


def _read(run: Path) -> tuple[dict[str, object], dict[str, object]]:
    summary = json.loads((run / "summary.json").read_text(), parse_constant=_no_nan)
    manifest = json.loads((run / "manifest.json").read_text())
    return summary, manifest


#: the fields every manifest has (`striate.store.Manifest`)
COMMON = {"striate_version", "code", "kind", "source", "settings", "started", "finished", "seconds",
          "figures", "tensors"}  # fmt: skip


def _check_run_directory(run: Path, name: str, keys: set[str]) -> dict[str, object]:
    summary, manifest = _read(run)
    assert keys <= set(summary)
    assert manifest["kind"] == "lab" and manifest["name"] == name
    assert set(manifest) == COMMON | {"name", "about", "preset", "overrides", "seed",
                                      "instances", "executor"}  # fmt: skip
    assert manifest["source"] == f"lab {name}" and manifest["seconds"] > 0
    assert manifest["about"] == LABS[name].about and manifest["about"]
    assert manifest["figures"], "a lab draws at least one figure"
    for rel in manifest["figures"]:  # type: ignore[attr-defined]
        assert (run / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    log = pd.read_parquet(run / "lab.parquet")
    columns = {"instance", "step", "train_loss", "test_loss", "test_accuracy", "probe_accuracy",
               "represented", "feature_dimensionality", "sparsity", "n_hidden"}  # fmt: skip
    assert columns <= set(log.columns)
    features = pd.read_parquet(run / "features.parquet")
    assert set(features["instance"]) == set(log["instance"])
    figures = manifest["figures"]
    assert isinstance(figures, list)
    assert (run / "index.html").read_text().count("<img ") == len(figures)
    return summary


def _claims(run: Path, name: str) -> dict[str, dict[str, object]]:
    """claims.json of a one-seed run, by id: every claim of the setting, decided."""
    rows = json.loads((run / "claims.json").read_text(), parse_constant=_no_nan)
    assert [r["id"] for r in rows] == [c.id for c in LABS[name].claims]
    for r in rows:
        assert r["n_seeds"] == 1 and len(r["per_seed"]) == 1 and r["verdict"] in VERDICTS
        assert str(r["id"]) in str(r["criterion"]) and r["threshold"] is not None
        assert r["deviations"] and r["source"].startswith("shared/seeds/004_")
    return {str(r["id"]): r for r in rows}


def test_superposition_dense_keeps_m_features_and_sparse_more(tmp_path: Path) -> None:
    """n=20 > m=5. Dense: the 5 most important features, orthogonal. S=0.99: more than 5."""
    run = run_lab("superposition", tmp_path / "sup")
    summary = _check_run_directory(run, "superposition", {"by_sparsity", "dense_represented"})
    assert summary["dense_sparsity"] == 0.0
    assert summary["dense_represented"] == 5 and summary["dense_top_m_mismatch"] == 0
    assert summary["dense_max_superposition"] < 0.05  # seeds 0-2: at most 0.002
    assert summary["sparsest_represented"] > 5  # seeds 0-2: 11 to 12
    # the claims that held in each of seeds 0, 1, 2 (sparsest-nearly-all held in none)
    claims = _claims(run, "superposition")
    for met in ("dense-keeps-top-m", "dense-no-superposition", "sparse-more-than-m",
                "superposition-grows-with-sparsity"):  # fmt: skip
        assert claims[met]["verdict"] == "met", met
    assert claims["superposition-grows-with-sparsity"]["per_seed"] == [1.0]  # 5 < 8.. < 11
    features = pd.read_parquet(run / "features.parquet")
    dense = features[features["instance"] == summary["by_sparsity"][0]["instance"]]  # type: ignore[index]
    kept = dense[dense["norm"] > 0.5]["feature"].tolist()
    assert kept == [0, 1, 2, 3, 4]  # the most important ones
    np.testing.assert_allclose(dense[dense["norm"] > 0.5]["dimensionality"], 1.0, atol=0.02)


def test_the_linear_control_keeps_the_top_m_features_at_every_sparsity(tmp_path: Path) -> None:
    """Without the ReLU the optimum is PCA of the importance-weighted inputs (independent
    features of equal variance): features 0-4 on orthonormal directions, whatever S."""
    run = run_lab("linear", tmp_path / "linear")
    summary = _check_run_directory(run, "linear", {"by_sparsity", "max_top_m_mismatch"})
    claims = _claims(run, "linear")
    assert {c: claims[c]["verdict"] for c in claims} == dict.fromkeys(claims, "met")
    features = pd.read_parquet(run / "features.parquet")
    rows = summary["by_sparsity"]
    assert [r["sparsity"] for r in rows] == [0.0, 0.9, 0.99]  # type: ignore[index]
    for row in rows:  # type: ignore[attr-defined]
        best = features[features["instance"] == row["instance"]].set_index("feature")
        assert best.index[best["norm"] > 0.5].tolist() == [0, 1, 2, 3, 4], row["sparsity"]
        np.testing.assert_allclose(best["norm"].iloc[:5], 1.0, atol=0.05)  # unit: PCA
        assert best["norm"].iloc[5:].max() < 0.1
        np.testing.assert_allclose(best["dimensionality"].iloc[:5], 1.0, atol=0.02)


def test_double_descent_peaks_inside_the_sweep_and_memorizes_small_sets(tmp_path: Path) -> None:
    run = run_lab("double-descent", tmp_path / "dd")
    summary = _check_run_directory(run, "double-descent", {"peak_dataset_size", "by_hidden"})
    sizes = LABS["double-descent"].presets["quick"].dataset_sizes
    assert summary["peak_is_interior"] is True
    assert sizes[0] < summary["peak_dataset_size"] < sizes[-1]
    curve = pd.DataFrame(summary["by_hidden"][0]["curve"])  # type: ignore[index]
    ends = max(curve["test_loss"].iloc[0], curve["test_loss"].iloc[-1])
    assert curve["test_loss"].max() > 1.3 * ends  # a real bump, not noise
    small = curve.iloc[0]
    assert small["train_loss"] < 0.2 * small["test_loss"]  # memorized ...
    assert small["train_accuracy"] == 1.0
    # ... as a polygon of T points in the plane: each has dimensionality 2 / T
    assert small["data_dimensionality"] == pytest.approx(2 / sizes[0], abs=0.1)
    points = pd.read_parquet(run / "points.parquet")
    assert len(points) == sum(sizes)  # one row per training point of every instance
    # every claim held in each of seeds 0, 1, 2: peak ratio 1.6-3.0 (>= 1.2), train/test loss
    # 0.006-0.10 (<= 0.2), polygon 0.95-0.98 (>= 0.9), largest feature dimensionality 0.36-0.39
    claims = _claims(run, "double-descent")
    assert {r["verdict"] for r in claims.values()} == {"met"}
    assert summary["peak_ratio"] == pytest.approx(curve["test_loss"].max() / ends)
    assert summary["smallest_polygon"] == pytest.approx(sizes[0] * small["data_dimensionality"] / 2)


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("privileged", {"by_sparsity", "dense_monosemanticity", "represented_sparsity_spearman"}),
        ("mlp-double-descent", {"peak_ratio", "smallest_polygon", "by_hidden"}),
        ("unembedding", {"peak_dataset_size", "largest_feature_dimensionality"}),
        ("unembedding-memorization", {"at_memorization_size", "by_hidden"}),
        ("double-descent-weight-decay", {"bump_shrink", "by_hidden"}),
        ("reconstruction", {"cells", "sparser_raises_accuracy", "dense_decay_recovered_per_dim"}),
        ("fish", {"cells", "bottleneck_over_hidden", "reprojector_closeness"}),
        ("one-hot", {"cells", "mlp_median_when_m_much_below_T", "bottleneck_better"}),
        ("final-layer", {"by_weight_decay", "low", "margin_ratio"}),
        ("geometry", {"by_sparsity", "half_plateau_length", "at_fractions"}),
    ],
)
def test_every_lab_writes_its_run_directory(name: str, keys: set[str], tmp_path: Path) -> None:
    run = run_lab(name, tmp_path / name, overrides=["train.steps=40", "train.log_every=20"],
                  seed=3)  # fmt: skip
    _check_run_directory(run, name, keys)
    _, manifest = _read(run)
    if name == "unembedding-memorization":  # untied, T = 500: the source's picture
        assert "figures/unembedding_anatomy.png" in manifest["figures"]  # type: ignore[operator]
    assert manifest["seed"] == 3 and manifest["settings"]["train"]["steps"] == 40  # type: ignore[index]
    claims = _claims(run, name)  # decided, whatever 40 steps give
    assert all(r["seeds"] == [3] for r in claims.values())
    assert any("train.steps = 40" in d for d in next(iter(claims.values()))["deviations"])  # type: ignore[attr-defined]
    log = pd.read_parquet(run / "lab.parquet")
    assert sorted(set(log["step"])) == [0, 20, 40]


def test_unknown_names_list_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(StriateError, match="double-descent"):
        run_lab("double-decent", tmp_path)
    with pytest.raises(StriateError, match="quick, paper"):
        run_lab("superposition", tmp_path, preset="huge")
    with pytest.raises(StriateError, match=r"known here: .*sparsities"):
        run_lab("superposition", tmp_path, overrides=["sparsity=0.5"])
    with pytest.raises(StriateError, match="one of"):
        run_lab("reconstruction", tmp_path, overrides=["model=transformer"])
    with pytest.raises(StriateError, match="grokking is an experiment: striate experiment"):
        run_lab("grokking", tmp_path)
    names = ["superposition", "linear", "privileged", "double-descent",
             "double-descent-weight-decay", "mlp-double-descent", "unembedding",
             "unembedding-memorization", "reconstruction", "fish", "one-hot",
             "final-layer", "geometry"]  # fmt: skip
    assert sorted(LABS) == sorted(names)


def test_striate_lab_is_the_public_name_of_the_lab() -> None:
    import striate.lab

    assert striate.lab.run_lab is run_lab and striate.lab.LABS is LABS
