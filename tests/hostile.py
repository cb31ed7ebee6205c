"""Tiny valid checkpoints of every format, and a sandbox that opens files under limits.

`VALID` maps a case name to a function writing a small valid checkpoint (a file, or a folder of
files) into a given folder and returning what `striate.open` takes. `Sandbox` runs
`striate.open` + `read` of every tensor in a separate process whose address space is capped
(`RLIMIT_AS`, a few GiB over what the imported libraries take) and whose every answer must come
within a time limit; a hang, a crash or a giant allocation shows up as a failed outcome instead
of taking the test run down with it.
"""

from __future__ import annotations

import base64
import io
import json
import os
import select
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RNG = np.random.default_rng(12)
W = RNG.standard_normal((3, 5)).astype(np.float32)
B = RNG.standard_normal((5,)).astype(np.float16)
Q = RNG.standard_normal((2, 64)).astype(np.float32)  # two Q8_0 blocks per row

# --- valid files ------------------------------------------------------------------------------


def safetensors_file(folder: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    path = folder / "model.safetensors"
    save_file(
        {
            "w": torch.from_numpy(W),
            "b": torch.from_numpy(B),
            "c": torch.from_numpy(W[:2]).to(torch.bfloat16),
        },
        str(path),
        metadata={"format": "pt"},
    )
    return path


def safetensors_sharded(folder: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    shards = {
        "model-00001-of-00002.safetensors": {"a.weight": torch.from_numpy(W)},
        "model-00002-of-00002.safetensors": {"b.bias": torch.from_numpy(B)},
    }
    for shard, tensors in shards.items():
        save_file(tensors, str(folder / shard))
    weight_map = {name: shard for shard, tensors in shards.items() for name in tensors}
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")
    return folder


def _state_dict() -> dict[str, Any]:
    import torch

    return {"w": torch.from_numpy(W), "b": torch.from_numpy(B), "step": 3}


def torch_zip(folder: Path) -> Path:
    import torch

    path = folder / "model.pt"
    torch.save(_state_dict(), path)
    return path


def torch_legacy(folder: Path) -> Path:
    import torch

    path = folder / "model.bin"
    torch.save(_state_dict(), path, _use_new_zipfile_serialization=False)
    return path


def gguf_file(folder: Path) -> Path:
    import gguf

    path = folder / "model.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_string("general.name", "tiny")
    writer.add_array("tokenizer.ggml.tokens", ["a", "bb", "ccc"])
    writer.add_tensor("w", W)
    writer.add_tensor("b", B)
    q8 = gguf.quants.quantize(Q, gguf.GGMLQuantizationType.Q8_0)
    writer.add_tensor("q", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def onnx_file(folder: Path) -> Path:
    import onnx
    from onnx import helper, numpy_helper

    inits = [numpy_helper.from_array(W, "w"), numpy_helper.from_array(B, "b")]
    constant = helper.make_node(
        "Constant", [], ["k"], value=numpy_helper.from_array(W[0], "const_weight")
    )
    out = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [3, 5])
    node = helper.make_node("Identity", ["w"], ["y"])
    graph = helper.make_graph([constant, node], "g", [], [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = folder / "model.onnx"
    onnx.save_model(model, path)
    return path


def npy_file(folder: Path) -> Path:
    path = folder / "w.npy"
    np.save(path, W)
    return path


def npz_file(folder: Path) -> Path:
    path = folder / "model.npz"
    np.savez(path, w=W, b=B)
    return path


def _h5_bytes() -> bytes:
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.attrs["keras_version"] = "2.15.0"
        f.create_dataset("dense/kernel", data=W)
        f.create_dataset("dense/bias", data=B, compression="gzip")
        f["name"] = "not a tensor"
    return buffer.getvalue()


def hdf5_file(folder: Path) -> Path:
    path = folder / "model.h5"
    path.write_bytes(_h5_bytes())
    return path


def keras_file(folder: Path) -> Path:
    path = folder / "model.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.5.0"}))
        zf.writestr("config.json", json.dumps({"class_name": "Sequential"}))
        zf.writestr("model.weights.h5", _h5_bytes())
    return path


def _tfjs_manifest(shard: str) -> list[dict[str, Any]]:
    quant = {"dtype": "uint8", "scale": 0.5, "min": -1.0}
    weights = [
        {"name": "dense/kernel", "shape": [3, 5], "dtype": "float32"},
        {"name": "q", "shape": [4], "dtype": "float32", "quantization": quant},
    ]
    return [{"paths": [shard], "weights": weights}]


def _tfjs_stream() -> bytes:
    return W.tobytes() + bytes([0, 1, 2, 255])


def tfjs_file(folder: Path) -> Path:
    (folder / "group1-shard1of1.bin").write_bytes(_tfjs_stream())
    path = folder / "model.json"
    manifest = _tfjs_manifest("group1-shard1of1.bin")
    path.write_text(json.dumps({"format": "layers-model", "weightsManifest": manifest}))
    return path


def tfjs_module(folder: Path) -> Path:
    shard = base64.b64encode(_tfjs_stream()).decode()
    (folder / "group1-shard1of1.min.js").write_text(f'module.exports="{shard}";')
    # the manifest names the shard without the .min.js its JS wrapper adds
    model = {"format": "layers-model", "weightsManifest": _tfjs_manifest("group1-shard1of1")}
    path = folder / "model.min.js"
    path.write_text(f"module.exports={json.dumps(model)};")
    return path


VALID: dict[str, Callable[[Path], Path]] = {
    "safetensors": safetensors_file,
    "safetensors-sharded": safetensors_sharded,
    "torch-zip": torch_zip,
    "torch-legacy": torch_legacy,
    "gguf": gguf_file,
    "onnx": onnx_file,
    "npy": npy_file,
    "npz": npz_file,
    "hdf5": hdf5_file,
    "keras": keras_file,
    "tfjs": tfjs_file,
    "tfjs-module": tfjs_module,
}

# --- the sandbox ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What opening a target and reading all its tensors did.

    `kind`: "ok" (all read), "error" (a StriateError), "crash" (any other exception; `detail`
    holds the traceback), "memory" (a MemoryError anywhere, wrapped or not), "hang" (no answer
    within the time limit) or "died" (the process ended: a segfault or the kernel's OOM killer).
    """

    kind: str
    message: str = ""
    tensor: str | None = None  # the tensor being read when the error came, None while opening
    detail: str = ""
    tensors: int = 0


# what torch's C++ allocator says when the address-space cap refuses it
_ALLOCATION_FAILED = ("can't allocate memory", "bad_alloc", "MemoryError")


def _serve(reply_fd: int, memory: int) -> None:
    """The sandboxed process: one target path per stdin line, one JSON answer per line."""
    import resource
    import traceback

    import torch

    for module in ("safetensors", "gguf", "onnx", "h5py"):  # imported before the cap
        __import__(module)
    torch.set_num_threads(1)
    import striate
    from striate.errors import StriateError

    with open("/proc/self/status", encoding="ascii") as fh:
        vm = next(int(ln.split()[1]) * 1024 for ln in fh if ln.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + memory, vm + memory))
    out = os.fdopen(reply_fd, "w", buffering=1)

    def chain_has_memory_error(exc: BaseException | None) -> bool:
        seen = 0
        while exc is not None and seen < 20:
            if isinstance(exc, MemoryError):
                return True
            exc, seen = exc.__cause__ or exc.__context__, seen + 1
        return False

    for line in sys.stdin:
        target = line.rstrip("\n")
        tensor: str | None = None
        count = 0
        answer: dict[str, Any]
        try:
            with striate.open(target) as ckpt:
                for tensor in ckpt.names():
                    ckpt.info(tensor)
                    ckpt.read(tensor)
                    count += 1
            answer = {"kind": "ok", "tensors": count}
        except BaseException as exc:  # everything is an answer here, KeyboardInterrupt aside
            if isinstance(exc, KeyboardInterrupt):
                raise
            kind = "error" if isinstance(exc, StriateError) else "crash"
            if chain_has_memory_error(exc) or any(s in str(exc) for s in _ALLOCATION_FAILED):
                kind = "memory"
            answer = {
                "kind": kind,
                "message": str(exc),
                "tensor": tensor,
                "detail": traceback.format_exc(limit=-8),
            }
        out.write(json.dumps(answer) + "\n")


class Sandbox:
    """A long-lived worker process; `check(target)` answers within `timeout` seconds or kills it.

    `memory` is the address space the worker may take beyond what its imports took.
    """

    def __init__(self, memory: int = 2 << 30, timeout: float = 30.0) -> None:
        self.memory, self.timeout = memory, timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._replies: io.BufferedReader | None = None

    def _start(self) -> tuple[subprocess.Popen[bytes], io.BufferedReader]:
        read_fd, write_fd = os.pipe()
        code = f"import hostile; hostile._serve({write_fd}, {self.memory})"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
        proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, pass_fds=(write_fd,), env=env
        )
        os.close(write_fd)
        self._proc, self._replies = proc, os.fdopen(read_fd, "rb")
        return proc, self._replies

    def check(self, target: Path) -> Outcome:
        fresh = self._proc is None or self._replies is None or self._proc.poll() is not None
        if fresh:
            self.close()
            proc, replies = self._start()
        else:
            assert self._proc is not None and self._replies is not None
            proc, replies = self._proc, self._replies
        assert proc.stdin is not None
        proc.stdin.write(f"{target}\n".encode())
        proc.stdin.flush()
        # a fresh worker first imports torch, onnx, h5py, ...
        ready, _, _ = select.select([replies], [], [], self.timeout + (120 if fresh else 0))
        if not ready:
            self.close()
            return Outcome("hang", detail=f"no answer in {self.timeout} s")
        line = replies.readline()
        if not line:
            code = proc.wait()
            self.close()
            return Outcome("died", detail=f"worker exit code {code}")
        return Outcome(**json.loads(line))

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
        if self._replies is not None:
            self._replies.close()
        self._proc = self._replies = None


def assert_clean(outcome: Outcome, names: str | list[str], tensor: str | None = None) -> None:
    """The outcome is success or a one-line StriateError naming one of `names` (file names).

    When a tensor was being read as it failed, the message names that tensor too; so does it
    name `tensor`, the one at fault, when given.
    """
    assert outcome.kind in ("ok", "error"), f"{outcome.kind}: {outcome.message}\n{outcome.detail}"
    if outcome.kind == "ok":
        return
    message = outcome.message
    assert "\n" not in message and "\r" not in message, f"not one line: {message!r}"
    wanted = [names] if isinstance(names, str) else names
    assert any(n in message for n in wanted), f"names none of {wanted}: {message!r}"
    if outcome.tensor is not None:
        assert repr(outcome.tensor) in message, f"names not {outcome.tensor!r}: {message!r}"
    if tensor is not None:
        assert repr(tensor) in message, f"names not {tensor!r}: {message!r}"
    assert len(message) < 1000, f"{len(message)} characters: {message[:300]!r}..."
