"""The cases of `calibration.py` and their run: structure-free tensors, planted structures, and
what the detectors find in them.

Each task function below (`null_tensors`, `shuffled_tensors`, `planted`, `pooled_null`,
`pooled_planted`) runs in a worker process: its arrays are drawn inside it from the root seed and
the task's key, so a result does not depend on how the tasks are spread over the workers, and
only tidy records (one dict per tensor, trial or model, and alpha) come back. `run` makes the
tasks of a `Plan` and gathers their records into DataFrames (`Results`).

Storage layouts. A case of size "d x m" has a residual axis of length d. Layout "rows" stores it
as (d, m) (a Linear's out-axis: a residual dimension is a row), "columns" as (m, d) (the in-axis:
a column). Lines are planted on the residual axis.

Alpha sweeps. A detector is run at each alpha of a sweep, loosest first; a tensor with nothing
found at one alpha is not run again at the stricter ones (a detector reports a subset of its
findings when alpha shrinks; `tests/test_calibration_harness.py` checks it on nulls and plants).
"""

from __future__ import annotations

import functools
import importlib
import multiprocessing
import os
import resource
import subprocess
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

SIGMA = 0.02  # sd of the synthetic weights: a trained model's scale, so float16 casts are realistic
POOLED_SIDE = 1536  # the other side of the pooled models' FFN matrices (MiniLM's, SmolLM2's)
#: one layer of a pooled null model: (where the residual axis is, length of the other side);
#: q, k, v (d, d) read the residual stream, o writes it; FFN up and gate read it, down writes it
LAYER = (("columns", 0), ("columns", 0), ("columns", 0), ("rows", 0),
         ("columns", POOLED_SIDE), ("columns", POOLED_SIDE), ("rows", POOLED_SIDE))  # fmt: skip
Record = dict[str, Any]

#: the targets: recall >= RECALL_TARGET at these strengths and beyond, in matrices of at least
#: TARGET_NUMEL entries (pooled dims: over >= POOLED_TARGET_TENSORS tensors); and at most
#: FALSE_TARGET false findings per 100 tensors (pooled: per 100 models) on every null
TARGETS = {"loud": 1.5, "quiet": 0.5, "hotspot": 12.0, "pooled": 1.15}
RECALL_TARGET = 0.90
FALSE_TARGET = 1.0
TARGET_NUMEL = 96 * 384
POOLED_TARGET_TENSORS = 20
KNOBS = {"lines": "LinesConfig.alpha", "hotspots": "HotspotsConfig.alpha",
         "residual": "ResidualConfig.alpha"}  # fmt: skip
Task = tuple[str, Callable[..., list[Record]], dict[str, Any], float]


