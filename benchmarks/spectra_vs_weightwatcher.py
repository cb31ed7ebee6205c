"""striate's spectral metrics against WeightWatcher's `analyze()`, on the same matrices.

    .venv/bin/python benchmarks/spectra_vs_weightwatcher.py [--models minilm,smollm2,llama374m]

Each (tool, model) runs in its own process, so its peak resident memory (VmHWM, polled:
`scale.wait_peak`) is its own. The matrices are the same for both: every 2-D linear weight
inside a layer (as `tests/test_weightwatcher.py` compares them). WeightWatcher 0.7.7 gets them as an
`nn.Sequential` of bias-free `nn.Linear` (its load time is reported apart: a user of it has the
model in memory already) and runs `analyze(mp_fit=True)`; striate reads each tensor from the
checkpoint and computes the spectrum columns of tensors.parquet (`singular_values` +
`spectrum_metrics`: the code `striate scan` runs) as `scan --jobs 2` does: reading overlapped
with two computing threads of one BLAS thread each. WeightWatcher uses the machine's BLAS
threads (2).
Agreement: the largest relative difference of alpha, of stable rank, and of lambda_1 = s_1^2.

Prints one table and, with --markdown FILE, writes it there too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
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


def run_striate(model: str, jobs: int = 2) -> tuple[pd.DataFrame, dict[str, float]]:
    """As `striate scan --jobs 2` computes spectra: the main thread reads the next tensor while
    `jobs` threads (one BLAS thread each) compute; `floor` = the rank tolerance, as the scan."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    import striate
    from striate.analyses.spectrum import (
        SpectrumConfig,
        as_matrix,
        rank_tolerance,
        singular_values,
        spectrum_metrics,
    )

    config = SpectrumConfig()

    def metrics(name: str, w: np.ndarray) -> dict[str, Any]:
        m = as_matrix(w, "linear")
        assert m is not None
        s = singular_values(m, floor=rank_tolerance(m.shape, config))
        return {"name": name.replace(".", "_"), **spectrum_metrics(s, m.shape, config)}

    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    pending: deque[Future[dict[str, Any]]] = deque()
    with striate.open(model) as ckpt, threadpool_limits(1), ThreadPoolExecutor(jobs) as pool:
        for name in matrices(ckpt):
            if len(pending) > jobs:  # at most jobs + 1 tensors in memory
                rows.append(pending.popleft().result())
            pending.append(pool.submit(metrics, name, ckpt.read(name)))
        rows += [f.result() for f in pending]
    table = pd.DataFrame(rows).rename(columns={"spectral_norm": "s1"})
    return table, {"load_s": 0.0, "analyze_s": time.perf_counter() - start}


def run_weightwatcher(model: str) -> tuple[pd.DataFrame, dict[str, float]]:
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
    table = ww.WeightWatcher(model=net).analyze(mp_fit=True, randomize=False)
    done = time.perf_counter()
    return table, {"load_s": loaded - start, "analyze_s": done - loaded}


def child(tool: str, model: str, out: Path) -> None:
    table, times = (run_striate if tool == "striate" else run_weightwatcher)(model)
    table.to_parquet(out)
    out.with_suffix(".json").write_text(json.dumps(times))


def measure(tool: str, model: str, work: Path) -> tuple[pd.DataFrame, dict[str, float]]:
    out = work / f"{tool}-{Path(model).name.replace(':', '_')}.parquet"
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", tool, model, str(out)], stdout=subprocess.DEVNULL
    )
    start = time.perf_counter()
    status, peak_mb = wait_peak(proc.pid)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{tool} on {model} failed (status {status})")
    times = json.loads(out.with_suffix(".json").read_text())
    times |= {"wall_s": wall, "peak_mb": peak_mb}
    return pd.read_parquet(out), times


def agreement(ours: pd.DataFrame, theirs: pd.DataFrame) -> dict[str, float]:
    t = ours.merge(theirs, on="name", suffixes=("", "_ww"))

    def worst(a: Any, b: Any) -> float:
        a, b = np.asarray(a, float), np.asarray(b, float)
        ok = np.isfinite(a) & np.isfinite(b)
        return float(np.max(np.abs(a[ok] - b[ok]) / np.abs(b[ok]))) if ok.any() else float("nan")

    return {
        "matrices": len(t),
        "alpha": worst(t["alpha"], t["alpha_ww"]),
        "stable_rank": worst(t["stable_rank"], t["stable_rank_ww"]),
        "lambda_1": worst(t["s1"] ** 2, t["spectral_norm"]),
    }


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
    """One row per model: times, peak memory and agreement of both tools."""
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in models:
        model = model_path(name, work)
        ours, t_ours = measure("striate", model, work)
        theirs, t_ww = measure("weightwatcher", model, work)
        agree = agreement(ours, theirs)
        rows.append({
            "model": name, "matrices": agree["matrices"],
            "weightwatcher analyze s": round(t_ww["analyze_s"], 1),
            "(its model load s)": round(t_ww["load_s"], 1),
            "striate s": round(t_ours["analyze_s"], 1),
            "speed-up": round(t_ww["analyze_s"] / t_ours["analyze_s"], 1),
            "weightwatcher peak MB": round(t_ww["peak_mb"]),
            "striate peak MB": round(t_ours["peak_mb"]),
            "max rel diff alpha": f"{agree['alpha']:.1e}",
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
    ap.add_argument("--child", nargs=3, metavar=("TOOL", "MODEL", "OUT"), default=None)
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
