"""FFN neuron geometry inside a scan: gather each layer's FFN tensors as they stream past.

A layer's in / gate / out matrices and input bias arrive one at a time; `FFNCollector` keeps
them until the layer is complete, computes its neurons and summary, and lets them go, so memory
stays at about one layer's FFN. `ffn_tables` and `ffn_figure_calls` finish the job. Given a scan's
cache and each tensor's cache key, a layer's results are cached too, keyed by its tensors' keys.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from striate import store
from striate.analyses.ffn import FFNConfig, ffn_layer_summary, ffn_neurons, neuron_vectors
from striate.analyses.ffn_similarity import Similarity, column_similarity
from striate.anatomy import Anatomy, FFNTriple, anatomy_of
from striate.checkpoint import open_checkpoint
from striate.errors import StriateError
from striate.render.ffn_figures import draw_depth_curves, draw_layer_figure, draw_similarity
from striate.report.pass_html import write_pass_report
from striate.scan.cache import TensorCache
from striate.scan.tensor import TensorResult, read_each
from striate.scan.workers import FigureCall
from striate.store import Manifest


@dataclass
class FFNCollector:
    """Feed it every tensor read (`offer`); it returns nothing, and fills `neurons` per layer."""

    anatomy: Anatomy
    config: FFNConfig = field(default_factory=FFNConfig)
    layers: set[int] | None = None  # only these layers (None: all)
    similarity_layers: set[int] = field(default_factory=set)  # column similarity for these
    neurons: list[pd.DataFrame] = field(default_factory=list)
    similarity: dict[tuple[int, str], Similarity] = field(default_factory=dict)
    skipped: dict[int, str] = field(default_factory=dict)
    cache: TensorCache | None = None  # a scan's cache: layers whose tensors are unchanged reused
    _wanted: dict[str, FFNTriple] = field(default_factory=dict)
    _pending: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)
    _keys: dict[str, str] = field(default_factory=dict)  # tensor name -> its cache key

    def __post_init__(self) -> None:
        for triple in self.anatomy.ffn:
            if self.layers is not None and triple.layer not in self.layers:
                continue
            for name in _members(triple):
                self._wanted[name] = triple

    @property
    def names(self) -> set[str]:
        """Tensor names the collector needs."""
        return set(self._wanted)

    def offer(self, name: str, w: np.ndarray, key: str = "") -> None:
        """`w` is the tensor `name` as read; `key` its cache key (with a cache)."""
        triple = self._wanted.get(name)
        if triple is None:
            return
        got = self._pending.setdefault(triple.layer, {})
        got[name] = w
        self._keys[name] = key
        if all(m in got for m in _members(triple)):
            del self._pending[triple.layer]
            try:
                self._complete(triple, got)
            except Exception as exc:  # a malformed layer is recorded; the scan goes on
                self.skipped[triple.layer] = f"{type(exc).__name__}: {exc}"

    def _complete(self, triple: FFNTriple, got: dict[str, np.ndarray]) -> None:
        keys = [self._keys.pop(name) for name in _members(triple)]
        similar = triple.layer in self.similarity_layers
        key = None
        if self.cache is not None and all(keys):
            key = self.cache.derived_key("ffn-layer", triple.layer, similar, keys)
            hit = self.cache.get(key)
            if hit is not None:
                self._keep(triple.layer, hit.row)
                return
        computed = self._compute(triple, got, similar)
        if key is not None and self.cache is not None:
            self.cache.put(key, TensorResult(computed, []))
        self._keep(triple.layer, computed)

    def _keep(self, layer: int, result: dict[str, Any]) -> None:
        self.neurons.append(pd.DataFrame(result["neurons"]))
        for name, fields in result["similarity"].items():
            self.similarity[layer, name] = Similarity(**fields)

    def _compute(
        self, triple: FFNTriple, got: dict[str, np.ndarray], similar: bool
    ) -> dict[str, Any]:
        """The layer's neurons (columns as arrays) and similarities (fields), plain data."""
        vectors = {
            key: _vectors(self.anatomy, name, got)
            for key, name in (("in", triple.ffn_in), ("out", triple.ffn_out),
                              ("gate", triple.ffn_gate)) if name is not None
        }  # fmt: skip
        bias = got[triple.in_bias].reshape(-1) if triple.in_bias else None
        neurons = ffn_neurons(
            triple.layer, vectors["in"], vectors["out"], bias, w_gate=vectors.get("gate")
        )
        similarity = {}
        if similar:
            for name, v in vectors.items():
                similarity[name] = asdict(column_similarity(v, self.config))
        return {"neurons": {c: neurons[c].to_numpy() for c in neurons}, "similarity": similarity}

    def finish(self) -> None:
        """Layers still waiting for a tensor (one failed to read) are recorded as skipped."""
        for layer, got in self._pending.items():
            missing = sorted(set(_members(self._triple(layer))) - set(got))
            self.skipped[layer] = f"missing {', '.join(missing)}"
        self._pending.clear()

    def _triple(self, layer: int) -> FFNTriple:
        return next(t for t in self.anatomy.ffn if t.layer == layer)


