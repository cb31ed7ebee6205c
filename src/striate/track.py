"""`striate track`: a series of checkpoints of one training run, and how its weights move.

Each checkpoint is scanned once (tensor statistics and spectra; no images) and cached by its
content hash under `<out>/cache/`, so adding a checkpoint to a series scans only the new one.
The tables then join on tensor name: `trajectories.parquet` (step, tensor, every tensor metric),
`dynamics.parquet` (per step and matrix: the update since the first and the previous checkpoint,
and how the top singular subspaces compare with the final and the previous checkpoint's) and
`alignment.parquet` (per step: the output space of each linear layer against the input space of
the next, for consecutive matrices whose shapes chain).
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import re
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from striate import store
from striate.analyses.dynamics import (
    DynamicsConfig,
    TopFactors,
    alignment_from_factors,
    dynamics_from_factors,
    top_factors,
)
from striate.analyses.spectrum import as_matrix
from striate.anatomy import anatomy_of
from striate.checkpoint import Checkpoint, open_checkpoint
from striate.config import as_dict
from striate.errors import StriateError
from striate.executor import Executor
from striate.render.track_figures import draw_track_figures
from striate.report.track_html import write_track_report
from striate.scan import ImagesConfig, ScanConfig, scan
from striate.store import Manifest

_STEP = re.compile(r"(\d+)(?!.*\d)")  # the last number in a name
_WEIGHT_SUFFIXES = {".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".gguf", ".onnx", ".npz",
                    ".h5", ".keras"}  # fmt: skip


@dataclass(frozen=True)
class CheckpointRef:
    step: int
    path: Path


@dataclass
class TrackRun:
    """What `track` returns; the same tables are in its run directory."""

    path: Path
    checkpoints: list[CheckpointRef]
    trajectories: pd.DataFrame
    dynamics: pd.DataFrame
    alignment: pd.DataFrame


def expand_checkpoints(targets: list[str], steps: list[int] | None = None) -> list[CheckpointRef]:
    """Checkpoint paths from files, globs and folders, with their steps, sorted by step.

    A folder holding weight files with numbers in their names (`ckpt_000100.pt`) or numbered
    subfolders (`checkpoint-100/`) is a series; any other folder is one checkpoint. The step is
    the last number in the name unless `steps` gives them in the order of `targets` expanded.
    """
    paths: list[Path] = []
    for target in targets:
        if any(c in target for c in "*?["):
            paths += sorted(Path(p) for p in glob.glob(target))
        elif Path(target).is_dir() and _is_series(Path(target)):
            paths += _series_members(Path(target))
        else:
            paths.append(Path(target))
    if not paths:
        raise StriateError("no checkpoints found", path=", ".join(targets))
    if steps is not None:
        if len(steps) != len(paths):
            raise StriateError(f"{len(steps)} steps given for {len(paths)} checkpoints")
        refs = [CheckpointRef(s, p) for s, p in zip(steps, paths, strict=True)]
    else:
        refs = [CheckpointRef(_step_of(p, i), p) for i, p in enumerate(paths)]
    refs.sort(key=lambda r: r.step)
    seen = [r.step for r in refs]
    if len(set(seen)) != len(seen):
        raise StriateError(f"two checkpoints share a step in {seen}", hint="give --steps")
    return refs


def _series_members(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _WEIGHT_SUFFIXES]
    dirs = [p for p in folder.iterdir() if p.is_dir() and _STEP.search(p.name)]
    return sorted(files if files else dirs, key=lambda p: (_step_of(p, 0), p.name))


def _is_series(folder: Path) -> bool:
    members = _series_members(folder)
    return len(members) > 1 and all(_STEP.search(p.stem) for p in members)


def _step_of(path: Path, default: int) -> int:
    match = _STEP.search(path.stem if path.is_file() else path.name)
    return int(match.group(1)) if match else default


def content_hash(path: Path) -> str:
    """BLAKE2b of the checkpoint's bytes (a folder: every file, with its relative name)."""
    digest = hashlib.blake2b(digest_size=16)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with f.open("rb") as fh:
            while chunk := fh.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()


def _series_config(config: ScanConfig) -> ScanConfig:
    """Per-checkpoint scans keep every tensor metric but draw nothing and skip FFN geometry."""
    return replace(
        config, images=ImagesConfig(enabled=False), ffn=replace(config.ffn, enabled=False)
    )


