"""TF.js models wrapped as JS modules (nsfwjs): model literal + base64 shards, written in tmp_path.

The real nsfwjs@4.4.0 InceptionV3 is checked when STRIATE_NSFWJS names its folder:
`npm pack nsfwjs@4.4.0 --ignore-scripts`, unpack, and point it at
`package/dist/models/inception_v3`.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import striate
from striate import StriateError
from striate.checkpoint.tfjs_format import TFJSCheckpoint

RNG = np.random.default_rng(7)
DENSE = RNG.standard_normal((3, 5, 7)).astype(np.float32)
Q8 = np.array([[0, 1, 2], [127, 254, 255]], dtype=np.uint8)
Q8_ODD = RNG.integers(0, 256, 7).astype(np.uint8)
BIAS = RNG.standard_normal(4).astype(np.float32)
TAIL = RNG.integers(0, 256, 11).astype(np.uint8)
SCALE, MIN = 0.0123, -1.5
# stream: dense @0, q8 @420, q8_odd @426, bias @433, tail @449 (starts 0, 0, 0, 1, 2 mod 3);
# three shards cut mid-element in dense and inside q8_odd; 211 and 217 bytes end in "==",
# 32 bytes in "="
CUTS = (211, 428)


def _weights() -> list[dict[str, Any]]:
    quant = {"min": MIN, "scale": SCALE, "dtype": "uint8"}
    return [
        {"name": "dense/kernel", "shape": [3, 5, 7], "dtype": "float32"},
        {"name": "q8", "shape": [2, 3], "dtype": "float32", "quantization": quant},
        {"name": "q8_odd", "shape": [7], "dtype": "float32", "quantization": quant},
        {"name": "dense/bias", "shape": [4], "dtype": "float32"},
        {"name": "tail", "shape": [11], "dtype": "float32", "quantization": quant},
    ]


# browserify's minified standalone (UMD) bundle, byte for byte as nsfwjs ships its model files
_UMD = (
    '!function(a){if("object"==typeof exports&&"undefined"!=typeof module)module.exports=a();'
    'else if("function"==typeof define&&define.amd)define([],a);else{("undefined"!=typeof window'
    '?window:"undefined"!=typeof global?global:"undefined"!=typeof self?self:this).@NAME@=a()}}'
    '(function(){return function a(n,i,e){function t(o,s){if(!i[o]){if(!n[o]){var _="function"'
    "==typeof require&&require;if(!s&&_)return _(o,!0);if(l)return l(o,!0);var r=new Error("
    '"Cannot find module \'"+o+"\'");throw r.code="MODULE_NOT_FOUND",r}var c=i[o]={exports:{}};'
    "n[o][0].call(c.exports,function(a){return t(n[o][1][a]||a)},c,c.exports,a,n,i,e)}return "
    'i[o].exports}for(var l="function"==typeof require&&require,o=0;o<e.length;o++)t(e[o]);'
    "return t}({1:[function(a,n,i){n.exports=@LITERAL@},{}]},{},[1])(1)});"
)


def _umd(name: str, literal: str) -> str:
    return _UMD.replace("@NAME@", name).replace("@LITERAL@", literal)


def _js(value: Any) -> str:
    """`value` as a minifier writes it: bare keys, `!0`/`!1`, `.5` for 0.5."""
    if isinstance(value, bool):
        return "!0" if value else "!1"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return re.sub(r"^(-?)0\.", r"\1.", repr(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ",".join(_js(v) for v in value) + "]"
    items = (f"{k if k.isidentifier() else json.dumps(k)}:{_js(v)}" for k, v in value.items())
    return "{" + ",".join(items) + "}"


def _write(
    folder: Path, weights: list[dict[str, Any]], stream: bytes, cuts: tuple[int, ...]
) -> Path:
    """model.min.js + group1-shardKofN.min.js as nsfwjs has them; the manifest names no suffix."""
    bounds = [0, *cuts, len(stream)]
    n = len(bounds) - 1
    paths = [f"group1-shard{k + 1}of{n}" for k in range(n)]
    for k, path in enumerate(paths):
        payload = base64.b64encode(stream[bounds[k] : bounds[k + 1]]).decode()
        text = _umd(path.replace("-", "_"), json.dumps(payload))
        (folder / f"{path}.min.js").write_text(text)
    topology = {"class_name": "Model", "config": {"layers": [{"trainable": False}], "eps": 0.001}}
    model = {"modelTopology": topology, "weightsManifest": [{"paths": paths, "weights": weights}]}
    path = folder / "model.min.js"
    path.write_text(_umd("model", _js(model)))
    return path


def _stream() -> bytes:
    return b"".join(a.tobytes() for a in (DENSE, Q8, Q8_ODD, BIAS, TAIL))


def _dequantized(q: np.ndarray) -> np.ndarray:
    return (q * SCALE + MIN).astype(np.float32)  # as TF.js: JS doubles, stored float32


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return _write(tmp_path, _weights(), _stream(), CUTS)


def test_wrapper_is_as_nsfwjs_writes_it(model: Path) -> None:
    text = model.read_text()
    assert text.startswith('!function(a){if("object"==typeof exports')
    assert "n.exports={modelTopology:{class_name:" in text
    assert "trainable:!1" in text and "eps:.001" in text and "min:-1.5,scale:.0123" in text
    assert text.endswith("}]}]}},{}]},{},[1])(1)});")
    shard = (model.parent / "group1-shard1of3.min.js").read_text()
    assert shard.endswith('=="},{}]},{},[1])(1)});')


def test_round_trip(model: Path) -> None:
    with striate.open(model) as ckpt:
        assert isinstance(ckpt, TFJSCheckpoint)
        assert ckpt.format == "tfjs"
        assert ckpt.names() == ["dense/kernel", "q8", "q8_odd", "dense/bias", "tail"]
        np.testing.assert_array_equal(ckpt.read("dense/kernel"), DENSE)
        np.testing.assert_array_equal(ckpt.read("q8"), _dequantized(Q8))
        np.testing.assert_allclose(ckpt.read("q8")[1, 2], 255 * 0.0123 - 1.5, rtol=1e-7)
        np.testing.assert_array_equal(ckpt.read("q8_odd"), _dequantized(Q8_ODD))
        np.testing.assert_array_equal(ckpt.read("dense/bias"), BIAS)
        np.testing.assert_array_equal(ckpt.read("tail"), _dequantized(TAIL))
        folder = model.parent
        assert ckpt.files == [model, *(folder / f"group1-shard{k}of3.min.js" for k in (1, 2, 3))]


def test_info_is_as_stored(model: Path) -> None:
    ckpt = striate.open(model)
    got = {n: (i.shape, i.dtype, i.nbytes, i.file.name) for n in ckpt for i in [ckpt.info(n)]}
    assert got == {
        "dense/kernel": ((3, 5, 7), "float32", 420, "group1-shard1of3.min.js"),
        "q8": ((2, 3), "uint8", 6, "group1-shard2of3.min.js"),
        "q8_odd": ((7,), "uint8", 7, "group1-shard2of3.min.js"),
        "dense/bias": ((4,), "float32", 16, "group1-shard3of3.min.js"),
        "tail": ((11,), "uint8", 11, "group1-shard3of3.min.js"),
    }


def test_folder_opens_the_model_file(model: Path) -> None:
    ckpt = striate.open(model.parent)
    assert ckpt.path == model
    np.testing.assert_array_equal(ckpt.read("tail"), _dequantized(TAIL))


@pytest.mark.parametrize("cut", [1, 11, 12, 13, 24])
def test_every_base64_alignment(tmp_path: Path, cut: int) -> None:
    # tensors of 1..7 bytes whose first and last bytes fall at every offset mod 3
    lengths = [1, 1, 1, 2, 2, 2, 4, 5, 7]
    starts = np.cumsum([0, *lengths[:-1]])
    assert (
        {s % 3 for s in starts}
        == {(s + n) % 3 for s, n in zip(starts, lengths, strict=True)}
        == {0, 1, 2}
    )
    stream = np.arange(sum(lengths), dtype=np.uint8) * 7
    quant = {"min": 0, "scale": 1, "dtype": "uint8"}
    weights = [
        {"name": f"t{k}", "shape": [n], "dtype": "float32", "quantization": quant}
        for k, n in enumerate(lengths)
    ]
    ckpt = striate.open(_write(tmp_path, weights, stream.tobytes(), (cut,)))
    for k, (s, n) in enumerate(zip(starts, lengths, strict=True)):
        np.testing.assert_array_equal(ckpt.read(f"t{k}"), stream[s : s + n], err_msg=f"t{k}")


@pytest.mark.parametrize(
    "wrap",
    [
        "module.exports = {literal};",
        "export default {literal};\n",
        "e.exports=JSON.parse('{json}')",
        '/* header */ export default JSON.parse("{json_escaped}")',
    ],
)
def test_other_module_wrappers(tmp_path: Path, wrap: str) -> None:
    model = _write(tmp_path, _weights(), _stream(), CUTS)
    data = {"format": "layers-model", "weightsManifest": [{"paths": ["group1-shard1of3",
            "group1-shard2of3", "group1-shard3of3"], "weights": _weights()}]}  # fmt: skip
    text = json.dumps(data)
    model.write_text(
        wrap.replace("{literal}", _js(data))
        .replace("{json}", text)
        .replace("{json_escaped}", text.replace('"', '\\"'))
    )
    ckpt = striate.open(model)
    assert ckpt.metadata == {"format": "layers-model"}
    np.testing.assert_array_equal(ckpt.read("tail"), _dequantized(TAIL))


def test_shards_and_other_js_are_not_models(model: Path) -> None:
    shard = model.parent / "group1-shard1of3.min.js"
    other = model.parent / "app.js"
    other.write_text("const weightsManifest = load(); module.exports = {model: null};")
    for path in (shard, other):
        assert not TFJSCheckpoint.sniff(path, path.read_bytes()[:64])
        with pytest.raises(StriateError, match=r"not a checkpoint striate can read"):
            striate.open(path)
    assert TFJSCheckpoint.sniff(model, b"")


def test_js_without_a_model_literal(tmp_path: Path) -> None:
    path = tmp_path / "model.js"
    path.write_text('module.exports = build({weightsManifest: [{paths: ["a"], weights: []}]});')
    with pytest.raises(StriateError, match=r"model\.js: no TF\.js model in this JS module"):
        striate.open(path)


def test_missing_shard(model: Path) -> None:
    (model.parent / "group1-shard2of3.min.js").unlink()
    with pytest.raises(StriateError, match=r"model\.min\.js: tensor 'dense/kernel': missing "
                       r"shard file\(s\) group1-shard2of3 beside the manifest"):  # fmt: skip
        striate.open(model)


def test_shard_without_a_base64_string(model: Path) -> None:
    (model.parent / "group1-shard3of3.min.js").write_text(_umd("x", "[1,2,3]"))
    with pytest.raises(StriateError, match=r"shard3of3\.min\.js: no base64 shard in this JS"):
        striate.open(model)


def test_unterminated_shard(model: Path) -> None:
    shard = model.parent / "group1-shard3of3.min.js"
    shard.write_text(shard.read_text().split('"},{}]}')[0])
    with pytest.raises(StriateError, match=r"shard3of3\.min\.js: the base64 string never closes"):
        striate.open(model)


def test_payload_not_base64(model: Path) -> None:
    shard = model.parent / "group1-shard2of3.min.js"
    text = shard.read_text()
    # shard 2 begins at byte 211: q8 is its bytes 209..215, and characters 280..283 decode to
    # bytes 210..212, q8's alone
    at = text.index('n.exports="') + len('n.exports="') + 281
    shard.write_text(text[:at] + "!" + text[at + 1 :])
    ckpt = striate.open(model)
    np.testing.assert_array_equal(ckpt.read("dense/kernel"), DENSE)  # the others still read
    np.testing.assert_array_equal(ckpt.read("tail"), _dequantized(TAIL))
    with pytest.raises(StriateError, match=r"shard2of3\.min\.js: tensor 'q8': the shard's "
                       r"payload is not valid base64: .*\(the file is damaged"):  # fmt: skip
        ckpt.read("q8")


def test_stray_character_ends_payload(model: Path) -> None:
    shard = model.parent / "group1-shard3of3.min.js"
    shard.write_text(shard.read_text().replace('="}', '=A"}'))
    ckpt = striate.open(model)
    np.testing.assert_array_equal(ckpt.read("dense/bias"), BIAS)
    with pytest.raises(StriateError, match=r"tensor 'tail': .* not valid base64: a stray"):
        ckpt.read("tail")


def test_payload_shorter_than_manifest(model: Path) -> None:
    shard = model.parent / "group1-shard3of3.min.js"
    short = base64.b64encode(_stream()[CUTS[1] : -6]).decode()  # the last 6 bytes are gone
    shard.write_text(_umd("group1_shard3of3", json.dumps(short)))
    ckpt = striate.open(model)
    np.testing.assert_array_equal(ckpt.read("dense/bias"), BIAS)
    with pytest.raises(StriateError, match=r"shard3of3\.min\.js: tensor 'tail': bytes 449\.\.460 "
                       r"of the shard stream but the shard files hold 454"):  # fmt: skip
        ckpt.read("tail")


def test_real_nsfwjs_inception_v3() -> None:
    folder = os.environ.get("STRIATE_NSFWJS")
    if not folder:
        pytest.skip("set STRIATE_NSFWJS to nsfwjs@4.4.0's package/dist/models/inception_v3")
    model = Path(folder) / "model.min.js"
    ckpt = striate.open(model)
    assert ckpt.format == "tfjs" and len(ckpt) == 382
    n_params = sum(ckpt.info(n).numel for n in ckpt)
    assert n_params == pytest.approx(22.4e6, rel=0.01)
    assert {ckpt.info(n).dtype for n in ckpt} == {"uint8"}
    # second path: whole shards decoded by Python's base64, manifest specs read by a regex
    stream = b"".join(
        base64.b64decode(re.search(r'exports="([^"]*)"', shard.read_text())[1])  # type: ignore[index]
        for shard in sorted(Path(folder).glob("group1-shard*of6.min.js"))
    )
    spec = re.compile(
        r'\{name:"([^"]+)",shape:\[([\d,]*)\],dtype:"float32",'
        r'quantization:\{min:([-.\de]+),scale:([-.\de]+),dtype:"uint8"\}\}'
    )
    specs = spec.findall(model.read_text())
    assert [s[0] for s in specs] == ckpt.names()
    offset = 0
    for name, shape, minimum, scale in specs:
        dims = tuple(int(d) for d in shape.split(",") if d)
        n = int(np.prod(dims, dtype=np.int64))
        q = np.frombuffer(stream[offset : offset + n], dtype=np.uint8)
        expected = (q * float(scale) + float(minimum)).astype(np.float32).reshape(dims)
        np.testing.assert_array_equal(ckpt.read(name), expected, err_msg=name)
        offset += n
    assert offset == len(stream) == n_params