def _members(triple: FFNTriple) -> list[str]:
    names = [triple.ffn_in, triple.ffn_out, triple.ffn_gate, triple.in_bias]
    return [n for n in names if n is not None]


def _vectors(anat: Anatomy, name: str, got: dict[str, np.ndarray]) -> np.ndarray:
    axis = anat[name].residual_axis
    if axis is None:
        raise ValueError(f"the residual axis of {name} is unknown")
    return neuron_vectors(got[name], axis)


def ffn_tables(collector: FFNCollector) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(`ffn` one row per neuron, `ffn_layers` one row per layer), both sorted by layer.

    Layers with a column-similarity matrix add `in_similarity_mean`, `in_top_share`,
    `out_similarity_mean`, `out_top_share` (null for the other layers).
    """
    if not collector.neurons:
        return pd.DataFrame(), pd.DataFrame()
    neurons = pd.concat(collector.neurons, ignore_index=True)
    neurons = neurons.sort_values(["layer", "neuron"], ignore_index=True)
    rows = []
    for layer, group in neurons.groupby("layer", sort=True):
        row: dict[str, float | int | None] = {
            "layer": int(str(layer)),
            **ffn_layer_summary(group, collector.config),
        }
        for key in ("in", "out"):
            sim = collector.similarity.get((int(str(layer)), key))
            row[f"{key}_similarity_mean"] = None if sim is None else sim.mean_offdiag
            row[f"{key}_top_share"] = None if sim is None else sim.top_share
        rows.append(row)
    return neurons, pd.DataFrame(rows)


def default_layers(layers: list[int]) -> list[int]:
    """First, middle and last of the layers, the default figures."""
    if not layers:
        return []
    return sorted({layers[0], layers[len(layers) // 2], layers[-1]})


def ffn_figure_calls(
    out_dir: Path,
    collector: FFNCollector,
    neurons: pd.DataFrame,
    layer_table: pd.DataFrame,
    layers: list[int],
    *,
    model: str,
) -> dict[str, FigureCall]:
    """Per-layer figures and similarity matrices of `layers`, and the depth curves, not drawn
    yet: {path relative to out_dir: call}. Each call holds only its own layer's rows, so it can
    be sent to another process."""
    if neurons.empty:
        return {}
    calls: dict[str, FigureCall] = {}
    present = set(layer_table["layer"])
    for layer in [x for x in layers if x in present]:
        rows = neurons[neurons["layer"] == layer]
        rel = f"images/ffn/layer_{layer:03d}.png"
        calls[rel] = (draw_layer_figure, (rows, layer, out_dir / rel),
                      {"title": model, "config": collector.config})  # fmt: skip
        for key, matrix in (("in", "input vectors (M1)"), ("out", "output vectors (M2)"),
                            ("gate", "gate vectors")):  # fmt: skip
            sim = collector.similarity.get((layer, key))
            if sim is not None:
                rel = f"images/ffn/similarity_{layer:03d}_{key}.png"
                title = f"FFN layer {layer}: cosine similarity of the {matrix}"
                calls[rel] = (draw_similarity, (sim, title, out_dir / rel), {})
    rel = "images/ffn/depth.png"
    title = f"{model}: FFN geometry across depth"
    calls[rel] = (draw_depth_curves, (layer_table, out_dir / rel), {"title": title})
    return calls


def run_ffn(
    model: str | Path,
    out: Path,
    *,
    config: FFNConfig | None = None,
    progress: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Only the FFN analysis: read just the FFN tensors, write `ffn.parquet`, `ffn_layers.parquet`
    and the figures of `config.layers` (default first, middle, last) into `out`."""
    config = config or FFNConfig()
    started = time.time()
    manifest = Manifest("ffn", source=str(model), settings={"ffn": asdict(config)})
    with open_checkpoint(model) as ckpt:
        anat = anatomy_of(ckpt)
        if not anat.ffn:
            raise StriateError(
                f"no FFN blocks found (family {anat.family})", path=ckpt.path,
                hint="`striate info` shows the roles striate gives each tensor",
            )  # fmt: skip
        layers = list(config.layers) or default_layers(sorted(t.layer for t in anat.ffn))
        collector = FFNCollector(anat, config, similarity_layers=set(layers))
        infos = [ckpt.info(n) for n in ckpt.names() if n in collector.names]
        for info, w, error in read_each(ckpt, infos, progress=progress, label="FFN tensors"):
            if w is None:  # its layer is recorded as skipped by finish()
                manifest.tensors[info.name] = {"status": "failed", "error": error}
            else:
                collector.offer(info.name, w)
                manifest.tensors[info.name] = {"status": "done"}
        collector.finish()
    neurons, layer_table = ffn_tables(collector)
    store.write_table(out / "ffn.parquet", neurons)
    store.write_table(out / "ffn_layers.parquet", layer_table)
    calls = ffn_figure_calls(out, collector, neurons, layer_table, layers, model=str(model))
    for fn, args, kwargs in calls.values():
        fn(*args, **kwargs)
    manifest.figures = {"ffn": list(calls)}
    manifest.extra["skipped"] = {str(k): v for k, v in collector.skipped.items()}
    manifest.finish(started)
    store.write_manifest(out, manifest)
    write_pass_report(out, manifest.as_dict())
    return neurons, layer_table
