"""The GGUF reader, checked against an independent numpy dequantizer of the GGML block layouts.

The layouts are those of ggml-common.h (`block_q4_0`, ...) and the reference `dequantize_row_*`
loops of ggml-quants.c. Tiny files are written with `gguf.GGUFWriter`: quantizable types from
random floats, the rest from random block bytes whose f16 scale fields are set to sane values.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from striate.checkpoint import Checkpoint, open_checkpoint
from striate.errors import MissingExtraError, StriateError

gguf = pytest.importorskip("gguf")
Q = gguf.GGMLQuantizationType

Blocks = npt.NDArray[Any]  # uint8 (n_blocks, bytes per block)
Values = npt.NDArray[Any]  # float32 (n_blocks, elements per block)

# ---------------------------------------------------------------------------------------------
# Independent dequantizers: (n_blocks, type_size) uint8 -> (n_blocks, block_size) float32.
# ---------------------------------------------------------------------------------------------


def _f16(b: Blocks, at: int) -> Values:
    """The little-endian half at byte `at` of each block, as float32 of shape (n_blocks, 1)."""
    return b[:, at : at + 2].copy().view("<f2").astype(np.float32)


def _nibbles(qs: Blocks) -> Blocks:
    """16 bytes -> 32 values: low nibbles are elements 0..15, high nibbles 16..31."""
    return np.concatenate([qs & 0xF, qs >> 4], axis=1)


def _bits(b: Blocks, n: int) -> Blocks:
    """Bit k of the little-endian bytes `b`, for k < n; shape (n_blocks, n)."""
    k = np.arange(n)
    return (b[:, k // 8] >> (k % 8)) & 1


def deq_q4_0(b: Blocks) -> Values:
    return (_nibbles(b[:, 2:18]).astype(np.float32) - 8) * _f16(b, 0)


def deq_q4_1(b: Blocks) -> Values:
    return _nibbles(b[:, 4:20]).astype(np.float32) * _f16(b, 0) + _f16(b, 2)


def deq_q5_0(b: Blocks) -> Values:
    q = _nibbles(b[:, 6:22]) | (_bits(b[:, 2:6], 32) << 4)
    return (q.astype(np.float32) - 16) * _f16(b, 0)


def deq_q5_1(b: Blocks) -> Values:
    q = _nibbles(b[:, 8:24]) | (_bits(b[:, 4:8], 32) << 4)
    return q.astype(np.float32) * _f16(b, 0) + _f16(b, 2)


def deq_q8_0(b: Blocks) -> Values:
    return b[:, 2:34].view(np.int8).astype(np.float32) * _f16(b, 0)


def deq_bf16(b: Blocks) -> Values:
    return (b.copy().view("<u2").astype(np.uint32) << 16).view(np.float32)


# For the 256-element super-blocks: where element i of a block sits.
_I = np.arange(256)
_HALF, _QUARTER, _SIXTEENTH, _L16 = _I // 128, (_I % 128) // 32, (_I % 32) // 16, _I % 16


def deq_q2_k(b: Blocks) -> Values:
    # scales[16] (low nibble scale, high nibble min), qs[64] (2 bits), d, dmin
    scales, qs = b[:, :16], b[:, 16:80]
    byte = qs[:, _HALF * 32 + _SIXTEENTH * 16 + _L16]
    q = (byte >> (2 * _QUARTER)) & 3
    sc = scales[:, _HALF * 8 + 2 * _QUARTER + _SIXTEENTH]
    return _f16(b, 80) * (sc & 0xF) * q - _f16(b, 82) * (sc >> 4)


def _six_bit_q3(scales: Blocks) -> npt.NDArray[Any]:
    """Sixteen 6-bit scales from 12 bytes: low 4 bits in bytes 0..7, high 2 bits in 8..11."""
    s = np.arange(16)
    low = (scales[:, s % 8] >> (4 * (s // 8))) & 0xF
    high = (scales[:, 8 + s % 4] >> (2 * (s // 4))) & 3
    return (low | (high << 4)).astype(np.int32) - 32


def deq_q3_k(b: Blocks) -> Values:
    # hmask[32], qs[64] (low 2 bits), scales[12] (6-bit, offset 32), d
    hmask, qs, scales = b[:, :32], b[:, 32:96], b[:, 96:108]
    low = (qs[:, _HALF * 32 + _SIXTEENTH * 16 + _L16] >> (2 * _QUARTER)) & 3
    high = (hmask[:, _SIXTEENTH * 16 + _L16] >> (4 * _HALF + _QUARTER)) & 1
    q = low.astype(np.int32) - np.where(high == 1, 0, 4)
    sc = _six_bit_q3(scales)[:, _HALF * 8 + 2 * _QUARTER + _SIXTEENTH]
    return _f16(b, 108) * sc * q


def _scale_min_k4(scales: Blocks) -> tuple[Blocks, Blocks]:
    """Eight 6-bit (scale, min) pairs packed in 12 bytes (`get_scale_min_k4`)."""
    lo = np.concatenate(
        [scales[:, 0:4] & 63, (scales[:, 8:12] & 0xF) | ((scales[:, 0:4] >> 6) << 4)], 1
    )
    mn = np.concatenate(
        [scales[:, 4:8] & 63, (scales[:, 8:12] >> 4) | ((scales[:, 4:8] >> 6) << 4)], 1
    )
    return lo, mn


# Q4_K / Q5_K: 4 chunks of 64; in each, 32 low nibbles then 32 high nibbles of the same bytes.
_CHUNK, _HI, _L32 = _I // 64, (_I % 64) // 32, _I % 32


def deq_q4_k(b: Blocks) -> Values:
    # d, dmin, scales[12], qs[128]
    sc, mn = _scale_min_k4(b[:, 4:16])
    byte = b[:, 16:144][:, _CHUNK * 32 + _L32]
    q = (byte >> (4 * _HI)) & 0xF
    k = 2 * _CHUNK + _HI
    return _f16(b, 0) * sc[:, k] * q - _f16(b, 2) * mn[:, k]


def deq_q5_k(b: Blocks) -> Values:
    # d, dmin, scales[12], qh[32], qs[128]
    sc, mn = _scale_min_k4(b[:, 4:16])
    byte = b[:, 48:176][:, _CHUNK * 32 + _L32]
    k = 2 * _CHUNK + _HI
    q = ((byte >> (4 * _HI)) & 0xF) + 16 * ((b[:, 16:48][:, _L32] >> k) & 1)
    return _f16(b, 0) * sc[:, k] * q - _f16(b, 2) * mn[:, k]


def deq_q6_k(b: Blocks) -> Values:
    # ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], d
    ql, qh, scales = b[:, :128], b[:, 128:192], b[:, 192:208].view(np.int8)
    l32 = _I % 32
    low = (ql[:, _HALF * 64 + 32 * (_QUARTER % 2) + l32] >> (4 * (_QUARTER // 2))) & 0xF
    high = (qh[:, _HALF * 32 + l32] >> (2 * _QUARTER)) & 3
    q = (low | (high << 4)).astype(np.int32) - 32
    sc = scales[:, _HALF * 8 + l32 // 16 + 2 * _QUARTER]
    return _f16(b, 208) * sc * q


def deq_tq2_0(b: Blocks) -> Values:
    # qs[64] (2-bit digits q, value q - 1), d; element 128j + 32l + m is bits 2l of qs[32j + m]
    q = (b[:, 32 * (_I // 128) + _I % 32] >> (2 * ((_I % 128) // 32))) & 3
    return (q.astype(np.float32) - 1) * _f16(b, 64)


def deq_tq1_0(b: Blocks) -> Values:
    # qs[48] and qh[4] hold base-3 digits as fixed-point fractions; digit n of byte x is
    # ((x * 3**n mod 256) * 3) >> 8. Elements: 5 x 32 from qs[0:32], 5 x 16 from qs[32:48],
    # 4 x 4 from qh.
    def digits(x: Blocks, n: int) -> npt.NDArray[Any]:
        return (((x.astype(np.int32) * 3**n) % 256) * 3) >> 8

    parts = [digits(b[:, 0:32], n) for n in range(5)]
    parts += [digits(b[:, 32:48], n) for n in range(5)]
    parts += [digits(b[:, 48:52], n) for n in range(4)]
    return (np.concatenate(parts, axis=1).astype(np.float32) - 1) * _f16(b, 52)


_IQ4_NL_VALUES = np.array(
    [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]
)


def deq_iq4_nl(b: Blocks) -> Values:
    return _f16(b, 0) * _IQ4_NL_VALUES[_nibbles(b[:, 2:18])]


def deq_iq4_xs(b: Blocks) -> Values:
    # d, scales_h (u16: 2 high bits per sub-block), scales_l[4] (nibbles), qs[128]
    ib = np.arange(8)
    scales_h = b[:, 2:4].copy().view("<u2").astype(np.int32)
    ls = ((b[:, 4 + ib // 2] >> (4 * (ib % 2))) & 0xF) | (((scales_h >> (2 * ib)) & 3) << 4)
    dl = _f16(b, 0) * (ls - 32)  # (n, 8)
    q = np.concatenate([_nibbles(b[:, 8 + 16 * i : 24 + 16 * i]) for i in range(8)], axis=1)
    return np.repeat(dl, 32, axis=1) * _IQ4_NL_VALUES[q]


_E2M1_DOUBLED = np.array([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12])


def deq_mxfp4(b: Blocks) -> Values:
    # e (E8M0 exponent), qs[16] (E2M1 nibbles); the table holds doubled values, so halve 2**(e-127)
    half_scale = np.ldexp(np.float32(1), b[:, :1].astype(np.int32) - 128).astype(np.float32)
    return _E2M1_DOUBLED[_nibbles(b[:, 1:17])] * half_scale


DEQUANTIZERS: dict[str, Callable[[Blocks], Values]] = {
    "BF16": deq_bf16,
    "Q4_0": deq_q4_0,
    "Q4_1": deq_q4_1,
    "Q5_0": deq_q5_0,
    "Q5_1": deq_q5_1,
    "Q8_0": deq_q8_0,
    "Q2_K": deq_q2_k,
    "Q3_K": deq_q3_k,
    "Q4_K": deq_q4_k,
    "Q5_K": deq_q5_k,
    "Q6_K": deq_q6_k,
    "TQ1_0": deq_tq1_0,
    "TQ2_0": deq_tq2_0,
    "IQ4_NL": deq_iq4_nl,
    "IQ4_XS": deq_iq4_xs,
    "MXFP4": deq_mxfp4,
}


def dequantize_rows(raw: Blocks, dtype: str, shape: tuple[int, ...]) -> Values:
    """Raw tensor bytes in file order -> float32 of `shape` (PyTorch order)."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[Q[dtype]]
    blocks = np.ascontiguousarray(raw).reshape(-1, type_size)
    out = DEQUANTIZERS[dtype](blocks)
    assert out.shape == (blocks.shape[0], block_size)
    return out.astype(np.float32).reshape(shape)


