"""Broken and hostile files, every reader: one-line StriateErrors, no hang, no huge allocation.

Each case starts from a tiny valid checkpoint (`hostile.VALID`) and breaks it the way downloads,
bugs and attackers do: cut short, header lengths and offsets that lie (past the end, overlapping,
negative, 2^60), unknown dtypes, shapes that do not match the bytes, corrupt GGUF metadata, zips
that are something else, empty files, folders full of other files, a shard index naming a shard
that is not there. Every case is opened and read in full inside `hostile.Sandbox`: a process
capped at 2 GiB of address space over its imports and 30 s per answer. The outcome must be
success or a StriateError whose message is one line naming the file (and the tensor, when one
was being read); anything else, MemoryError included, fails.
"""

from __future__ import annotations

import faulthandler
import json
import os
import shutil
import struct
import sys
import zipfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import hostile
import numpy as np
import pytest
from hostile import VALID, Sandbox, assert_clean

import striate


def _valid(kind: str, tmp_path: Path) -> Path:
    folder = tmp_path / kind
    folder.mkdir()
    return VALID[kind](folder)


def _patch(path: Path, at: int, fmt: str, *values: Any) -> Path:
    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, at, *values)
    path.write_bytes(bytes(data))
    return path


# --- cut short, every format, every file of the set ------------------------------------------


@pytest.mark.parametrize("kind", list(VALID))
def test_truncated_anywhere(kind: str, tmp_path: Path, sandbox: Sandbox) -> None:
    source = tmp_path / "source"
    source.mkdir()
    target = VALID[kind](source)
    for victim in sorted(p for p in source.iterdir() if p.is_file()):
        size = victim.stat().st_size
        for cut in sorted({1, 8, 16, size // 4, size // 2, size * 9 // 10, size - 1}):
            work = tmp_path / f"{victim.name}-{cut}"
            shutil.copytree(source, work)
            (work / victim.name).write_bytes(victim.read_bytes()[:cut])
            outcome = sandbox.check(work / target.relative_to(source))
            assert_clean(outcome, [str(work)])
            # the last byte is spare only in GGUF (alignment padding) and JS (a ";")
            if cut == size - 1 and victim.suffix not in (".gguf", ".js"):
                assert outcome.kind == "error", f"{victim.name} cut to {cut} bytes opened"
                assert victim.name in outcome.message


@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".bin", ".gguf", ".onnx", ".npy",
                                    ".npz", ".h5", ".keras", ".json", ".js"])  # fmt: skip
def test_empty_file(suffix: str, tmp_path: Path, sandbox: Sandbox) -> None:
    path = tmp_path / f"model{suffix}"
    path.touch()
    outcome = sandbox.check(path)
    assert outcome.kind == "error"
    assert_clean(outcome, str(path))


# --- headers that lie -------------------------------------------------------------------------

Build = Callable[[Path], Path]
# case name -> builder writing it into a folder: (what to open, the file the message must name)
CASES: dict[str, Callable[[Path], tuple[Path, Path]]] = {}
TENSOR_AT_FAULT: dict[str, str] = {}  # case -> the tensor its message must name


def _add(name: str, build: Build, names: Callable[[Path], Path] | None = None) -> None:
    """Register a case whose message names the built file (or `names(folder)`)."""

    def run(folder: Path) -> tuple[Path, Path]:
        target = build(folder)
        return target, (names(folder) if names else target)

    CASES[name] = run


def case(tensor: str | None = None, names: str | None = None) -> Callable[[Build], Build]:
    """Decorator form of `_add`; the case is named after the function."""

    def register(build: Build) -> Build:
        name = build.__name__.removeprefix("_")
        _add(name, build, (lambda folder: folder / names) if names else None)
        if tensor:
            TENSOR_AT_FAULT[name] = tensor
        return build

    return register


# safetensors: 8-byte header length, JSON header, data


def _safetensors(edit: Callable[[dict[str, Any]], None], folder: Path) -> Path:
    path = hostile.safetensors_file(folder)
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    edit(header)
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])
    return path


