"""`striate.diff` on models with planted answers: low-rank updates (found, with their rank),
untouched tensors (exactly unchanged), outliers kept, shrunk, removed or added (their status),
Conv1D against nn.Linear storage, bad input, the run directory, the cache and jobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from striate.checkpoint import open_checkpoint
from striate.checkpoint.safetensors_format import SafetensorsCheckpoint
from striate.diff import TABLES, DiffRun, diff, pair_values
from striate.diff.compare import FINDING_COLUMNS
from striate.errors import StriateError

D, F, SIGMA = 64, 256, 0.02
P = "model.layers.0."
UP, O_PROJ, GATE, DOWN = P + "mlp.up_proj.weight", P + "self_attn.o_proj.weight", \
    P + "mlp.gate_proj.weight", P + "mlp.down_proj.weight"  # fmt: skip
Q, K = P + "self_attn.q_proj.weight", P + "self_attn.k_proj.weight"
IN_NORM, POST_NORM, NORM = P + "input_layernorm.weight", P + "post_attention_layernorm.weight", \
    "model.norm.weight"  # fmt: skip
LLAMA = {"model_type": "llama", "hidden_size": D, "num_attention_heads": 4,
         "num_key_value_heads": 4, "num_hidden_layers": 1, "intermediate_size": F}  # fmt: skip


def save(folder: Path, tensors: dict[str, np.ndarray], config: dict[str, Any] | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    values = {k: torch.from_numpy(np.ascontiguousarray(v, np.float32)) for k, v in tensors.items()}
    save_file(values, folder / "model.safetensors")
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return folder


def llama_a(seed: int = 0) -> dict[str, np.ndarray]:
    """A one-layer LLaMA: Gaussian matrices, a loud row 7 in down_proj (it writes residual dim
    7), three hotspots, and gain 6 at dim 7 of every norm."""
    rng = np.random.default_rng(seed)
    shapes = {Q: (D, D), K: (D, D), O_PROJ: (D, D), GATE: (F, D), UP: (F, D), DOWN: (D, F)}
    t = {n: (SIGMA * rng.standard_normal(s)).astype(np.float32) for n, s in shapes.items()}
    t[DOWN][7] *= 8
    t[GATE][10, 20], t[GATE][50, 30], t[DOWN][2, 100] = 0.8, -0.8, 0.8  # 40 sigma
    t[GATE][:, 9] *= 0.1  # a quiet column: gate_proj barely reads residual dim 9
    for name in (IN_NORM, POST_NORM, NORM):
        t[name] = (1 + 0.02 * rng.standard_normal(D)).astype(np.float32)
        t[name][7] = 6.0
    return t


def orthonormal(rng: np.random.Generator, n: int, r: int) -> np.ndarray:
    return np.linalg.qr(rng.standard_normal((n, r)))[0]


def llama_b(a: dict[str, np.ndarray], seed: int = 1) -> dict[str, np.ndarray]:
    """A with a rank-3 update of up_proj (three singular values 0.5), a rank-1 update of o_proj,
    one hotspot of gate_proj halved, one set to 0, one new, its quiet column 9 set to 0; the
    gain at dim 7 set back to 1 in input_layernorm and to 3 in model.norm. q, k, down_proj and
    post_attention_layernorm are left exactly as they are."""
    rng = np.random.default_rng(seed)
    b = {n: v.copy() for n, v in a.items()}
    b[UP] += (0.5 * orthonormal(rng, F, 3) @ orthonormal(rng, D, 3).T).astype(np.float32)
    b[O_PROJ] += (0.3 * orthonormal(rng, D, 1) @ orthonormal(rng, D, 1).T).astype(np.float32)
    b[GATE][10, 20], b[GATE][50, 30], b[GATE][100, 40] = 0.4, 0.0, 0.9
    b[GATE][:, 9] = 0.0  # the quiet column is gone
    b[IN_NORM][7], b[NORM][7] = 1.0, 3.0
    return b


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[DiffRun, dict[str, Any], Path]:
    tmp = tmp_path_factory.mktemp("diff")
    a = llama_a()
    b = llama_b(a)
    run = diff(save(tmp / "a", a, LLAMA), save(tmp / "b", b, LLAMA), tmp / "run")
    return run, {"a": a, "b": b, "tmp": tmp}, tmp / "run"


def test_low_rank_updates_are_found_with_their_rank(planted: Any) -> None:
    run, models, _ = planted
    t = run.tensors.set_index("name")
    for name, rank in ((UP, 3), (O_PROJ, 1)):
        row = t.loc[name]
        assert row["update_stable_rank"] == pytest.approx(rank, rel=1e-3)
        assert row["update_effective_rank"] == pytest.approx(rank, rel=1e-3)
        a, b = (models[k][name].astype(np.float64) for k in ("a", "b"))
        np.testing.assert_allclose(row["rel_change"], np.linalg.norm(b - a) / np.linalg.norm(a),
                                   rtol=1e-12)  # fmt: skip
        cosine = np.sum(a * b) / np.linalg.norm(a) / np.linalg.norm(b)
        np.testing.assert_allclose(row["cosine"], cosine, rtol=1e-12)
        assert row["max_abs_change"] == np.abs(b - a).max()
        assert 0 < row["top_k_overlap"] < 1
    for name in (Q, K, DOWN, POST_NORM):
        row = t.loc[name]
        assert (row["rel_change"], row["cosine"], row["max_abs_change"]) == (0.0, 1.0, 0.0), name
        assert np.isnan(row["update_stable_rank"]) and np.isnan(row["update_effective_rank"])
    for name in (Q, K, DOWN):
        assert t.loc[name, "top_k_overlap"] == pytest.approx(1.0, abs=1e-12)
        assert t.loc[name, "effective_rank_a"] == t.loc[name, "effective_rank_b"]
    assert (t["status"] == "done").all()
    assert t.loc[UP, "spectral_norm_b"] > t.loc[UP, "spectral_norm_a"]


def test_outliers_kept_shrunk_removed_and_new_get_their_status(planted: Any) -> None:
    run, _, _ = planted
    f = run.findings
    assert list(f.columns) == FINDING_COLUMNS
    status = {(r.kind, r.tensor, tuple(r.index)): r.status for r in f.itertuples()}
    assert status[("hotspot", GATE, (10, 20))] == "weakened"
    assert status[("hotspot", GATE, (50, 30))] == "lost"
    assert status[("hotspot", GATE, (100, 40))] == "new"
    assert status[("hotspot", DOWN, (2, 100))] == "kept"
    assert status[("line", DOWN, (7, None))] == "kept"
    assert status[("line", GATE, (None, 9))] == "lost"  # all 0 in B: gone, not quieter
    assert status[("norm_outlier", IN_NORM, (7,))] == "lost"
    assert status[("norm_outlier", NORM, (7,))] == "weakened"
    assert status[("norm_outlier", POST_NORM, (7,))] == "kept"
    halved = f[(f["tensor"] == GATE) & (f["index"].map(tuple) == (10, 20))].iloc[0]
    assert (halved["value_a"], halved["value_b"]) == (np.float32(0.8), np.float32(0.4))
    assert halved["retention"] == 0.5 and halved["rel_change"] == -0.5
    new = f[f["status"] == "new"].iloc[0]
    assert (new["found_in_a"], new["found_in_b"], new["value_b"]) == (False, True, np.float32(0.9))
    untouched = f[f["tensor"].isin([Q, K, DOWN, POST_NORM])]
    assert set(untouched["status"]) == {"kept"}
    assert set(untouched["retention"].dropna()) == {1.0}
    # residual dim 7, loud in A's pooled evidence, is still judged in B
    dim7 = f[(f["kind"] == "residual_dim") & (f["residual_dim"] == 7)].iloc[0]
    assert dim7["found_in_a"] and dim7["value_a"] > 0 and dim7["index"] == [7]
    counts = run.tensors.set_index("name").loc[GATE, ["n_kept", "n_weakened", "n_lost", "n_new"]]
    assert counts.tolist() == [0, 1, 2, 1]


def test_residual_table_puts_the_changed_dim_first(planted: Any) -> None:
    run, _, _ = planted
    r = run.residual
    assert len(r) == D and set(r["residual_dim"]) == set(range(D))
    # dim 7 lost its norm outliers: the largest, most significant change of the stream
    assert r.iloc[0]["residual_dim"] == 7
    assert r.set_index("residual_dim")["rel_change"].idxmax() == 7


def test_run_directory_reads_back(planted: Any) -> None:
    run, _, out = planted
    for name in TABLES.values():
        assert (out / f"{name}.parquet").is_file(), name
    back = DiffRun.load(out)
    for attr in TABLES:
        pd.testing.assert_frame_equal(getattr(back, attr), getattr(run, attr), check_dtype=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "diff" and manifest["settings"]["compare"]["top_k"] == 8
    assert manifest["b"]["format"] == "safetensors" and manifest["name_mapping"] == "names"
    assert {s["status"] for s in manifest["tensors"].values()} == {"done"}
    assert set(manifest["tensors"]) == set(run.tensors["name"])
    assert f"{len(run.tensors)} tensors compared, 0 failed, 0 unmatched" in repr(run)


def test_a_second_diff_reuses_the_cache_and_jobs_change_nothing(planted: Any) -> None:
    run, models, out = planted
    again = diff(models["tmp"] / "a", models["tmp"] / "b", out)
    assert again.manifest["cache"] == {"reused": len(run.tensors), "computed": 0}
    parallel = diff(models["tmp"] / "a", models["tmp"] / "b", jobs=2)
    assert parallel.manifest["cache"]["computed"] == len(run.tensors)
    for other in (again, parallel):
        for attr in TABLES:
            pd.testing.assert_frame_equal(getattr(other, attr), getattr(run, attr))


def test_conv1d_against_linear_storage_compares_the_same_weights(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    conv1d = {"h.0.attn.c_attn.weight": (D, 3 * D), "h.0.attn.c_proj.weight": (D, D),
              "h.0.mlp.c_fc.weight": (D, F), "h.0.mlp.c_proj.weight": (F, D)}  # fmt: skip
    a = {n: (SIGMA * rng.standard_normal(s)).astype(np.float32) for n, s in conv1d.items()}
    a["h.0.mlp.c_fc.weight"][5, 100] = 1.0  # a hotspot at residual dim 5
    a |= {"wte.weight": (SIGMA * rng.standard_normal((100, D))).astype(np.float32),
          "h.0.ln_1.weight": np.ones(D, np.float32)}  # fmt: skip
    b = {n: (v.T if n in conv1d else v) for n, v in a.items()}  # nanoGPT's nn.Linear layout
    config = {"model_type": "gpt2", "n_embd": D, "n_head": 4, "n_layer": 1}
    run = diff(save(tmp_path / "a", a, config), save(tmp_path / "b", b, config))
    t = run.tensors.set_index("name")
    assert t["transposed"].to_dict() == {n: n in conv1d for n in a}
    assert (t["rel_change"] == 0).all() and (t["cosine"] == 1).all()
    assert list(t.loc["h.0.mlp.c_fc.weight", "shape_b"]) == [F, D]
    hot = run.findings[run.findings["kind"] == "hotspot"].iloc[0]
    assert (hot["tensor"], hot["index"], hot["status"], hot["residual_dim"]) == (
        "h.0.mlp.c_fc.weight",
        [5, 100],
        "kept",
        5,
    )
    assert run.unmatched.empty


def test_models_without_a_common_tensor_are_one_clear_error(tmp_path: Path) -> None:
    a = save(tmp_path / "a", {"x.weight": np.ones((4, 4))}, None)
    b = save(tmp_path / "b", {"y.weight": np.ones((4, 4)), "z": np.ones(3)}, None)
    with pytest.raises(StriateError) as err:
        diff(a, b)
    assert str(err.value) == (
        f"cannot diff {a} and {b}: no tensor in common between {a} (1 tensors, e.g. "
        f"'x.weight') and {b} (2 tensors, e.g. 'y.weight') (diff compares two versions of one "
        "model; names are matched as they are, or between Hugging Face and GGUF names through "
        "the gguf package's map)"
    )
    c = save(tmp_path / "c", {"x.weight": np.ones((4, 5))}, None)
    same_name = (r"1 tensors share a name but none has the same shape, e.g. 'x.weight': "
                 r"shape differs: A \(4, 4\), B \(4, 5\)")  # fmt: skip
    with pytest.raises(StriateError, match=same_name):
        diff(a, c)


def test_shape_changes_and_missing_tensors_are_recorded(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    same = (SIGMA * rng.standard_normal((16, 32))).astype(np.float32)
    a = save(tmp_path / "a", {"w": same, "emb": np.ones((10, 8)), "old": np.ones(3)}, None)
    b = save(tmp_path / "b", {"w": same, "emb": np.ones((12, 8)), "new": np.ones(2)}, None)
    run = diff(a, b, tmp_path / "run")
    assert run.tensors["name"].tolist() == ["w"]
    rows = run.unmatched.set_index("reason")
    assert sorted(rows.index) == ["only in A", "only in B", "shape differs: A (10, 8), B (12, 8)"]
    assert rows.loc["only in A", "name"] == "old" and rows.loc["only in B", "name_b"] == "new"
    assert list(rows.loc["shape differs: A (10, 8), B (12, 8)", "shape_b"]) == [12, 8]
    no_counterpart = pytest.raises(StriateError, match=r"'emb': no counterpart in .*: shape")
    with open_checkpoint(a) as ckpt_a, open_checkpoint(b) as ckpt_b, no_counterpart:
        pair_values(ckpt_a, ckpt_b, "emb")
    tensors = json.loads((tmp_path / "run" / "manifest.json").read_text())["tensors"]
    reason = "shape differs: A (10, 8), B (12, 8)"
    assert tensors == {"w": {"status": "done"}, "emb": {"status": "skipped", "reason": reason},
                       "old": {"status": "skipped", "reason": "only in A"},
                       "new": {"status": "skipped", "reason": "only in B"}}  # fmt: skip


def test_an_unreadable_tensor_is_recorded_and_the_rest_computed(
    planted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, models, _ = planted
    real_read = SafetensorsCheckpoint._read
    broken = models["tmp"] / "b" / "model.safetensors"

    def flaky(self: SafetensorsCheckpoint, name: str) -> np.ndarray:
        if name == UP and self.path == broken:
            raise OSError("disk on fire")
        return real_read(self, name)

    monkeypatch.setattr(SafetensorsCheckpoint, "_read", flaky)
    again = diff(models["tmp"] / "a", models["tmp"] / "b")
    error = f"{broken}: tensor '{UP}': cannot read tensor: OSError: disk on fire"
    assert again.failed == {UP: error}
    t = again.tensors.set_index("name")
    assert (t.loc[UP, "status"], t.loc[UP, "error"]) == ("failed", error)
    assert np.isnan(t.loc[UP, "rel_change"])
    before = run.tensors.set_index("name").drop(index=UP)
    pd.testing.assert_frame_equal(t.drop(index=UP).drop(columns="error"),
                                  before.drop(columns="error"))  # fmt: skip
    assert t.drop(index=UP)["error"].isna().all()
    assert UP not in set(again.findings["tensor"])