# ---------------------------------------------------------------------------------------------
# Tiny files
# ---------------------------------------------------------------------------------------------

# Byte offsets of the f16 scale fields in each block; random bytes there could be inf or NaN.
F16_FIELDS = {
    "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
    "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208],
    "TQ1_0": [52], "TQ2_0": [64], "IQ4_NL": [0], "IQ4_XS": [0],
    "IQ2_XXS": [0], "IQ2_XS": [0], "IQ2_S": [0], "IQ3_XXS": [0], "IQ3_S": [0], "IQ1_S": [0],
    "MXFP4": [], "NVFP4": [], "IQ1_M": [],
}  # fmt: skip
# Types the gguf package dequantizes but this file has no second implementation of.
GRID_TYPES = ["IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ1_S", "IQ1_M", "NVFP4"]
RAW_TYPES = [t for t in F16_FIELDS if t not in GRID_TYPES]
QUANTIZABLE = ["BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "TQ1_0", "TQ2_0", "MXFP4"]
ROWS = {"BF16": 3, "Q4_0": 5, "Q4_1": 7, "Q5_0": 3, "Q5_1": 5, "Q8_0": 7}


def random_blocks(dtype: str, rows: int, blocks_per_row: int, seed: int) -> Blocks:
    """Random block bytes of shape (rows, blocks_per_row * type_size), scales finite."""
    rng = np.random.default_rng(seed)
    _, type_size = gguf.GGML_QUANT_SIZES[Q[dtype]]
    b = rng.integers(0, 256, (rows * blocks_per_row, type_size), dtype=np.uint8)
    for at in F16_FIELDS[dtype]:
        scale = rng.uniform(0.01, 0.1, len(b)) * rng.choice([-1, 1], len(b))
        b[:, at : at + 2] = scale.astype("<f2").reshape(-1, 1).view(np.uint8)
    if dtype == "MXFP4":
        b[:, 0] = rng.integers(118, 132, len(b))  # E8M0 exponent: 2**-9 .. 2**4
    if dtype == "IQ1_M":  # the f16 scale is spread over the top nibbles of four u16 at 48..55
        fields = b[:, 48:56].copy().view("<u2") & 0x0FFF
        d = rng.uniform(0.01, 0.1, len(b)).astype("<f2").view("<u2").astype(np.uint16)
        nibbles = np.stack([(d >> s) & 0xF for s in (0, 4, 8, 12)], axis=1)
        b[:, 48:56] = (fields | (nibbles << 12)).astype("<u2").view(np.uint8)
    return b.reshape(rows, -1)


def write_gguf(
    path: Path, tensors: Mapping[str, tuple[npt.NDArray[Any], str | None]], **kv: object
) -> Path:
    """A GGUF file with `tensors` (name -> (array, raw GGML type or None)) and key-values."""
    writer = gguf.GGUFWriter(path, "llama")
    for key, value in kv.items():
        key = key.replace("__", ".")
        if isinstance(value, float):
            writer.add_float32(key, value)
        elif isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        elif isinstance(value, str):
            writer.add_string(key, value)
        else:
            writer.add_array(key, value)
    for name, (array, raw) in tensors.items():
        writer.add_tensor(name, array, raw_dtype=None if raw is None else Q[raw])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def raw_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Blocks]]:
    """One tensor per dequantizable block type, from random bytes: rows 3, 5, 7 in turn."""
    raws = {}
    for i, dtype in enumerate(RAW_TYPES + GRID_TYPES):
        block_size, _ = gguf.GGML_QUANT_SIZES[Q[dtype]]
        blocks_per_row = 3 if block_size == 256 else 5
        raws[dtype] = random_blocks(
            dtype, (3, 5, 7)[i % 3], blocks_per_row, seed=zlib.crc32(dtype.encode())
        )
    tensors = {f"raw.{t}": (r, t) for t, r in raws.items()}
    return write_gguf(tmp_path_factory.mktemp("gguf") / "raw.gguf", tensors), raws


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_header_facts(tmp_path: Path) -> None:
    x = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
    q = random_blocks("Q4_1", 7, 3, seed=1)  # 7 rows of 96
    path = write_gguf(
        tmp_path / "m.gguf",
        {"b.cube": (x, None), "a.q": (q, "Q4_1"), "c.half": (x[0].astype(np.float16), None)},
        llama__block_count=30,
        llama__attention__layer_norm_rms_epsilon=1e-5,
        tokenizer__ggml__add_bos_token=True,
        general__name="tiny",
        general__languages=["en", "fr"],
        short_ints=list(range(1024)),
        floats=[0.1, 2.5],
        nested=[[1, 2], [3, 4, 5]],
        tokenizer__ggml__tokens=[f"t{i}" for i in range(1025)],
    )
    with open_checkpoint(path) as ckpt:
        assert ckpt.format == "gguf"
        assert ckpt.names() == ["b.cube", "a.q", "c.half"]
        cube, quant, half = (ckpt.info(n) for n in ckpt.names())
        assert (cube.shape, cube.file_shape, cube.dtype, cube.nbytes) == (
            (2, 3, 5),
            (5, 3, 2),
            "F32",
            120,
        )
        assert (quant.shape, quant.file_shape, quant.dtype, quant.nbytes) == (
            (7, 96),
            (96, 7),
            "Q4_1",
            7 * 3 * 20,
        )
        assert (half.shape, half.file_shape, half.dtype, half.nbytes) == ((3, 5), (5, 3), "F16", 30)
        assert cube.file == path
        assert ckpt.metadata == {
            "GGUF.version": 3,
            "general.architecture": "llama",
            "llama.block_count": 30,
            "llama.attention.layer_norm_rms_epsilon": 1e-5,
            "tokenizer.ggml.add_bos_token": True,
            "general.name": "tiny",
            "general.languages": ["en", "fr"],
            "short_ints": list(range(1024)),
            "floats": [0.1, 2.5],  # float32 0.1 shown as its shortest decimal
            "nested": "<array of 2 arrays>",
            "tokenizer.ggml.tokens": "<array of 1025 str>",
        }
        assert type(ckpt.metadata["llama.block_count"]) is int
        np.testing.assert_array_equal(ckpt.read("b.cube"), x)
        np.testing.assert_array_equal(
            ckpt.read("c.half"), x[0].astype(np.float16).astype(np.float32)
        )