def _tensor_field(name: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda header: header[name].__setitem__(key, value)


for _n in (10**6, 2**60, 2**64 - 1, 0, 1):  # 2^64 - 1 is -1 to a signed reader
    _add(f"safetensors_header_length_{_n}", lambda f, n=_n: _patch(
        hostile.safetensors_file(f), 0, "<Q", n))  # fmt: skip
for _label, _key, _value in [
    ("offsets_past_end", "data_offsets", [0, 10**6]),
    ("offsets_2^60", "data_offsets", [0, 2**60]),
    ("offsets_negative", "data_offsets", [-4, 56]),
    ("offsets_backwards", "data_offsets", [60, 0]),
    ("unknown_dtype", "dtype", "F7"),
    ("shape_mismatch", "shape", [4, 5]),  # 80 bytes of shape, 60 of data
    ("shape_negative", "shape", [-3, -5]),
    ("shape_2^80", "shape", [2**40, 2**40]),
]:
    _add(f"safetensors_{_label}", partial(_safetensors, _tensor_field("w", _key, _value)))


@case()
def _safetensors_overlapping_offsets(folder: Path) -> Path:
    def overlap(header: dict[str, Any]) -> None:
        header["b"]["data_offsets"] = header["w"]["data_offsets"]

    return _safetensors(overlap, folder)


@case()
def _safetensors_header_not_an_object(folder: Path) -> Path:
    path = folder / "model.safetensors"
    path.write_bytes(struct.pack("<Q", 9) + b"[1, 2, 3]" + bytes(16))
    return path


_INDEX = "model.safetensors.index.json"


def _sharded(folder: Path) -> Path:
    hostile.safetensors_sharded(folder)
    return folder


@case(names=_INDEX)
def _index_names_missing_shard(folder: Path) -> Path:
    (_sharded(folder) / "model-00002-of-00002.safetensors").unlink()
    return folder


@case(names=_INDEX)
def _index_not_json(folder: Path) -> Path:
    (_sharded(folder) / _INDEX).write_text('{"weight_map": {"a.weight": ')
    return folder


@case(names=_INDEX, tensor="c.weight")
def _index_names_absent_tensor(folder: Path) -> Path:
    index = _sharded(folder) / _INDEX
    data = json.loads(index.read_text())
    data["weight_map"]["c.weight"] = "model-00001-of-00002.safetensors"
    index.write_text(json.dumps(data))
    return folder


# PyTorch


@case()
def _zip_that_is_not_torch(folder: Path) -> Path:
    path = folder / "model.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("README.txt", "hello")
        zf.writestr("weights/blob.bin", bytes(64))
    return path


@case()
def _torch_zip_garbage_pickle(folder: Path) -> Path:
    path = folder / "model.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02X\xff\xff\xff\x7fgarbage")
        zf.writestr("archive/version", "3\n")
    return path


def _legacy(old: bytes, new: bytes, folder: Path) -> Path:
    path = hostile.torch_legacy(folder)
    data = path.read_bytes()
    assert data.count(old) == 1
    path.write_bytes(data.replace(old, new))
    return path


# the storage of "w" is ('storage', FloatStorage, key, 'cpu', 15 elements, None), 'cpu' memo 6
_NUMEL = b"cpuq\x06K\x0f"
for _numel in (2**31 - 1, 2**60, -15):
    _lie = b"cpuq\x06\x8a\x08" + _numel.to_bytes(8, "little", signed=True)  # LONG1
    _add(f"torch_legacy_storage_numel_{_numel}", partial(_legacy, _NUMEL, _lie))
_add("torch_legacy_string_length_2^31", partial(
    _legacy, b"X\x03\x00\x00\x00cpu", b"X\xff\xff\xff\x7fcpu"))  # fmt: skip


# GGUF: offsets found with the gguf reader on the valid file


def _gguf(where: Callable[[Any], int], fmt: str, values: tuple[Any, ...], folder: Path) -> Path:
    import gguf

    path = hostile.gguf_file(folder)
    reader = gguf.GGUFReader(path)
    at = where(reader)
    del reader  # and its memory map
    return _patch(path, at, fmt, *values)


def _kv(key: str, skip: int) -> Callable[[Any], int]:
    """Offset `skip` bytes past the key of key-value `key` (at its type)."""
    return lambda reader: int(reader.fields[key].offset) + 8 + len(key) + skip