def _settings_key(config: ScanConfig) -> str:
    return hashlib.blake2b(repr(as_dict(config)).encode(), digest_size=8).hexdigest()


def _scan_into(job: tuple[Path, Path], config: ScanConfig) -> pd.DataFrame:
    """One task: scan checkpoint `job[0]` into cache folder `job[1]`; its tensor table."""
    path, folder = job
    return scan(path, folder, config=config).tensors


def scan_series(
    refs: list[CheckpointRef], cache: Path, config: ScanConfig, executor: Executor, progress: bool
) -> tuple[list[str], list[pd.DataFrame]]:
    """Each checkpoint's cache key (content hash and settings) and tensor table, in `refs` order.

    Two rounds of tasks: hash every checkpoint, then scan each content not seen before (once,
    however many checkpoints hold it) into `cache/KEY/`; the others are read from there.
    """
    settings = _settings_key(config)
    paths = [ref.path for ref in refs]
    hashes = executor.map(content_hash, paths, label="track: hashing", progress=progress)
    keys = [f"{digest}-{settings}" for digest in hashes]
    todo: dict[str, Path] = {}
    for key, path in zip(keys, paths, strict=True):
        if key not in todo and not (cache / key / "manifest.json").is_file():
            todo[key] = path
    jobs = [(path, cache / key) for key, path in todo.items()]
    task = partial(_scan_into, config=config)
    done = executor.map(task, jobs, label="track: scanning", progress=progress)
    scanned = dict(zip(todo, done, strict=True))
    tables = [scanned[k] if k in scanned else store.read_table(cache / k, "tensors") for k in keys]
    return keys, tables


def track(
    targets: list[str],
    out: str | Path,
    *,
    steps: list[int] | None = None,
    metrics: str | Path | None = None,
    config: ScanConfig | None = None,
    dynamics: DynamicsConfig | None = None,
    progress: bool = False,
    executor: Executor | None = None,
) -> TrackRun:
    """Scan every checkpoint of a series (cached) and write trajectories and dynamics to `out`.

    `metrics`: an optional CSV or Parquet file of the run's own curves (a `step` column and
    any of train/test loss and accuracy), plotted beside the weight metrics. `executor`
    (`striate.executor`) hashes and scans each checkpoint as one task, e.g. on a Ray cluster;
    the default runs them here, in turn. The dynamics that follow read the series here.
    """
    started = time.time()
    out_dir = Path(out)
    refs = expand_checkpoints(targets, steps)
    series_config = _series_config(config or ScanConfig())
    dyn = dynamics or DynamicsConfig()
    keys, tensors = scan_series(
        refs, out_dir / "cache", series_config, executor or Executor(), progress
    )
    trajectories = pd.concat(
        [
            table.assign(step=ref.step, checkpoint=str(ref.path))
            for table, ref in zip(tensors, refs, strict=True)
        ],
        ignore_index=True,
    )
    checkpoints = [open_checkpoint(ref.path) for ref in refs]
    try:
        dynamics_table, alignment_table = _dynamics_and_alignment(refs, checkpoints, dyn)
    finally:
        for ckpt in checkpoints:
            ckpt.close()
    store.write_table(out_dir / "trajectories.parquet", trajectories)
    store.write_table(out_dir / "dynamics.parquet", dynamics_table)
    store.write_table(out_dir / "alignment.parquet", alignment_table)
    curves = _read_metrics(Path(metrics)) if metrics is not None else None
    figures = draw_track_figures(out_dir, trajectories, dynamics_table, alignment_table, curves)
    manifest = Manifest(
        "track",
        source=str(refs[0].path.parent) if refs else None,
        settings={**as_dict(series_config), "dynamics": as_dict(dyn)},
        figures=figures,
        extra={
            "checkpoints": [
                {"step": r.step, "path": str(r.path), "cache": k}
                for r, k in zip(refs, keys, strict=True)
            ],
            "metrics_file": None if metrics is None else str(metrics),
        },
    )
    manifest.finish(started)
    written = store.write_manifest(out_dir, manifest)
    write_track_report(out_dir, written, trajectories)
    return TrackRun(out_dir, refs, trajectories, dynamics_table, alignment_table)