def test_plain_number_types_read_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays: dict[str, npt.NDArray[Any]] = {
        "f64": rng.standard_normal((5, 3)),
        "i8": rng.integers(-128, 128, (3, 7), dtype=np.int8),
        "i16": rng.integers(-30000, 30000, (7,), dtype=np.int16),
        "i32": rng.integers(-(2**24), 2**24, (3, 5), dtype=np.int32),
    }
    path = write_gguf(tmp_path / "ints.gguf", {k: (v, None) for k, v in arrays.items()})
    with open_checkpoint(path) as ckpt:
        assert [ckpt.info(k).dtype for k in arrays] == ["F64", "I8", "I16", "I32"]
        for name, want in arrays.items():
            got = ckpt.read(name)
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, want.astype(np.float32))


# Largest error of quantize -> dequantize as a fraction of the tensor's largest magnitude.
ROUNDTRIP_BOUND = {
    "BF16": 2**-8, "Q8_0": 1 / 254, "Q5_0": 1 / 16, "Q5_1": 1 / 31, "Q4_0": 1 / 8,
    "Q4_1": 1 / 15, "MXFP4": 1 / 3, "TQ1_0": 1, "TQ2_0": 1,
}  # fmt: skip


@pytest.mark.parametrize("dtype", QUANTIZABLE)
def test_quantized_floats_match_independent_dequantizer(tmp_path: Path, dtype: str) -> None:
    block_size, type_size = gguf.GGML_QUANT_SIZES[Q[dtype]]
    rows = ROWS.get(dtype, 3)
    x = (
        np.random.default_rng(rows)
        .standard_normal((rows, 3 * max(block_size, 32)))
        .astype(np.float32)
    )
    raw = gguf.quants.quantize(x, Q[dtype])
    path = write_gguf(tmp_path / "q.gguf", {"w": (raw, dtype)})
    with open_checkpoint(path) as ckpt:
        info = ckpt.info("w")
        got = ckpt.read("w")
    assert (info.shape, info.dtype, info.nbytes) == (
        x.shape,
        dtype,
        x.size // block_size * type_size,
    )
    np.testing.assert_array_equal(got, dequantize_rows(raw, dtype, x.shape))
    assert np.abs(got - x).max() <= ROUNDTRIP_BOUND[dtype] * np.abs(x).max()