def _info(name: str, skip: int) -> Callable[[Any], int]:
    """Offset `skip` bytes past the name of tensor `name` in its tensor info (at n_dims)."""
    return lambda reader: next(
        int(t.field.offset) + 8 + len(name) + skip for t in reader.tensors if t.name == name
    )


_DIMS, _TYPE, _OFFSET = 0, 4 + 16, 4 + 16 + 4  # in the info of "w" (2 dims)
for _label, (_where, _fmt, _values, _tensor) in {
    "bad_magic": (lambda r: 0, "<4s", (b"GGUX",), None),
    "version_99": (lambda r: 4, "<I", (99,), None),
    "tensor_count_2^60": (lambda r: 8, "<Q", (2**60,), None),
    "tensor_count_plus_9": (lambda r: 8, "<Q", (12,), None),
    "kv_count_2^60": (lambda r: 16, "<Q", (2**60,), None),
    "key_length_2^62": (lambda r: 24, "<Q", (2**62,), None),
    "string_length_2^62": (_kv("general.name", 4), "<Q", (2**62,), None),
    "unknown_value_type": (_kv("general.name", 0), "<I", (77,), None),
    "array_count_2^60": (_kv("tokenizer.ggml.tokens", 8), "<Q", (2**60,), None),
    "array_of_arrays": (_kv("tokenizer.ggml.tokens", 4), "<I", (9,), None),
    "array_of_2^40_bytes": (_kv("tokenizer.ggml.tokens", 4), "<IQ", (0, 2**40), None),
    "dims_5": (_info("w", _DIMS), "<I", (5,), None),
    "dim_2^40": (_info("w", _DIMS + 4), "<Q", (2**40,), "w"),
    "unknown_dtype": (_info("w", _TYPE), "<I", (999,), "w"),
    "offset_2^60": (_info("w", _OFFSET), "<Q", (2**60,), "w"),
    "offset_negative": (_info("w", _OFFSET), "<q", (-32,), "w"),
    "offset_past_end": (_info("w", _OFFSET), "<Q", (10_000,), "w"),
}.items():
    _add(f"gguf_{_label}", partial(_gguf, _where, _fmt, _values))
    if _tensor:
        TENSOR_AT_FAULT[f"gguf_{_label}"] = _tensor


# ONNX: one initializer "w", its data inside the model or in weights.bin beside it


def _onnx(edit: Callable[[Any], None], external: bool, folder: Path) -> Path:
    import onnx
    from onnx import helper, numpy_helper

    tensor = numpy_helper.from_array(hostile.W, "w")
    if external:
        (folder / "weights.bin").write_bytes(hostile.W.tobytes())
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", "weights.bin"), ("offset", "0"), ("length", "60")):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
    edit(tensor)
    graph = helper.make_graph([], "g", [], [], initializer=[tensor])
    path = folder / "model.onnx"
    onnx.save_model(helper.make_model(graph), path)
    return path


def _dims(*dims: int) -> Callable[[Any], None]:
    def edit(tensor: Any) -> None:
        del tensor.dims[:]
        tensor.dims.extend(dims)

    return edit


def _external(key: str, value: str) -> Callable[[Any], None]:
    def edit(tensor: Any) -> None:
        next(e for e in tensor.external_data if e.key == key).value = value

    return edit


for _label, _edit, _ext in [
    ("dims_2^40", _dims(2**40), False),
    ("dims_mismatch", _dims(4, 5), False),
    ("dims_negative", _dims(-3, 5), False),
    ("external_offset_2^60", _external("offset", str(2**60)), True),
    ("external_length_2^60", _external("length", str(2**60)), True),
    ("external_offset_negative", _external("offset", "-8"), True),
    ("external_outside_the_folder", _external("location", "../outside.bin"), True),
    ("external_missing", _external("location", "gone.bin"), True),
]:
    # the message names the model or its data file: both lie in the case's folder
    _add(f"onnx_{_label}", partial(_onnx, _edit, _ext), names=lambda folder: folder)
    TENSOR_AT_FAULT[f"onnx_{_label}"] = "w"


# NumPy


def _npy_header(descr: str, shape: str) -> bytes:
    return f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n".encode()


