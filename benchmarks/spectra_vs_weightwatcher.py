"""striate's spectral metrics against WeightWatcher's `analyze()` and the floor, same matrices.

    .venv/bin/python benchmarks/spectra_vs_weightwatcher.py [--models minilm,smollm2,llama374m]

Rows, per model (every 2-D linear weight inside a layer, as `tests/test_weightwatcher.py`
compares them), each in its own process with the same 2 BLAS threads:

- `weightwatcher defaults`: WeightWatcher 0.7.7 `analyze()` as its users call it, the model an
  `nn.Sequential` of bias-free `nn.Linear` built first (that load is outside the in-call time);
- `weightwatcher mp_fit=True`: its Marchenko-Pastur fit on top;
- `floor (float64 Gram + eigvalsh)`: the Gram matrix and LAPACK's `eigvalsh` of every matrix,
  float64, the matrices in memory first, on two threads of one BLAS thread each: the least
  exact singular values can cost on the CPU;
- `striate` and `striate gram=float32`: the spectrum columns of tensors.parquet computed as
  `striate scan --jobs 2` does (two threads of one BLAS thread each), the matrices in memory
  first as for the floor.

In-call: the analysis alone, reading apart (`read s`: reading the checkpoint, and for
WeightWatcher building its model from it); whole process: the child's wall time from start to
exit, imports and reading included. Peak: the child's own peak resident set (VmHWM, polled).
Agreement: the largest relative difference from WeightWatcher's defaults of alpha, stable rank
and lambda_1 = s_1^2. Run it on idle cores: two-thread BLAS slows badly beside other work.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from scale import wait_peak  # noqa: E402

SYNTHETIC = {"llama374m": {"hidden": 1024, "layers": 24}}


def matrices(ckpt: Any) -> list[str]:
    from striate.anatomy import anatomy_of

    anatomy = anatomy_of(ckpt)
    return [
        n for n in ckpt.names()
        if anatomy[n].layout == "linear" and anatomy[n].layer is not None
        and len(ckpt.info(n).shape) == 2
    ]  # fmt: skip


def read_then_map(
    model: str, fn: Callable[[tuple[str, np.ndarray]], dict[str, Any]], jobs: int
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Every matrix read into memory (`load_s`), then `fn` of each on `jobs` threads of one
    BLAS thread each (`analyze_s`): one row per matrix."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    import striate

    start = time.perf_counter()
    with striate.open(model) as ckpt:
        loaded = [(name, ckpt.read(name)) for name in matrices(ckpt)]
    read = time.perf_counter()
    with threadpool_limits(1), ThreadPoolExecutor(jobs) as pool:
        rows = list(pool.map(fn, loaded))
    return pd.DataFrame(rows), {"load_s": read - start, "analyze_s": time.perf_counter() - read}


def run_striate(
    model: str, jobs: int = 2, gram: str = "float64"
) -> tuple[pd.DataFrame, dict[str, float]]:
    """As `striate scan --jobs 2` computes spectra, `jobs` threads of one BLAS thread each,
    the matrices read into memory first as the floor's are (reading is `load_s`, outside the
    in-call time: SmolLM2's GGUF blocks are dequantized there); `floor` = the rank tolerance,
    as the scan."""
    from striate.analyses.spectrum import (
        SpectrumConfig,
        as_matrix,
        rank_tolerance,
        singular_values,
        spectrum_metrics,
    )

    config = SpectrumConfig(gram=gram)

    def metrics(item: tuple[str, np.ndarray]) -> dict[str, Any]:
        name, w = item
        m = as_matrix(w, "linear")
        assert m is not None
        s = singular_values(m, floor=rank_tolerance(m.shape, config), gram=gram)
        return {"name": name.replace(".", "_"), **spectrum_metrics(s, m.shape, config)}

    table, times = read_then_map(model, metrics, jobs)
    return table.rename(columns={"spectral_norm": "s1"}), times


def run_weightwatcher(model: str, mp_fit: bool = False) -> tuple[pd.DataFrame, dict[str, float]]:
    import logging

    import torch
    import weightwatcher as ww

    import striate

    start = time.perf_counter()
    net = torch.nn.Sequential()
    with striate.open(model) as ckpt:
        for name in matrices(ckpt):
            w = torch.from_numpy(ckpt.read(name))
            layer = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
            with torch.no_grad():
                layer.weight.copy_(w)
            net.add_module(name.replace(".", "_"), layer)
    loaded = time.perf_counter()
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    watcher = ww.WeightWatcher(model=net)
    table = watcher.analyze(mp_fit=True) if mp_fit else watcher.analyze()
    done = time.perf_counter()
    return table, {"load_s": loaded - start, "analyze_s": done - loaded}


def run_floor(model: str, jobs: int = 2) -> tuple[pd.DataFrame, dict[str, float]]:
    """float64 Gram + eigvalsh of every matrix, read into memory first (reading apart), on
    `jobs` threads of one BLAS thread each (faster than one thread of two BLAS threads on
    matrices this small: the least the machine can do)."""
    from striate.analyses.spectrum import SpectrumConfig, _needs_svd, rank_tolerance

    def s1(item: tuple[str, np.ndarray]) -> dict[str, Any]:
        name, w = item
        m = w.astype(np.float64)
        g = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
        lam = np.linalg.eigvalsh(g)
        # where the Gram loses singular values the metrics need (the median, below ~1e-8 s_1),
        # striate takes the SVD instead: the floor does not
        inexact = _needs_svd(lam[::-1], rank_tolerance(m.shape, SpectrumConfig()))
        return {"name": name.replace(".", "_"), "s1": float(np.sqrt(lam[-1])), "svd": inexact}

    return read_then_map(model, s1, jobs)


MODES = {
    "weightwatcher defaults": lambda model: run_weightwatcher(model),
    "weightwatcher mp_fit=True": lambda model: run_weightwatcher(model, mp_fit=True),
    "floor (float64 Gram + eigvalsh)": run_floor,
    "striate": lambda model: run_striate(model),
    "striate gram=float32": lambda model: run_striate(model, gram="float32"),
}
THREADS = {v: "2" for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def child(mode: str, model: str, out: Path) -> None:
    table, times = MODES[mode](model)
    table.to_parquet(out)
    out.with_suffix(".json").write_text(json.dumps(times))


def measure(mode: str, model: str, work: Path) -> tuple[pd.DataFrame, dict[str, float]]:
    slug = "".join(c if c.isalnum() else "_" for c in mode)
    out = work / f"{slug}-{Path(model).name.replace(':', '_')}.parquet"
    env = os.environ | THREADS
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", mode, model, str(out)],
                            stdout=subprocess.DEVNULL, env=env)  # fmt: skip
    status, peak_mb = wait_peak(proc.pid)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{mode} on {model} failed (status {status})")
    times = json.loads(out.with_suffix(".json").read_text())
    times |= {"wall_s": wall, "peak_mb": peak_mb}
    return pd.read_parquet(out), times


def agreement(ours: pd.DataFrame, theirs: pd.DataFrame) -> dict[str, float]:
    """Largest relative differences of `ours` from WeightWatcher's table `theirs`."""
    theirs = theirs.rename(columns={"alpha": "alpha_ww", "stable_rank": "stable_rank_ww",
                                    "spectral_norm": "lambda_1_ww"})  # fmt: skip
    if "s1" not in ours:  # WeightWatcher's own table: its spectral_norm is lambda_1
        ours = ours.assign(s1=np.sqrt(ours["spectral_norm"].astype(float)))
    t = ours.merge(theirs[["name", "alpha_ww", "stable_rank_ww", "lambda_1_ww"]], on="name")

    def worst(a: Any, b: Any) -> float:
        a, b = np.asarray(a, float), np.asarray(b, float)
        ok = np.isfinite(a) & np.isfinite(b)
        return float(np.max(np.abs(a[ok] - b[ok]) / np.abs(b[ok]))) if ok.any() else float("nan")

    return {
        key: worst(t[key], t[f"{key}_ww"]) if key in ours else float("nan")
        for key in ("alpha", "stable_rank")
    } | {"lambda_1": worst(t["s1"] ** 2, t["lambda_1_ww"]), "matrices": len(t)}