@pytest.mark.parametrize("dtype", RAW_TYPES)
def test_block_bytes_match_independent_dequantizer(
    raw_file: tuple[Path, dict[str, Blocks]], dtype: str
) -> None:
    path, raws = raw_file
    block_size, type_size = gguf.GGML_QUANT_SIZES[Q[dtype]]
    rows = raws[dtype].shape[0]
    cols = raws[dtype].shape[1] // type_size * block_size
    with open_checkpoint(path) as ckpt:
        info = ckpt.info(f"raw.{dtype}")
        got = ckpt.read(f"raw.{dtype}")
    assert (info.shape, info.file_shape, info.dtype) == ((rows, cols), (cols, rows), dtype)
    assert info.nbytes == raws[dtype].nbytes
    want = dequantize_rows(raws[dtype], dtype, (rows, cols))
    # same products in a different order (d * sc * q): agree to float32 rounding
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())
    assert np.abs(want).max() > 0


@pytest.mark.parametrize("dtype", GRID_TYPES)
def test_grid_types_keep_shape_and_row_order(
    raw_file: tuple[Path, dict[str, Blocks]], dtype: str
) -> None:
    # No second implementation of the lattice-codebook types: check what the reader decides,
    # the shape and which bytes become which row, by reading the rows reversed from a second file.
    path, raws = raw_file
    raw = raws[dtype]
    flipped = write_gguf(path.parent / f"flipped.{dtype}.gguf", {"w": (raw[::-1].copy(), dtype)})
    with open_checkpoint(path) as ckpt, open_checkpoint(flipped) as other:
        got = ckpt.read(f"raw.{dtype}")
        assert got.shape == ckpt.info(f"raw.{dtype}").shape == (raw.shape[0], got.shape[1])
        np.testing.assert_array_equal(other.read("w"), got[::-1])
    assert np.isfinite(got).all()
    assert len(np.unique(got.round(6))) > 8  # not a constant or a failed read


