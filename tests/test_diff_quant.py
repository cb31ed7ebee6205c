"""The quantization view of `striate.diff`: safetensors originals against GGUF files written here
with the `gguf` package (Hugging Face names translated, llama.cpp's q/k row permutation), the
values checked against an independent numpy dequantization of the GGML block layouts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_diff import IN_NORM, LLAMA, UP, K, Q, llama_a, save

import striate
from striate.diff import CompareConfig, DiffConfig, diff, pair_values

gguf = pytest.importorskip("gguf")
QT = gguf.GGMLQuantizationType


def deq_q8_0(raw: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """block_q8_0 (ggml-common.h): f16 scale d, 32 int8 q; x = d * q."""
    b = raw.reshape(-1, 34)
    d = b[:, :2].copy().view("<f2").astype(np.float32)
    return (b[:, 2:].view(np.int8).astype(np.float32) * d).reshape(shape)


def deq_q4_0(raw: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """block_q4_0: f16 scale d, 16 bytes of nibbles (low: elements 0-15, high: 16-31);
    x = d * (q - 8)."""
    b = raw.reshape(-1, 18)
    d = b[:, :2].copy().view("<f2").astype(np.float32)
    q = np.concatenate([b[:, 2:] & 0xF, b[:, 2:] >> 4], axis=1).astype(np.float32)
    return ((q - 8) * d).reshape(shape)


def llama_cpp_permute(w: np.ndarray, heads: int) -> np.ndarray:
    """convert_hf_to_gguf.py's `LlamaModel.permute` of q and k rows."""
    return (
        w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
    )


def write_gguf(path: Path, arch: str, n_blocks: int, tensors: dict[str, tuple[np.ndarray, Any]],
               **kv: int) -> None:  # fmt: skip
    """`tensors`: GGUF name -> (float32 values or quantized bytes, GGML type or None)."""
    writer = gguf.GGUFWriter(path, arch)
    writer.add_block_count(n_blocks)
    for key, value in kv.items():
        writer.add_uint32(f"{arch}.{key.replace('__', '.')}", value)
    for name, (array, kind) in tensors.items():
        writer.add_tensor(name, array, raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def block_errors(error: np.ndarray) -> np.ndarray:
    """RMS of `error` over blocks of 32 along its rows, float64 (rows, cols // 32)."""
    e = error.astype(np.float64).reshape(error.shape[0], -1, 32)
    return np.sqrt(np.mean(e * e, axis=2))


def test_q4_0_super_weight_loses_its_block_and_llama_names_and_rows_are_matched(
    tmp_path: Path,
) -> None:
    a = llama_a()
    a[UP][9, 40] = 100 * 0.02  # a super weight: 100 sigma
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 1)
    raw = gguf.quants.quantize(a[UP], QT.Q4_0)
    tensors: dict[str, tuple[np.ndarray, Any]] = {}
    for name, w in a.items():
        heads = 4 if name in (Q, K) else None
        values = w if heads is None else llama_cpp_permute(w, heads)
        tensors[names.get_name(name, try_suffixes=(".weight",))] = (
            (raw, QT.Q4_0) if name == UP else (values, None)
        )
    write_gguf(tmp_path / "b.gguf", "llama", 1, tensors, embedding_length=64,
               attention__head_count=4, attention__head_count_kv=4)  # fmt: skip
    run = diff(save(tmp_path / "a", a, LLAMA), tmp_path / "b.gguf")

    assert run.unmatched.empty and run.manifest["name_mapping"] == "names and gguf"
    t = run.tensors.set_index("name")
    assert t.loc[UP, "name_b"] == "blk.0.ffn_up.weight"
    assert t.loc[Q, "name_b"] == "blk.0.attn_q.weight"
    exact = t.drop(index=UP)
    assert (exact["rel_change"] == 0).all() and (exact["cosine"] == 1).all()  # rows un-permuted
    with striate.open(tmp_path / "a") as ckpt_a, striate.open(tmp_path / "b.gguf") as ckpt_b:
        w_a, w_b = pair_values(ckpt_a, ckpt_b, K)
        np.testing.assert_array_equal(w_b, w_a)
        assert not np.array_equal(ckpt_b.read("blk.0.attn_k.weight"), w_a)
        w_gguf, w_hf = pair_values(ckpt_b, ckpt_a, "blk.0.attn_k.weight")  # GGUF as A
        np.testing.assert_array_equal(w_hf, w_gguf)

    deq = deq_q4_0(raw, a[UP].shape)
    with striate.open(tmp_path / "b.gguf") as ckpt:
        np.testing.assert_array_equal(ckpt.read("blk.0.ffn_up.weight"), deq)
    error = deq.astype(np.float64) - a[UP]
    row = t.loc[UP]
    assert (row["dtype_b"], row["block_format"], row["block_size"]) == ("Q4_0", "Q4_0", 32)
    assert row["max_abs_change"] == np.abs(error).max()
    norm_a = np.linalg.norm(a[UP].astype(np.float64))
    np.testing.assert_allclose(row["rel_change"], np.linalg.norm(error) / norm_a, rtol=1e-12)
    blocks = block_errors(error)
    median = np.median(blocks)
    np.testing.assert_allclose(row["block_error_median"], median, rtol=1e-12)

    # the 31 block-mates of the super weight are rounded to 0: their error is their whole value
    hot = run.blocks[
        (run.blocks["kind"] == "hotspot") & (run.blocks["index"].map(tuple) == (9, 40))
    ]
    assert len(hot) == 1
    hot = hot.iloc[0]
    mates = np.delete(a[UP][9, 32:64].astype(np.float64), 40 - 32)
    assert (hot["block_start"], hot["n_others"], hot["others_zeroed"]) == (32, 31, 31)
    assert hot["others_rel_error"] == 1.0
    np.testing.assert_allclose(hot["others_error"], np.sqrt(np.mean(mates**2)), rtol=1e-12)
    np.testing.assert_allclose(hot["error_ratio"], np.sqrt(np.mean(mates**2)) / median,
                               rtol=1e-12)  # fmt: skip
    assert hot["error_ratio"] > 5
    assert hot["value_b"] == pytest.approx(hot["value_a"], rel=1e-3)  # the super weight survives
    assert (
        hot["detail"].startswith("the Q4_0 block of 32 around hotspot w[9, 40] = 2 (B: 2")
        and "lost its other 31 weights (all 0 in B)" in hot["detail"]
    )
    f = run.findings
    super_weight = f[(f["tensor"] == UP) & (f["index"].map(tuple) == (9, 40))].iloc[0]
    assert super_weight["block_error_ratio"] == hot["error_ratio"]
    assert super_weight["status"] == "kept"
    # float32 vectors have no blocks of their own: fixed blocks of 32, no error
    assert t.loc[IN_NORM, "block_format"] == "fixed" and t.loc[IN_NORM, "block_error_max"] == 0