def markdown(rows: list[dict[str, Any]]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(str(r[k]) for k in head) + " |" for r in rows])


def model_path(name: str, work: Path) -> str:
    if name in SYNTHETIC:
        sys.path.insert(0, str(HERE))
        from synthetic import write_llama

        folder = work / name
        if not (folder / "config.json").is_file():
            print(f"writing the synthetic {name} into {folder} ...", flush=True)
            write_llama(folder, **SYNTHETIC[name])
        return str(folder)
    return f"sample:{name}"


def compare(models: list[str], work: Path) -> list[dict[str, Any]]:
    """One row per model and mode: in-call and whole-process times, against WeightWatcher's
    defaults and the floor, peak memory and agreement with WeightWatcher's defaults."""
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in models:
        model = model_path(name, work)
        results = {mode: measure(mode, model, work) for mode in MODES}
        ww_table, ww_times = results["weightwatcher defaults"]
        floor_table, floor_times = results["floor (float64 Gram + eigvalsh)"]
        floor = floor_times["analyze_s"]
        inexact = int(floor_table["svd"].sum())
        for mode, (table, times) in results.items():
            agree = agreement(table, ww_table)
            rows.append({
                "model": name, "matrices": agree["matrices"], "run": mode,
                "read s": round(times["load_s"], 2),
                "in-call s": round(times["analyze_s"], 2),
                "whole process s": round(times["wall_s"], 1),
                "WeightWatcher defaults / this, whole process":
                    round(ww_times["wall_s"] / times["wall_s"], 1),
                "this / floor, in-call": round(times["analyze_s"] / floor, 2),
                "matrices the Gram loses (SVD in striate)": inexact,
                "peak MB": round(times["peak_mb"]),
                "max rel diff from WeightWatcher: alpha": f"{agree['alpha']:.1e}",
                "stable rank": f"{agree['stable_rank']:.1e}",
                "lambda_1": f"{agree['lambda_1']:.1e}",
            })  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="minilm,smollm2,llama374m")
    ap.add_argument("--work", type=Path, default=Path("/tmp/striate-bench"))
    ap.add_argument("--markdown", type=Path, default=None)
    ap.add_argument("--child", nargs=3, metavar=("MODE", "MODEL", "OUT"), default=None)
    a = ap.parse_args()
    if a.child:
        child(a.child[0], a.child[1], Path(a.child[2]))
        return
    rows = compare(a.models.split(","), a.work)
    table = markdown(rows)
    print(table)
    if a.markdown:
        a.markdown.write_text(table + "\n")


if __name__ == "__main__":
    main()
