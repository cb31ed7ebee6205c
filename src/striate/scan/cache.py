"""The per-tensor cache of a scan: it makes a second scan near-instant and a stopped one resumable.

Each finished tensor's result (its `tensors.parquet` row, manifest status, findings and singular
values) is written, atomically, to one small file `DIR/.striate-cache/<key>.pkl` as soon as the
tensor is done. The key is a BLAKE2b digest of everything the result depends on:

- the tensor's values as read (float32, storage coordinates) and its stored dtype, shape, bytes and
  file name, its position in the file (it names the image), its anatomy (role, layer, layout,
  residual axis) and the model's head counts;
- the resolved settings, the striate version and a digest of striate's source files
  (`store.code_digest`), so results of older code are never reused.

So a hit is valid by construction; a result whose image files were changed since (another scan
into the same directory drew over them) is not reused. Failed tensors are not cached, so a failure
is retried by the next scan. A layer's FFN results are cached the same way, keyed by the keys of
its tensors (`ffn-layer-<digest>`), and end-of-scan figures by the keys of every tensor
(`figures-<name>-<digest>`). Entries are pickles read back by an unpickler that accepts only
the classes a result holds, so a cache from elsewhere cannot run code.
"""

from __future__ import annotations

import io
import pickle
import shutil
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from striate import store
from striate._version import __version__
from striate.scan.tensor import TensorResult
from striate.scan.workers import FigureCall
from striate.store import code_digest, digest

CACHE_DIR = ".striate-cache"


def values_bytes(w: np.ndarray) -> memoryview:
    """The bytes of `w` in C order, without a copy when `w` is already contiguous."""
    return np.ascontiguousarray(w).reshape(-1).view(np.uint8).data


class TensorCache:
    """Results of one run directory's tensors, by key; `reuse=False` starts from an empty cache."""

    def __init__(self, run_dir: Path, settings: dict[str, Any], *, reuse: bool = True) -> None:
        self.run_dir = run_dir
        self.folder = run_dir / CACHE_DIR
        if not reuse:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.settings = digest(__version__, code_digest(), settings)
        self.used: list[str] = []  # keys this scan read or wrote, in order

    def key(self, *facts: object, values: np.ndarray) -> str:
        """The key of a result that depends on `facts` (reprs) and the tensor `values`."""
        return digest(self.settings, *facts, data=values_bytes(values))

    def derived_key(self, kind: str, *facts: object) -> str:
        """The key of a `kind` of result computed from other results (`facts` hold their keys);
        it starts with `kind-` (a tensor's key is the digest alone)."""
        return f"{kind}-{digest(self.settings, *facts)}"

    def get(self, key: str) -> TensorResult | None:
        """The cached entry of `key` whose images are still those it drew, or None."""
        path = self.folder / f"{key}.pkl"
        try:
            entry = _load(path.read_bytes())
        except FileNotFoundError:
            return None
        except Exception:  # a torn or foreign file is a miss; the new result replaces it
            return None
        if not isinstance(entry, TensorResult) or not self._images_intact(entry.images):
            return None
        self.used.append(key)
        return entry

    def put(self, key: str, result: TensorResult) -> None:
        """Record `result` under `key` (atomically); its images' digests are taken now. What
        serves its figures only (`banding`) is not kept."""
        result.images = {rel: self._file_digest(rel) for rel in result.images}
        with store.atomic_file(self.folder / f"{key}.pkl") as fh:
            pickle.dump(replace(result, banding=None), fh, protocol=pickle.HIGHEST_PROTOCOL)
        self.used.append(key)

    def figures(
        self,
        groups: Mapping[str, tuple[object, Callable[[], dict[str, FigureCall]]]],
        draw: Callable[[list[FigureCall]], None],
    ) -> dict[str, list[str]]:
        """Figures of a scan by group: {name: (facts, calls)} -> {name: paths relative to the run
        directory}. A group is drawn again only when its `facts` or the keys of this scan's
        tensors changed or one of its files did; `calls()` gives its figures ({path: call}) and
        `draw` draws every group's missing ones together (in parallel with several jobs)."""
        used = list(self.used)
        paths: dict[str, list[str]] = {}
        todo: dict[str, tuple[str, dict[str, FigureCall]]] = {}
        for name, (facts, make) in groups.items():
            key = self.derived_key(f"figures-{name}", facts, used)
            cached = self.get(key)
            if cached is not None:
                paths[name] = list(cached.images)
            else:
                todo[name] = key, make()
        draw([call for _, calls in todo.values() for call in calls.values()])
        for name, (key, calls) in todo.items():
            self.put(key, TensorResult({}, [], images=dict.fromkeys(calls, "")))
            paths[name] = list(calls)
        return {name: paths[name] for name in groups}

    def prune(self) -> None:
        """Delete the entries this scan did not use (another model's, other settings')."""
        keep = {f"{k}.pkl" for k in self.used}
        for path in self.folder.iterdir():
            if path.name not in keep:
                path.unlink(missing_ok=True)

    def _file_digest(self, rel: str) -> str:
        return digest(data=(self.run_dir / rel).read_bytes())

    def _images_intact(self, images: dict[str, str]) -> bool:
        try:
            return all(self._file_digest(rel) == d for rel, d in images.items())
        except OSError:
            return False


# the globals a pickled TensorResult refers to (numpy's module moved from numpy.core in numpy 2)
_ALLOWED = {
    ("striate.scan.tensor", "TensorResult"),
    ("striate.analyses.finding", "Finding"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    *((f"numpy.{core}.multiarray", name) for core in ("core", "_core")
      for name in ("scalar", "_reconstruct")),
    *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
}  # fmt: skip


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a cache entry")
        return super().find_class(module, name)


def _load(data: bytes) -> Any:
    return _Unpickler(io.BytesIO(data)).load()