def _npy(header: bytes, version: int, folder: Path) -> Path:
    path = folder / "w.npy"
    length = struct.pack("<H" if version == 1 else "<I", len(header))
    path.write_bytes(b"\x93NUMPY" + bytes([version, 0]) + length + header + hostile.W.tobytes())
    return path


for _label, _build in {
    "header_length_lie": lambda f: _patch(hostile.npy_file(f), 8, "<H", 0xFFFF),
    "header_length_2^32": lambda f: _patch(
        _npy(_npy_header("<f4", "(3, 5)"), 2, f), 8, "<I", 2**32 - 1
    ),
    "version_1_22": lambda f: _patch(hostile.npy_file(f), 7, "<B", 22),
    "shape_2^40": partial(_npy, _npy_header("<f4", "(1099511627776,)"), 1),
    "shape_negative": partial(_npy, _npy_header("<f4", "(-3, 5)"), 1),
    "shape_mismatch": partial(_npy, _npy_header("<f4", "(4, 5)"), 1),
    "unknown_dtype": partial(_npy, _npy_header("<f7", "(3, 5)"), 1),
}.items():
    _add(f"npy_{_label}", _build)


@case()
def _npz_member_shape_2g(folder: Path) -> Path:
    # numpy allocates a zip member's whole array before it reads a byte of it
    member = _npy(_npy_header("<f4", "(2147483648,)"), 1, folder)
    path = folder / "model.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(member, "w.npy")
    member.unlink()
    return path


@case()
def _npy_holds_a_pickle(folder: Path) -> Path:
    path = folder / "w.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return path


# HDF5 and Keras


@case(tensor="big")
def _hdf5_dataset_larger_than_file(folder: Path) -> Path:
    import h5py

    path = folder / "model.h5"
    with h5py.File(path, "w") as f:  # unwritten chunks read as the fill value: 64 GiB of zeros
        f.create_dataset("big", shape=(1 << 17, 1 << 17), dtype="f4", chunks=(256, 256))
    return path


@case()
def _hdf5_wrong_signature(folder: Path) -> Path:
    return _patch(hostile.hdf5_file(folder), 0, "<4s", b"\x89HDX")


@case()
def _keras_without_weights(folder: Path) -> Path:
    path = folder / "model.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", "{}")
    return path


# TF.js


def _tfjs(key: str, value: Any, folder: Path) -> Path:
    path = hostile.tfjs_file(folder)
    model = json.loads(path.read_text())
    model["weightsManifest"][0]["weights"][0][key] = value
    path.write_text(json.dumps(model))
    return path


for _label, _key, _value in [
    ("shape_past_shard", "shape", [30, 5]),
    ("shape_negative", "shape", [-3, 5]),
    ("shape_2^80", "shape", [2**40, 2**40]),
    ("unknown_dtype", "dtype", "complex64"),
]:
    _add(f"tfjs_{_label}", partial(_tfjs, _key, _value), names=lambda folder: folder)
    TENSOR_AT_FAULT[f"tfjs_{_label}"] = "dense/kernel"


@case(tensor="dense/kernel")
def _tfjs_missing_shard(folder: Path) -> Path:
    path = hostile.tfjs_file(folder)
    (folder / "group1-shard1of1.bin").unlink()
    return path


@case(tensor="dense/kernel", names="group1-shard1of1.min.js")
def _tfjs_module_bad_base64(folder: Path) -> Path:
    path = hostile.tfjs_module(folder)
    shard = folder / "group1-shard1of1.min.js"
    shard.write_text(shard.read_text().replace("A", "!", 3))
    return path


@pytest.mark.parametrize("name", sorted(CASES))
def test_lying_header(name: str, tmp_path: Path, sandbox: Sandbox) -> None:
    target, named = CASES[name](tmp_path)
    outcome = sandbox.check(target)
    assert_clean(outcome, str(named), TENSOR_AT_FAULT.get(name))
    assert outcome.kind == "error", f"{name} opened and read"


def test_unknown_onnx_dtype_is_skipped_with_its_reason(tmp_path: Path) -> None:
    path = _onnx(lambda t: setattr(t, "data_type", 999), False, tmp_path)
    with striate.open(path) as ckpt:
        assert ckpt.names() == []
        assert ckpt.skipped == {"w": "element type 999, unknown to the installed onnx package"}


