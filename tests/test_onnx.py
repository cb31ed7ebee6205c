"""ONNX: initializer dtypes, external data read lazily, weights inside If/Loop subgraphs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the onnx extra is not installed")

import ml_dtypes  # installed with onnx
import onnx
from onnx import TensorProto, helper, numpy_helper

from striate import StriateError
from striate.checkpoint import open_checkpoint
from striate.samples import sample_path

RNG = np.random.default_rng(0)


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(
        graph, producer_name="striate-test", opset_imports=[helper.make_opsetid("", 17)]
    )
    onnx.checker.check_model(model)
    return model


def _identity_graph(initializers: list[onnx.TensorProto]) -> onnx.GraphProto:
    """A valid graph whose output is its first initializer, holding all of them."""
    first = initializers[0]
    out = helper.make_tensor_value_info("y", first.data_type, list(first.dims))
    node = helper.make_node("Identity", [first.name], ["y"])
    return helper.make_graph([node], "g", [], [out], initializer=initializers)


def test_initializer_dtypes_round_trip(tmp_path: Path) -> None:
    arrays = {
        "f32": RNG.standard_normal((3, 5)).astype(np.float32),
        "f16": RNG.standard_normal((7,)).astype(np.float16),
        "bf16": RNG.standard_normal((2, 3, 5)).astype(ml_dtypes.bfloat16),
        "i64": RNG.integers(-(2**24), 2**24, size=(11,)).astype(np.int64),
        "i8": RNG.integers(-128, 128, size=(5, 3)).astype(np.int8),
        "f64": RNG.standard_normal((1, 13)),
    }
    stored = {"f32": "FLOAT", "f16": "FLOAT16", "bf16": "BFLOAT16", "i64": "INT64", "i8": "INT8",
              "f64": "DOUBLE"}  # fmt: skip
    graph = _identity_graph([numpy_helper.from_array(a, name) for name, a in arrays.items()])
    onnx.save_model(_model(graph), tmp_path / "m.onnx")
    with open_checkpoint(tmp_path / "m.onnx") as ckpt:
        assert ckpt.format == "onnx"
        assert ckpt.names() == list(arrays)
        assert ckpt.metadata["producer_name"] == "striate-test"
        assert ckpt.metadata["opset"] == {"ai.onnx": 17}
        for name, a in arrays.items():
            info = ckpt.info(name)
            assert (info.shape, info.dtype, info.nbytes) == (a.shape, stored[name], a.nbytes)
            assert info.file == tmp_path / "m.onnx"
            # exact: all but the float64 values are float32 values; those round as numpy does
            np.testing.assert_array_equal(ckpt.read(name), a.astype(np.float32))


def test_bf16_every_bit_pattern_widens_exactly(tmp_path: Path) -> None:
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).reshape(256, 256)
    graph = _identity_graph([numpy_helper.from_array(bits.view(ml_dtypes.bfloat16), "w")])
    onnx.save_model(_model(graph), tmp_path / "m.onnx")
    got = open_checkpoint(tmp_path / "m.onnx").read("w")
    # bf16 is the top half of a float32
    np.testing.assert_array_equal(got.view(np.uint32), bits.astype(np.uint32) << 16)


def test_external_data_is_read_lazily_at_its_offset(tmp_path: Path) -> None:
    arrays = {
        f"layer{i}.weight": RNG.standard_normal((i + 2, 3)).astype(np.float32) for i in range(4)
    }
    graph = _identity_graph([numpy_helper.from_array(a, name) for name, a in arrays.items()])
    onnx.save_model(
        _model(graph), tmp_path / "m.onnx", save_as_external_data=True,
        all_tensors_to_one_file=True, location="m.weights", size_threshold=0,
    )  # fmt: skip
    assert (tmp_path / "m.onnx").stat().st_size < 1000  # the values really are outside
    ckpt = open_checkpoint(tmp_path / "m.onnx")
    assert ckpt.files == [tmp_path / "m.onnx", tmp_path / "m.weights"]
    for name, a in arrays.items():
        assert ckpt.info(name).file == tmp_path / "m.weights"
        assert ckpt.info(name).nbytes == a.nbytes
        np.testing.assert_array_equal(ckpt.read(name), a)
    # values come from the file at read time, not from a copy taken when opening
    (tmp_path / "m.weights").write_bytes(np.full(1000, 7.0, dtype=np.float32).tobytes())
    np.testing.assert_array_equal(ckpt.read("layer3.weight"), np.full((5, 3), 7.0))
    (tmp_path / "m.weights").unlink()
    with pytest.raises(StriateError, match=r"tensor 'layer0\.weight': cannot read tensor"):
        ckpt.read("layer0.weight")
    ckpt.close()
    assert ckpt.info("layer0.weight").shape == (2, 3)  # headers stay known
    with pytest.raises(StriateError, match=r"m\.onnx: tensor 'layer0\.weight': the checkpoint is"):
        ckpt.read("layer0.weight")


def _branch(
    name: str, tensors: dict[str, np.ndarray], constants: list[onnx.NodeProto]
) -> onnx.GraphProto:
    inits = [numpy_helper.from_array(a, n) for n, a in tensors.items()]
    first = inits[0]
    out = helper.make_tensor_value_info(f"{name}_y", first.data_type, list(first.dims))
    nodes = [*constants, helper.make_node("Identity", [first.name], [f"{name}_y"])]
    return helper.make_graph(nodes, name, [], [out], initializer=inits)


def _constant(output: str, array: np.ndarray, tensor_name: str = "") -> onnx.NodeProto:
    return helper.make_node(
        "Constant", [], [output], value=numpy_helper.from_array(array, tensor_name)
    )


def test_subgraph_weights_and_unique_names(tmp_path: Path) -> None:
    then_w, else_w, loop_w = (RNG.standard_normal((3, 5)).astype(np.float32) for _ in range(3))
    only_else = RNG.standard_normal((3, 5)).astype(np.float32)
    named_bias = np.array([0.25], dtype=np.float32)  # one element, but named: a weight
    unnamed_matrix = RNG.standard_normal((2, 7)).astype(np.float32)
    then_branch = _branch("then", {"w": then_w}, [
        _constant("bias_out", named_bias, "decoder.bias"),
        _constant("pads", np.array([1, 1], dtype=np.int64)),  # an index constant: left out
        _constant("basis", unnamed_matrix),
        _constant("eps", np.array(1e-5, dtype=np.float32)),  # an unnamed scalar: left out
    ])  # fmt: skip
    else_branch = _branch("else", {"w": else_w, "only_else": only_else}, [])
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["acc_in", "w"], ["acc_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("iter", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [3, 5]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [3, 5]),
        ],
        initializer=[numpy_helper.from_array(loop_w, "w")],
    )
    main_w = RNG.standard_normal((3, 5)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("If", ["c"], ["branch_y"], name="gate", then_branch=then_branch,
                             else_branch=else_branch),
            helper.make_node("Loop", ["n", "c", "main_w"], ["y"], body=body),  # unnamed node
        ],
        "main",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
         helper.make_tensor_value_info("n", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 5])],
        initializer=[numpy_helper.from_array(main_w, "main_w")],
    )  # fmt: skip
    onnx.save_model(_model(graph), tmp_path / "m.onnx")
    expected = {  # graph order; onnx keeps a node's attributes sorted, else before then
        "main_w": main_w,
        "gate.else_branch/w": else_w,
        "only_else": only_else,
        "gate.then_branch/w": then_w,
        "decoder.bias": named_bias,
        "basis": unnamed_matrix,
        "Loop_1.body/w": loop_w,
    }
    with open_checkpoint(tmp_path / "m.onnx") as ckpt:
        assert ckpt.names() == list(expected)
        assert ckpt.metadata["constants_left_out"] == 2
        for name, a in expected.items():
            assert ckpt.info(name).shape == a.shape
            np.testing.assert_array_equal(ckpt.read(name), a)


def test_garbage_and_truncated_files_name_the_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(StriateError, match=r"junk\.onnx: cannot open as onnx: DecodeError"):
        open_checkpoint(junk)

    graph = _identity_graph([numpy_helper.from_array(np.ones((64, 64), np.float32), "w")])
    whole = _model(graph).SerializeToString()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(
        StriateError, match=r"cut\.onnx: cannot open as onnx: .*truncated or corrupt"
    ):
        open_checkpoint(cut)

    no_graph = tmp_path / "empty.onnx"
    no_graph.write_bytes(b"\x08\x07")  # a valid ModelProto: ir_version=7 and nothing else
    with pytest.raises(StriateError) as err:
        open_checkpoint(no_graph)
    assert str(err.value) == (
        f"{no_graph}: not an ONNX model: the file parses but holds no graph "
        "(the file may be truncated or not ONNX at all)"
    )
    onnx.save_model(_model(graph), tmp_path / "m.onnx")
    with pytest.raises(StriateError, match=r"m\.onnx: tensor 'nope': no such tensor"):
        open_checkpoint(tmp_path / "m.onnx").info("nope")


def test_missing_onnx_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    graph = _identity_graph([numpy_helper.from_array(np.ones(3, np.float32), "w")])
    onnx.save_model(_model(graph), tmp_path / "m.onnx")
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(StriateError) as err:
        open_checkpoint(tmp_path / "m.onnx")
    assert str(err.value) == (
        f"{tmp_path / 'm.onnx'}: reading this needs the 'onnx' package, which is not installed "
        '(pip install "striate[onnx]")'
    )


# --- real models (striate sample models, fetched once into the cache) ----------------------


@pytest.mark.sample
def test_silero_vad_top_level_initializers() -> None:
    path = sample_path("silero-vad")
    with open_checkpoint(path) as ckpt:
        assert len(ckpt) == 15
        shapes = {n: ckpt.info(n).shape for n in ckpt.names()}
        assert shapes["model.stft.forward_basis_buffer"] == (258, 1, 256)
        assert shapes["model.encoder.0.reparam_conv.weight"] == (128, 129, 3)
        assert shapes["model.decoder.rnn.weight_ih"] == (512, 128)
        assert shapes["model.decoder.decoder.2.bias"] == (1,)
        assert sum(ckpt.info(n).numel for n in ckpt.names()) == 309_633
        assert ckpt.metadata["producer_name"] == "pytorch"


@pytest.mark.sample
def test_silero_vad_weights_inside_if_branches() -> None:
    nested = sample_path("silero-vad").parent / "silero_vad.onnx"
    flat = sample_path("silero-vad")
    with open_checkpoint(nested) as ckpt, open_checkpoint(flat) as ref:
        # 15 weights per branch, held in named Constant nodes: 16 kHz (then), 8 kHz (else)
        assert len(ckpt) == 30
        assert ckpt.info("If_0.else_branch/encoder.0.reparam_conv.weight").shape == (128, 65, 3)
        # the 16 kHz branch holds the very weights the flat 16 kHz export has
        for name in ref.names():
            branch_name = "If_0.then_branch/" + name.removeprefix("model.")
            np.testing.assert_array_equal(ckpt.read(branch_name), ref.read(name))