def test_type_without_dequantizer_names_file_tensor_and_type(tmp_path: Path) -> None:
    _, type_size = gguf.GGML_QUANT_SIZES[Q.Q8_K]
    raw = np.zeros((3, type_size), dtype=np.uint8)
    path = write_gguf(tmp_path / "k.gguf", {"blk.0.w": (raw, "Q8_K")})
    with open_checkpoint(path) as ckpt:
        assert ckpt.info("blk.0.w").dtype == "Q8_K"
        with pytest.raises(StriateError) as err:
            ckpt.read("blk.0.w")
    assert str(err.value) == (
        f"{path}: tensor 'blk.0.w': cannot dequantize type Q8_K: the installed 'gguf' package has "
        "no dequantizer for it (try pip install -U gguf)"
    )


def test_broken_files_raise_striate_errors(tmp_path: Path) -> None:
    good = write_gguf(tmp_path / "good.gguf", {"w": (np.ones((64, 64), np.float32), None)})
    data = good.read_bytes()
    cases = {
        "truncated-data.gguf": (data[: len(data) - 100], "tensor 'w': its 16384 bytes at byte"),
        "truncated-header.gguf": (data[:40], "runs past the end of the 40-byte file"),
        "not-gguf.gguf": (b"GGML" + data[4:], "cannot open as gguf"),
    }
    for name, (content, message) in cases.items():
        bad = tmp_path / name
        bad.write_bytes(content)
        with pytest.raises(StriateError, match=message) as err:
            open_checkpoint(bad)
        assert str(bad) in str(err.value)