# libhdf5 itself loops for ever on this file (a variable-length string attribute whose global-heap
# object size is corrupt: byte 928 of hostile._h5_bytes() from 6 to 88); it can only be killed.
HEAP_SIZE_AT = 928


def _h5_that_hangs_libhdf5() -> bytes:
    data = bytearray(hostile._h5_bytes())
    assert data[HEAP_SIZE_AT] == 6, "the valid HDF5 file changed layout; find the heap size again"
    data[HEAP_SIZE_AT] = 88
    return bytes(data)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_a_libhdf5_hang_is_cut_off(
    suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from striate.checkpoint import hdf5_format

    monkeypatch.setattr(hdf5_format, "INDEX_SECONDS", 1.5)
    path = tmp_path / f"model{suffix}"
    if suffix == ".h5":
        path.write_bytes(_h5_that_hangs_libhdf5())
    else:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("model.weights.h5", _h5_that_hangs_libhdf5())
    with pytest.raises(striate.StriateError) as caught:
        striate.open(path)
    assert str(caught.value).startswith(f"{path}: libhdf5 did not finish reading its metadata")
    assert "\n" not in str(caught.value)
    with striate.open(hostile.hdf5_file(tmp_path)) as ckpt:  # the next file reads normally
        assert ckpt.names() == ["dense/bias", "dense/kernel"]


def test_a_libhdf5_crash_is_an_error_not_a_dead_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from striate.checkpoint import hdf5_format

    parent = os.getpid()

    def crash(self: Any) -> None:
        assert os.getpid() != parent, "the metadata walk ran in this process first"
        faulthandler.disable()  # pytest's handler would print the child's stack
        os.kill(os.getpid(), 11)

    monkeypatch.setattr(hdf5_format.HDF5Checkpoint, "_index", crash)
    path = hostile.hdf5_file(tmp_path)
    with pytest.raises(striate.StriateError, match=r"libhdf5 crashed \(SIGSEGV\)"):
        striate.open(path)


# --- folders ----------------------------------------------------------------------------------


def _junk(folder: Path) -> None:
    rng = np.random.default_rng(3)
    (folder / "README.md").write_text("# a model\n")
    (folder / "preview.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(512))
    (folder / "junk.bin").write_bytes(rng.bytes(4096))
    (folder / "pickled.bin").write_bytes(b"\x80\x04\x8d" + (2**60).to_bytes(8, "little"))
    with zipfile.ZipFile(folder / "optimizer.pt", "w") as zf:
        zf.writestr("state/blob", rng.bytes(256))
    (folder / "old.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + rng.bytes(256))
    (folder / "weird.h5").write_bytes(rng.bytes(300))
    (folder / "tokenizer.model").write_bytes(rng.bytes(100))


def test_folder_mixing_a_model_with_other_files(tmp_path: Path, sandbox: Sandbox) -> None:
    hostile.safetensors_file(tmp_path)
    _junk(tmp_path)
    outcome = sandbox.check(tmp_path)
    assert (outcome.kind, outcome.tensors) == ("ok", 3), outcome.message


def test_folder_of_junk_alone(tmp_path: Path, sandbox: Sandbox) -> None:
    _junk(tmp_path)
    outcome = sandbox.check(tmp_path)
    assert outcome.kind == "error" and "no checkpoint file in this folder" in outcome.message
    assert_clean(outcome, str(tmp_path))


# --- the command line -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["safetensors_offsets_past_end", "gguf_string_length_2^62", "index_names_missing_shard",
     "torch_legacy_storage_numel_2147483647", "npy_shape_2^40", "zip_that_is_not_torch",
     "hdf5_wrong_signature", "keras_without_weights", "tfjs_shape_negative"],
)  # fmt: skip  # `info` reads headers only: cases that fail on opening
def test_cli_prints_one_line_and_exits_2(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from striate import cli

    target, named = CASES[name](tmp_path)
    monkeypatch.setattr(sys, "argv", ["striate", "info", str(target)])
    monkeypatch.setitem(cli._state, "debug", False)
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("striate: error: ") and str(named) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