@pytest.mark.sample
def test_minilm_against_its_q8_0_gguf(tmp_path: Path) -> None:
    """MiniLM's layer-0 FFN output holds a super weight (w[99, 856] = 7.9, residual dim 99);
    Q8_0 keeps it and rounds most of its block-mates to 0."""
    ckpt = striate.open("sample:minilm")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, 6)
    include = r"^encoder\.layer\.0\.(output\.|attention\.output\.LayerNorm)"
    raws, tensors = {}, {}
    for name in ckpt.names():
        if not re.search(include, name):
            continue
        w = ckpt.read(name)
        gname = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if w.ndim == 2:
            raws[name] = gguf.quants.quantize(w, QT.Q8_0)
            tensors[gname] = (raws[name], QT.Q8_0)
        else:
            tensors[gname] = (w, None)
    write_gguf(tmp_path / "q8.gguf", "bert", 6, tensors, embedding_length=384,
               attention__head_count=12)  # fmt: skip
    config = DiffConfig(compare=CompareConfig(include=include))
    run = diff("sample:minilm", tmp_path / "q8.gguf", tmp_path / "run", config=config)

    t = run.tensors.set_index("name")
    down = "encoder.layer.0.output.dense.weight"
    assert len(t) == 6 and run.unmatched.empty
    assert t.loc[down, "name_b"] == "blk.0.ffn_down.weight" and t.loc[down, "dtype_b"] == "Q8_0"
    a = ckpt.read(down)
    error = deq_q8_0(raws[down], a.shape).astype(np.float64) - a
    assert t.loc[down, "max_abs_change"] == np.abs(error).max()
    norm_a = np.linalg.norm(a.astype(np.float64))
    np.testing.assert_allclose(
        t.loc[down, "rel_change"], np.linalg.norm(error) / norm_a, rtol=1e-12
    )
    assert 0 < t.loc[down, "rel_change"] < 0.01 and t.loc[down, "cosine"] > 0.9999
    vectors = t.drop(index=down)
    assert (vectors["rel_change"] == 0).all() and (vectors["dtype_b"] == "F32").all()
    # Q8_0 keeps every finding, the super weight included; its block-mates pay for it
    assert set(run.findings["status"]) == {"kept"}
    worst = run.blocks.iloc[0]
    assert (worst["tensor"], worst["kind"], worst["index"]) == (down, "hotspot", [99, 856])
    mates = np.delete(a[99, 832:864].astype(np.float64), 856 - 832)
    mates_error = np.delete(error[99, 832:864], 856 - 832)
    np.testing.assert_allclose(worst["error_ratio"], np.sqrt(np.mean(mates_error**2))
                               / np.median(block_errors(error)), rtol=1e-12)  # fmt: skip
    assert worst["error_ratio"] > 30 and worst["others_rel_error"] > 0.5
    assert worst["others_zeroed"] == np.count_nonzero((mates != 0) & (mates + mates_error == 0))
    assert worst["others_zeroed"] > 20
    dims = run.findings.loc[run.findings["tensor"] == down, "residual_dim"]
    assert 99 in set(dims.dropna())
    ckpt.close()