@functools.cache
def cp_upper(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound on a rate with k events in n trials."""
    from scipy.stats import beta

    return 1.0 if k >= n else float(beta.ppf(confidence, k + 1, n - k))


def is_target_size(size: str) -> bool:
    r, c = (int(x) for x in size.split("x"))
    return r * c >= TARGET_NUMEL


def api(module: str = "striate") -> SimpleNamespace:
    """The detectors under test: striate's, or a module exposing the same names (a candidate)."""
    if module != "striate":
        return SimpleNamespace(**vars(importlib.import_module(module)))
    from striate.analyses.hotspots import HotspotsConfig, find_hotspots
    from striate.analyses.lines import LinesConfig, find_lines, line_z
    from striate.analyses.residual import ResidualConfig, pool_z, pooled_expected

    return SimpleNamespace(
        LinesConfig=LinesConfig, find_lines=find_lines, line_z=line_z,
        HotspotsConfig=HotspotsConfig, find_hotspots=find_hotspots,
        ResidualConfig=ResidualConfig, pool_z=pool_z, pooled_expected=pooled_expected,
    )  # fmt: skip


@dataclass(frozen=True)
class Detectors:
    """The configs under test and the alphas each knob is swept over (each includes its config's
    own alpha, the default)."""

    module: str
    lines: Any  # LinesConfig
    hotspots: Any  # HotspotsConfig
    residual: Any  # ResidualConfig
    alphas: tuple[float, ...]

    def sweep(self, knob: str) -> list[Any]:
        """`knob`'s config at every alpha, loosest first."""
        config = getattr(self, knob)
        values = sorted({*self.alphas, config.alpha}, reverse=True)
        return [replace(config, alpha=a) for a in values]


def rng_for(seed: int, *key: object) -> np.random.Generator:
    """The generator of one task: the root seed and the task's key (stable across runs)."""
    return np.random.default_rng([seed, zlib.crc32(repr(key).encode())])


def null_matrix(rng: np.random.Generator, family: str, shape: tuple[int, ...]) -> np.ndarray:
    """SIGMA * i.i.d. Gaussian ("gaussian") or Student-t ("t3", "t4", ...) weights, float32.

    t_df = Z / sqrt(chi2_df / df), chi2_df = 2 * (sum of df // 2 exponentials) (+ Z'^2 when df is
    odd): exact, and float32 throughout (numpy's standard_t draws float64 only)."""
    z = rng.standard_normal(shape, dtype=np.float32)
    if family == "gaussian":
        return z * np.float32(SIGMA)
    df = int(family.removeprefix("t"))
    chi2 = np.zeros(shape, np.float32)
    for _ in range(df // 2):
        chi2 += rng.standard_exponential(shape, dtype=np.float32)
    chi2 *= 2
    if df % 2:
        chi2 += np.square(rng.standard_normal(shape, dtype=np.float32))
    scale = np.float32(SIGMA * np.sqrt(df))
    return z * scale / np.sqrt(np.maximum(chi2, np.float32(1e-30)))


def cast(w: np.ndarray, dtype: str) -> np.ndarray:
    """`w` stored as `dtype` ("float32", "float16", "bfloat16") and read back as float32 (torch's
    rounding, as a checkpoint writer's)."""
    if dtype == "float32":
        return w
    import torch

    torch.set_num_threads(1)
    return torch.from_numpy(np.ascontiguousarray(w)).to(getattr(torch, dtype)).float().numpy()


def stored(shape: tuple[int, int], layout: str) -> tuple[tuple[int, int], int]:
    """(storage shape, residual axis) of a d x m case in `layout`."""
    d, m = shape
    return ((d, m), 0) if layout == "rows" else ((m, d), 1)


def line_index(axis: int, k: int) -> tuple[int | None, int | None]:
    """A Finding's index of line k along `axis` of a matrix."""
    return (k, None) if axis == 0 else (None, k)


def line_slice(axis: int, k: int) -> tuple[int | slice, ...]:
    """numpy's index of line k along `axis` of a matrix."""
    return (k,) if axis == 0 else (slice(None), k)


def _sweep(detect: Callable[[np.ndarray, Any], list[Any]], w: np.ndarray,
           configs: Sequence[Any]) -> list[list[Any]]:  # fmt: skip
    """Findings at each config (loosest first); none found at one alpha: none at the stricter."""
    out: list[list[Any]] = []
    for config in configs:
        out.append(detect(w, config) if not out or out[-1] else [])
    return out


def _line_counts(findings: list[Any]) -> dict[str, int]:
    loud = sum(f.extra["direction"] == "loud" for f in findings)
    return {"loud": loud, "quiet": len(findings) - loud}


def _null_records(det: Detectors, w: np.ndarray, base: Record,
                  before: list[set[int]] | None = None, origin: np.ndarray | None = None,
                  ) -> list[Record]:  # fmt: skip
    """False lines and hotspots in the structure-free `w` at every alpha of both sweeps.

    For a shuffled tensor, `origin[p]` is the flat index in the unshuffled tensor of the weight
    now at flat index p, and `before[i]` the unshuffled tensor's hotspots at the i-th alpha:
    a false hotspot that was a hotspot before shuffling is counted as `preexisting` too. The
    others are described by `new_sd` (their |w| / sd of the tensor) and `new_rank` (their rank
    among the tensor's |w|, 0 = the largest)."""
    a = api(det.module)
    records = []
    lines_cfgs, hot_cfgs = det.sweep("lines"), det.sweep("hotspots")
    for config, found in zip(lines_cfgs, _sweep(a.find_lines, w, lines_cfgs), strict=True):
        records.append({**base, "detector": "lines", "alpha": config.alpha,
                        **_line_counts(found), "hotspots": 0, "preexisting": 0})  # fmt: skip
    hot = _sweep(a.find_hotspots, w, hot_cfgs)
    for i, (config, found) in enumerate(zip(hot_cfgs, hot, strict=True)):
        record = {**base, "detector": "hotspots", "alpha": config.alpha, "loud": 0, "quiet": 0,
                  "hotspots": len(found), "preexisting": 0}  # fmt: skip
        if before is not None and origin is not None:
            new = [
                f
                for f in found
                if int(origin[np.ravel_multi_index(f.index, w.shape)]) not in before[i]
            ]
            sd = float(np.std(w, dtype=np.float64))
            record |= {"preexisting": len(found) - len(new),
                       "new_sd": [round(abs(f.value) / sd, 1) for f in new],
                       "new_rank": [int(np.count_nonzero(np.abs(w) > abs(f.value)))
                                    for f in new]}  # fmt: skip
        records.append(record)
    return records


def null_tensors(det: Detectors, family: str, shape: tuple[int, int], first: int, n: int,
                 seed: int) -> list[Record]:  # fmt: skip
    """Tensors `first` .. `first + n - 1` of a synthetic null family at `shape`."""
    records = []
    for t in range(first, first + n):
        w = null_matrix(rng_for(seed, "null", family, shape, t), family, shape)
        base = {"family": family, "size": f"{shape[0]}x{shape[1]}", "tensor": t}
        records += _null_records(det, w, base)
    return records


def real_matrices(ckpt: Any, max_numel: int) -> list[str]:
    """The 2-D matrices of `ckpt` with both sides >= 64 and at most `max_numel` entries."""
    shapes = {n: ckpt.info(n).shape for n in ckpt.names()}
    return [n for n, s in shapes.items()
            if len(s) == 2 and min(s) >= 64 and s[0] * s[1] <= max_numel]  # fmt: skip


def shuffled_tensors(det: Detectors, model: str, part: int, parts: int, tensors: int,
                     max_numel: int, seed: int) -> list[Record]:  # fmt: skip
    """Part `part` of `parts` of the shuffled matrices of sample `model`: each of its matrices
    (`real_matrices`; a seeded choice of `tensors` of them when there are more) with its entries
    shuffled, each as often as it takes to make `tensors` shuffled tensors in all parts."""
    import striate
    from striate.samples import sample_path

    a = api(det.module)
    records = []
    with striate.open(sample_path(model)) as ckpt:
        names = real_matrices(ckpt, max_numel)
        if len(names) > tensors:
            keep = rng_for(seed, "real", model).choice(len(names), tensors, replace=False)
            names = [names[i] for i in sorted(keep)]
        permutations = -(-tensors // len(names))
        for name in names[part::parts]:
            w = np.ascontiguousarray(ckpt.read(name), dtype=np.float32)
            hot_cfgs = det.sweep("hotspots")
            before = [{int(np.ravel_multi_index(f.index, w.shape)) for f in found}
                      for found in _sweep(a.find_hotspots, w, hot_cfgs)]  # fmt: skip
            for p in range(permutations):
                origin = rng_for(seed, "shuffle", model, name, p).permutation(w.size)
                shuffled = w.ravel()[origin].reshape(w.shape)
                base = {"family": f"{model} shuffled", "size": f"{w.shape[0]}x{w.shape[1]}",
                        "tensor": f"{name}#{p}"}  # fmt: skip
                records += _null_records(det, shuffled, base, before, origin)
    return records


def planted(det: Detectors, kind: str, shape: tuple[int, int], layout: str, dtype: str,
            strengths: Sequence[float], target: float, first: int, n: int, seed: int,
            ) -> list[Record]:  # fmt: skip
    """Recall trials `first` .. `first + n - 1`: one Gaussian matrix per trial, and in it one
    planted structure of each strength in turn (same matrix, same place: the curves compare
    strengths on common noise). kind "loud" / "quiet": residual line k times the strength;
    "hotspot": w[i, j] = +-strength * SIGMA. Found at the config's alpha; at `target` strength
    also at every alpha of the knob's sweep."""
    a = api(det.module)
    knob = "hotspots" if kind == "hotspot" else "lines"
    detect = a.find_hotspots if kind == "hotspot" else a.find_lines
    default = getattr(det, knob)
    full, axis = stored(shape, layout)
    records = []
    for t in range(first, first + n):
        rng = rng_for(seed, "plant", kind, shape, layout, dtype, t)
        w = null_matrix(rng, "gaussian", full)
        k = int(rng.integers(shape[0]))
        if kind == "hotspot":
            where: tuple[int | None, ...] = (int(rng.integers(full[0])), int(rng.integers(full[1])))
            sign = float(rng.choice([-1.0, 1.0]))
        else:
            where = line_index(axis, k)
        x = cast(w, dtype).copy()  # each strength overwrites the same line or weight of x
        for s in strengths:
            if kind == "hotspot":
                x[where] = cast(np.array([sign * s * SIGMA], np.float32), dtype)[0]
            else:
                x[line_slice(axis, k)] = cast(np.take(w, k, axis=axis) * np.float32(s), dtype)
            configs = det.sweep(knob) if s == target else [default]
            for config, found in zip(configs, _sweep(detect, x, configs), strict=True):
                hits = [f for f in found if f.index == where and (
                    kind == "hotspot" or f.extra["direction"] == kind)]  # fmt: skip
                records.append({
                    "kind": kind, "size": f"{shape[0]}x{shape[1]}", "layout": layout,
                    "dtype": dtype, "strength": s, "trial": t, "alpha": config.alpha,
                    "hit": bool(hits), "significance": hits[0].significance if hits else np.nan,
                    "others": len(found) - len(hits),
                })  # fmt: skip
    return records


def pooled_null(det: Detectors, family: str, d: int, first: int, n: int, seed: int,
                tensors: tuple[int, int] = (20, 40)) -> list[Record]:  # fmt: skip
    """Null models `first` .. `first + n - 1`: T in `tensors` (inclusive) independent `family`
    matrices in layers of `LAYER`, sharing a residual axis of d; false pooled dims per alpha."""
    a = api(det.module)
    records = []
    for t in range(first, first + n):
        rng = rng_for(seed, "pooled-null", family, d, t)
        n_tensors = int(rng.integers(tensors[0], tensors[1] + 1))
        zs = []
        for i in range(n_tensors):
            layout, side = LAYER[i % len(LAYER)]
            full, axis = stored((d, side or d), layout)
            zs.append(a.line_z(null_matrix(rng, family, full), axis, config=det.lines))
        pooled, _ = a.pool_z(zs)
        expected = a.pooled_expected(pooled, d)
        for config in det.sweep("residual"):
            records.append(
                {
                    "family": family,
                    "d": d,
                    "model": t,
                    "tensors": n_tensors,
                    "alpha": config.alpha,
                    "false_dims": int(np.count_nonzero(expected <= config.alpha)),
                }
            )
    return records


def pooled_planted(
    det: Detectors,
    d: int,
    layout: str,
    dtype: str,
    strengths: Sequence[float],
    tensors: Sequence[int],
    first: int,
    n: int,
    seed: int,
) -> list[Record]:
    """Pooled-dim recall trials: per trial max(tensors) Gaussian d x POOLED_SIDE matrices in
    `layout`, dim k scaled by each strength in turn in all of them; line_z of each along the
    residual axis, pooled over the first T for each T in `tensors`."""
    a = api(det.module)
    full, axis = stored((d, POOLED_SIDE), layout)
    records = []
    for t in range(first, first + n):
        rng = rng_for(seed, "pooled-plant", d, layout, dtype, t)
        k = int(rng.integers(d))
        zs = np.empty((len(strengths), max(tensors), d))  # (strength, tensor, dim)
        for i in range(max(tensors)):
            w = null_matrix(rng, "gaussian", full)
            line = np.take(w, k, axis=axis)  # a copy: x may be w itself
            x = cast(w, dtype)
            for si, s in enumerate(strengths):
                x[line_slice(axis, k)] = cast(line * np.float32(s), dtype)
                zs[si, i] = a.line_z(x, axis, config=det.lines)
        for si, s in enumerate(strengths):
            for n_tensors in tensors:
                pooled, _ = a.pool_z(list(zs[si, :n_tensors]))
                expected = a.pooled_expected(pooled, d)
                with np.errstate(divide="ignore"):
                    significance = -float(np.log10(expected[k]))
                for config in det.sweep("residual"):
                    found = expected <= config.alpha
                    records.append({
                        "d": d, "layout": layout, "dtype": dtype, "strength": s,
                        "tensors": n_tensors, "trial": t, "alpha": config.alpha,
                        "hit": bool(found[k]),
                        "significance": significance,
                        "others": int(np.count_nonzero(found)) - int(found[k]),
                    })  # fmt: skip
    return records


# ---- the run: a plan, its tasks, a pool of workers ---------------------------------------


@dataclass(frozen=True)
class Plan:
    """How many cases of each kind: the full run (`quick()`: the test's smoke run)."""

    sizes: tuple[tuple[int, int], ...] = ((64, 64), (96, 384), (384, 1536), (576, 1536))
    families: tuple[str, ...] = ("gaussian", "t3", "t4", "t6")
    null_tensors: int = 130  # per family and size
    real_models: tuple[str, ...] = ("minilm", "smollm2")
    real_tensors: int = 400  # shuffled tensors per model: its matrices, permuted as often as needed
    real_max_numel: int = 4_000_000  # larger matrices (the embedding tables) are left out
    layouts: tuple[str, ...] = ("rows", "columns")
    dtypes: tuple[str, ...] = ("float32", "float16", "bfloat16")
    strengths: dict[str, tuple[float, ...]] = field(default_factory=lambda: {
        "loud": (1.1, 1.2, 1.3, 1.4, 1.5, 1.75, 2.0, 2.5, 3.0),
        "quiet": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
        "hotspot": (6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 30.0, 50.0),
        "pooled": (1.05, 1.1, 1.15, 1.2, 1.3, 1.5),
    })  # fmt: skip
    line_trials: int = 30  # per kind, size, layout and dtype
    hotspot_trials: int = 12  # per size, layout and dtype (find_hotspots costs ~10x find_lines)
    pooled_dims: tuple[int, ...] = (384, 576)
    pooled_tensors: tuple[int, ...] = (5, 10, 20, 40)
    pooled_trials: int = 6  # per d, layout and dtype
    pooled_families: tuple[str, ...] = ("gaussian", "t4")
    pooled_null_models: int = 150  # per family and d

    @classmethod
    def quick(cls) -> Plan:
        return cls(sizes=((64, 64), (96, 384), (384, 1536)), null_tensors=6,
                   real_models=("minilm",), real_tensors=24, dtypes=("float32", "bfloat16"),
                   line_trials=3, hotspot_trials=2, pooled_tensors=(5, 20), pooled_trials=1,
                   pooled_null_models=2)  # fmt: skip


@dataclass
class Results:
    """The records of a run (one row per tensor / trial / model and alpha: the dicts of the
    tasks above) and what produced them."""

    nulls: pd.DataFrame
    recall: pd.DataFrame
    pooled_nulls: pd.DataFrame
    pooled_recall: pd.DataFrame
    plan: Plan
    detectors: Detectors
    seed: int
    workers: int
    seconds: float  # wall time of the cases
    cpu_seconds: float  # CPU time of the worker processes
    source: str  # the commit the detectors came from (`source_state`)


def _chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for first in range(0, n, max(1, size)):
        yield first, min(max(1, size), n - first)


def tasks(plan: Plan, det: Detectors, seed: int, workers: int) -> list[Task]:
    """(table, function, arguments, rough cost) of every task, costliest first."""
    out: list[Task] = []

    def add(table: str, fn: Callable[..., list[Record]], cost: float, **kw: Any) -> None:
        out.append((table, fn, {**kw, "det": det, "seed": seed}, cost))

    for family in plan.families:
        for shape in plan.sizes:
            numel = shape[0] * shape[1]
            for first, n in _chunks(plan.null_tensors, 1_000_000 // numel):
                add("nulls", null_tensors, 12 * n * numel, family=family, shape=shape,
                    first=first, n=n)  # fmt: skip
    for model in plan.real_models:  # a part per worker: opening a checkpoint can take seconds
        for part in range(workers):
            add("nulls", shuffled_tensors, 12e6 * plan.real_tensors / workers,
                model=model, part=part, parts=workers, tensors=plan.real_tensors,
                max_numel=plan.real_max_numel)  # fmt: skip
    for kind in ("loud", "quiet", "hotspot"):
        trials, weight = (plan.hotspot_trials, 10) if kind == "hotspot" else (plan.line_trials, 1)
        for shape in plan.sizes:
            numel = shape[0] * shape[1] * weight * len(plan.strengths[kind])
            for layout in plan.layouts:
                for dtype in plan.dtypes:
                    for first, n in _chunks(trials, round(20e6 / numel)):
                        add("recall", planted, n * numel, kind=kind, shape=shape,
                            layout=layout, dtype=dtype, strengths=plan.strengths[kind],
                            target=TARGETS[kind], first=first, n=n)  # fmt: skip
    for d in plan.pooled_dims:
        for family in plan.pooled_families:
            for first, n in _chunks(plan.pooled_null_models, 5):
                add("pooled_nulls", pooled_null, n * 30 * d * 900 * 2, family=family, d=d,
                    first=first, n=n)  # fmt: skip
        numel = max(plan.pooled_tensors) * d * POOLED_SIDE * len(plan.strengths["pooled"])
        for layout in plan.layouts:
            for dtype in plan.dtypes:
                for first, n in _chunks(plan.pooled_trials, 2):
                    add("pooled_recall", pooled_planted, n * numel, d=d, layout=layout,
                        dtype=dtype, strengths=plan.strengths["pooled"],
                        tensors=plan.pooled_tensors, first=first, n=n)  # fmt: skip
    return sorted(out, key=lambda task: -task[3])


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Processes spawned inside get one BLAS / OpenMP thread each (read when they import numpy)."""
    names = ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"]  # fmt: skip
    saved = {n: os.environ.get(n) for n in names}
    os.environ.update(dict.fromkeys(names, "1"))
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


def run(plan: Plan, det: Detectors, *, seed: int = 0, workers: int | None = None,
        progress: Callable[[str], None] | None = None) -> Results:  # fmt: skip
    """Every case of `plan` against the detectors `det`, in a pool of `workers` processes."""
    from striate.samples import sample_path

    start = time.perf_counter()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers = workers or os.cpu_count() or 1
    source = source_state()
    for model in plan.real_models:
        sample_path(model)  # fetched once, here, not by every worker
    todo = tasks(plan, det, seed, workers)
    rows: dict[str, list[Record]] = {
        t: [] for t in ("nulls", "recall", "pooled_nulls", "pooled_recall")
    }
    spawn = multiprocessing.get_context("spawn")
    with one_blas_thread(), ProcessPoolExecutor(workers, mp_context=spawn) as pool:
        futures = {pool.submit(fn, **kw): table for table, fn, kw, _ in todo}
        for done, future in enumerate(as_completed(futures), 1):
            rows[futures[future]] += future.result()
            if progress and (done % 25 == 0 or done == len(futures)):
                progress(f"{done}/{len(futures)} tasks, {time.perf_counter() - start:.0f} s")
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers, joined on leaving the pool
    return Results(
        **{k: pd.DataFrame(v) for k, v in rows.items()},
        plan=plan,
        detectors=det,
        seed=seed,
        workers=workers,
        seconds=time.perf_counter() - start,
        cpu_seconds=cpu.ru_utime + cpu.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime,
        source=source,
    )


def source_state() -> str:
    """The commit the detectors are run from, and whether src/ differs from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parents[1],
                              capture_output=True, text=True)  # fmt: skip
        return done.stdout.strip()

    commit = git("log", "-1", "--format=%h %s")
    if not commit:
        return "not a git checkout"
    dirty = git("status", "--porcelain", "--", "src")
    return f"commit {commit}" + (" (with uncommitted changes in src/)" if dirty else "")
