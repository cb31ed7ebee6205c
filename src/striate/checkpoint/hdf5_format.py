"""HDF5 files (`.h5`, `.hdf5`): every numeric dataset, Keras 2 and Keras 3 weight files included.

Names are HDF5 paths without the leading slash (`model_weights/conv2d_5/conv2d_5/kernel:0`,
`block5/layers/conv2d_2/vars/0`). Shapes are as stored, never transposed: a Keras conv kernel is
`(kh, kw, in, out)` and a Dense kernel `(in, out)`; the anatomy records those layouts.
`dtype` is the numpy dtype name (`"float32"`).

Order: the model's order where the file records it, else natural name order (`conv2d_2` before
`conv2d_10`). Keras 2 records it in the attributes `layer_names` (children of a group) and
`weight_names` (the weights of one layer); groups created with creation order tracked keep it.

Datasets that are not real numbers (strings, compound records, complex values, empty
dataspaces) and links that are not followed are listed in `skipped` with the reason. The file
stays open until `close()`; values are read one dataset at a time.

libhdf5 itself can loop for ever, or crash, inside one call on a corrupt file (a variable-length
string attribute whose global-heap size lies makes libhdf5 2.0.0 spin). So on POSIX the
metadata walk runs first in a forked child under a time limit (`INDEX_SECONDS`); only when it
finishes does this process walk the same metadata itself.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from striate.checkpoint.base import Checkpoint, TensorInfo
from striate.errors import StriateError, require

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# A dataset is read only when the file could hold it: deflate packs at most ~1032:1, and a
# dataset whose chunks were never written reads as its fill value, allowed up to 1 GiB.
_MAX_EXPANSION = 1100
_FILL_ALLOWANCE = 1 << 30
# how long the forked child may take to walk the metadata before the file is called corrupt
INDEX_SECONDS = 60.0


class HDF5Checkpoint(Checkpoint):
    """One HDF5 file. `metadata` holds the root attributes (Keras: `keras_version`,
    `backend`, and `model_config` / `training_config` parsed from JSON).

        >>> with striate.open("cnn_model.h5") as ckpt:                   # doctest: +SKIP
        ...     ckpt.info("model_weights/conv2d_5/conv2d_5/kernel:0").shape
        (3, 3, 64, 64)
    """

    format = "hdf5"
    suffixes: tuple[str, ...] = (".h5", ".hdf5")

    @classmethod
    def sniff(cls, path: Path, head: bytes) -> bool:
        return head.startswith(HDF5_SIGNATURE)

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._h5py: Any = require("h5py", "hdf5", path=path)
        self._h5: Any = self._open_h5()
        self._datasets: dict[str, Any] = {}
        # self._infos is filled now, so info() works after close()
        try:
            self._index_in_child()
            self._index()
        except BaseException:
            self.close()
            raise

    def _open_h5(self) -> Any:
        """The open `h5py.File`; subclasses reading HDF5 held elsewhere override this."""
        return self._h5py.File(self.path, "r")

    def _index(self) -> None:
        for name, obj in _walk(self._h5py, self._h5["/"], "", set()):
            reason = _not_a_tensor(self._h5py, obj)
            if reason:
                self.skipped[name] = reason
                continue
            self._datasets[name] = obj
            self._infos[name] = TensorInfo(
                name=name,
                shape=tuple(int(d) for d in obj.shape),
                dtype=obj.dtype.name,
                nbytes=int(obj.id.get_storage_size()),  # as stored, after any compression
                file=self.path,
            )
        self.metadata.update(_root_metadata(self._h5))

    def _index_in_child(self) -> None:
        """Walk the metadata in a forked child first: a libhdf5 hang or crash on a corrupt
        file kills the child, not this process. Errors the walk raises normally are left to
        `_index` here, which raises them with their own message."""
        if not hasattr(os, "fork"):  # Windows: no guard
            return
        # holding h5py's global lock across fork() means no other thread is inside libhdf5
        lock = getattr(getattr(self._h5py, "_objects", None), "phil", contextlib.nullcontext())
        with lock:
            pid = os.fork()
            if pid == 0:  # the child: walk, then leave without running any Python cleanup
                code = 1
                try:
                    self._index()
                    code = 0
                finally:
                    os._exit(code)
        deadline = time.monotonic() + INDEX_SECONDS
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise StriateError(
                    f"libhdf5 did not finish reading its metadata in {INDEX_SECONDS:g} s",
                    path=self.path,
                    hint="the file is corrupt: libhdf5 loops on some broken attributes",
                )
            time.sleep(0.002)
        if os.WIFSIGNALED(status):
            name = signal.Signals(os.WTERMSIG(status)).name
            raise StriateError(
                f"libhdf5 crashed ({name}) reading its metadata",
                path=self.path,
                hint="the file is corrupt",
            )

    def _read(self, name: str) -> npt.NDArray[Any]:
        if self._h5 is None:
            raise StriateError("the checkpoint is closed", path=self.path, tensor=name)
        dataset = self._datasets[name]
        nbytes = math.prod(dataset.shape) * dataset.dtype.itemsize
        size = self.path.stat().st_size
        if nbytes > _MAX_EXPANSION * size + _FILL_ALLOWANCE:
            # a header can declare any shape; unwritten chunks read as the fill value
            raise StriateError(
                f"its header declares {nbytes} bytes ({dataset.shape} of {dataset.dtype}), "
                f"more than this {size}-byte file can hold even compressed",
                path=self.path,
                tensor=name,
                hint="the file is corrupt; striate does not allocate that much",
            )
        return np.asarray(dataset[()])

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None


def _walk(h5py: Any, group: Any, prefix: str, seen: set[str]) -> Iterator[tuple[str, Any]]:
    """`(name, object)` for every dataset under `group`, and for every link not followed.

    `seen` holds the names already listed: a Keras 2 layer group lists its weights (which live
    one group further down) before that group is walked.
    """
    for relative in _strings(group.attrs.get("weight_names")):
        name = prefix + relative
        if name not in seen and isinstance(group.get(relative), h5py.Dataset):
            seen.add(name)
            yield name, group[relative]
    for key in _child_order(h5py, group):
        name = prefix + key
        if name in seen:
            continue
        link = group.get(key, getlink=True)
        if not isinstance(link, h5py.HardLink):
            yield name, link  # soft and external links: recorded as skipped, never followed
        elif isinstance(group[key], h5py.Group):
            yield from _walk(h5py, group[key], name + "/", seen)
        else:
            yield name, group[key]


def _child_order(h5py: Any, group: Any) -> list[str]:
    keys = list(group.keys())  # creation order when the group tracks it, else by name
    if not group.id.get_create_plist().get_link_creation_order() & h5py.h5p.CRT_ORDER_TRACKED:
        keys.sort(key=_natural)
    listed = [k for k in _strings(group.attrs.get("layer_names")) if k in group]
    return listed + [k for k in keys if k not in set(listed)]


def _not_a_tensor(h5py: Any, obj: Any) -> str | None:
    """Why `obj` is not read as a tensor, or None when it is a numeric dataset."""
    if isinstance(obj, h5py.SoftLink):
        return f"soft link to {obj.path} (listed under its own name)"
    if isinstance(obj, h5py.ExternalLink):
        return f"external link to {obj.filename}:{obj.path} (not followed)"
    if not isinstance(obj, h5py.Dataset):
        return f"not a dataset ({type(obj).__name__})"
    if obj.shape is None:
        return "empty dataset (no dataspace)"
    kind = obj.dtype.kind
    if h5py.check_string_dtype(obj.dtype) is not None or kind in "SUO":
        return f"strings, not numbers (dtype {obj.dtype})"
    if kind == "c":
        return f"complex values (dtype {obj.dtype}); striate reads real tensors"
    if kind not in "biuf":
        return f"not numeric (dtype {obj.dtype})"
    return None


def _root_metadata(h5: Any) -> dict[str, Any]:
    """Root attributes as plain Python values; `*_config` JSON strings parsed.

    Keras 2 also writes `keras_version` and `backend` on the `model_weights` group; they are
    taken from there when the root lacks them.
    """
    metadata = {key: _plain(h5.attrs, key) for key in h5.attrs}
    weights = h5.get("model_weights")
    for key in ("keras_version", "backend"):
        if key not in metadata and weights is not None and key in weights.attrs:
            metadata[key] = _plain(weights.attrs, key)
    for key, value in metadata.items():
        if key.endswith("_config") and isinstance(value, str):
            with contextlib.suppress(ValueError):  # else kept as the string it is
                metadata[key] = json.loads(value)
    return metadata


def _plain(attrs: Any, key: str) -> Any:
    try:
        value = attrs[key]
    except (OSError, TypeError) as exc:  # attribute types h5py cannot convert
        return f"<unreadable attribute: {exc}>"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value.tolist()]
    return value.item() if isinstance(value, np.generic) else value


def _strings(value: Any) -> list[str]:
    """An attribute holding names (`layer_names`, `weight_names`) as a list of str."""
    if value is None:
        return []
    items = value.tolist() if isinstance(value, np.ndarray) else [value]
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in items]


def _natural(name: str) -> tuple[Any, ...]:
    """Sort key that puts `conv2d_2` before `conv2d_10`."""
    return tuple(int(p) if i % 2 else p for i, p in enumerate(re.split(r"(\d+)", name)))