def test_missing_gguf_package_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_gguf(tmp_path / "m.gguf", {"w": (np.ones(32, np.float32), None)})
    monkeypatch.setitem(sys.modules, "gguf", None)  # import gguf -> ImportError
    with pytest.raises(MissingExtraError, match=r'pip install "striate\[gguf\]"') as err:
        open_checkpoint(path)
    assert str(path) in str(err.value)


def test_unknown_name_and_read_after_close(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", {"w": (np.ones(32, np.float32), None)})
    ckpt = open_checkpoint(path)
    with pytest.raises(StriateError, match="'nope': no such tensor"):
        ckpt.info("nope")
    ckpt.close()
    with pytest.raises(StriateError, match="'w': read after close"):
        ckpt.read("w")


# ---------------------------------------------------------------------------------------------
# A real model
# ---------------------------------------------------------------------------------------------


@pytest.mark.sample
def test_smollm2_q4_1(smollm2: Checkpoint) -> None:  # open_checkpoint("sample:smollm2")
    ckpt = smollm2
    assert len(ckpt) == 272
    assert ckpt.metadata["general.architecture"] == "llama"
    assert ckpt.metadata["llama.block_count"] == 30
    assert ckpt.metadata["llama.embedding_length"] == 576
    assert ckpt.metadata["tokenizer.ggml.tokens"] == "<array of 49152 str>"
    down = ckpt.info("blk.0.ffn_down.weight")
    assert (down.shape, down.file_shape, down.dtype) == ((576, 1536), (1536, 576), "Q4_1")
    embed = ckpt.info("token_embd.weight")
    assert (embed.shape, embed.dtype, embed.nbytes) == ((49152, 576), "Q8_0", 49152 * 18 * 34)
    # the raw bytes, located by the gguf library, dequantized by the code above
    file = gguf.GGUFReader(ckpt.path)
    raw = {t.name: np.asarray(t.data) for t in file.tensors}
    for name in ["token_embd.weight", "blk.0.ffn_down.weight", "blk.29.attn_v.weight"]:
        info = ckpt.info(name)
        want = dequantize_rows(raw[name], info.dtype, info.shape)
        np.testing.assert_array_equal(ckpt.read(name), want)
    np.testing.assert_array_equal(ckpt.read("output_norm.weight"), raw["output_norm.weight"])