def _matrices(ckpt: Checkpoint) -> dict[str, str | None]:
    """Tensor name -> layout, for the tensors that are matrices (2+ axes)."""
    anat = anatomy_of(ckpt)
    return {n: anat[n].layout for n in ckpt.names() if len(ckpt.info(n).shape) >= 2}


def _as_matrix(ckpt: Checkpoint, name: str, layout: str | None) -> np.ndarray:
    m = as_matrix(ckpt.read(name), layout)
    assert m is not None
    return m


def _dynamics_and_alignment(
    refs: list[CheckpointRef], ckpts: list[Checkpoint], config: DynamicsConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The dynamics and alignment tables, one SVD per checkpoint and matrix (`top_factors`).

    Dynamics: per matrix present with one shape in every checkpoint, per step. Alignment: per
    step, consecutive linear matrices [out, in] whose shapes chain (out_l == in_l+1). Held: the
    top-k factors of every such matrix at the final, the previous and the current checkpoint,
    and three versions of one tensor at a time (first, previous, current: read again, not kept).
    """
    shared = _matrices(ckpts[0])
    for ckpt in ckpts[1:]:
        shapes = {n: ckpt.info(n).shape for n in ckpt.names()}
        shared = {n: lay for n, lay in shared.items() if shapes.get(n) == ckpts[0].info(n).shape}
    k, last = config.top_k, len(ckpts) - 1
    final = {n: top_factors(_as_matrix(ckpts[-1], n, lay), k) for n, lay in shared.items()}
    # a matrix that `as_matrix` leaves as stored has the factors alignment needs
    as_stored = {n for n, lay in shared.items()
                 if len(ckpts[0].info(n).shape) == 2 and lay not in ("conv1d", "hwio")}  # fmt: skip
    rows: dict[str, list[dict[str, Any]]] = {n: [] for n in shared}
    alignment_rows: list[dict[str, Any]] = []
    previous: dict[str, TopFactors] = {}
    for t, (ref, ckpt) in enumerate(zip(refs, ckpts, strict=True)):
        current: dict[str, TopFactors] = {}
        for name, layout in shared.items():
            w_t = _as_matrix(ckpt, name, layout)
            w_0 = _as_matrix(ckpts[0], name, layout)
            w_prev = None if t == 0 else _as_matrix(ckpts[t - 1], name, layout)
            current[name] = final[name] if t == last else top_factors(w_t, k)
            values = dynamics_from_factors(
                w_t, w_0, w_prev, current[name], previous.get(name), final[name]
            )
            rows[name].append({"step": ref.step, "tensor": name, **values})
        known = {n: current[n] for n in as_stored}
        alignment_rows += _alignment_rows(ref, ckpt, known, k)
        previous = current
    dynamics: pd.DataFrame = pd.DataFrame([row for name in shared for row in rows[name]])
    alignment = pd.DataFrame(alignment_rows, columns=["step", "tensor", "next_tensor", "alignment"])
    return dynamics, alignment


def _alignment_rows(
    ref: CheckpointRef, ckpt: Checkpoint, known: dict[str, TopFactors], k: int
) -> list[dict[str, Any]]:
    """One checkpoint's alignment rows; `known`: factors already computed for this checkpoint,
    to which the other matrices' are added (an inner layer is in two pairs)."""
    anat = anatomy_of(ckpt)
    linear = [n for n in ckpt.names()
              if len(ckpt.info(n).shape) == 2 and anat[n].layout in ("linear", None)
              and anat[n].role not in ("embedding", "position_embedding")]  # fmt: skip
    rows = []
    for a, b in itertools.pairwise(linear):
        if ckpt.info(a).shape[0] != ckpt.info(b).shape[1]:
            continue
        for n in (a, b):
            if n not in known:
                known[n] = top_factors(ckpt.read(n), k)
        value = alignment_from_factors(known[a], known[b])
        rows.append({"step": ref.step, "tensor": a, "next_tensor": b, "alignment": value})
    return rows


def _read_metrics(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise StriateError(f"cannot read the metrics file: {exc}", path=path) from None
    if "step" not in table.columns:
        raise StriateError("the metrics file has no `step` column", path=path)
    return table
