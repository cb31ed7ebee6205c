"""Wall time of `--executor local` against `--executor ray` (a local instance of N workers).

    .venv/bin/python benchmarks/executor.py [--workers 2] [--rounds 3]

Two scenarios: the one of `tests/test_executor.py` (track of 4 small checkpoints, the
`reconstruction` quick lab at 200 steps, scan of two 8-tensor models), and a scan of 4
LLaMA-shaped models (hidden 384, FFN 1024, 16 tensors, 17 MB each), without images. The first
round starts the Ray workers (they import striate and torch) and is printed apart; the local
runs use the machine's BLAS threads unless OMP_NUM_THREADS says otherwise. docs/scale-out.md
has the numbers of the development machine.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_executor as scenario  # its tiny checkpoints, models and lab

from striate.config import apply_overrides
from striate.executor import Executor, make_executor
from striate.lab import run_lab
from striate.scan import ScanConfig, scan_many
from striate.track import track

NO_IMAGES = apply_overrides(ScanConfig(), ["images.enabled=false"])


def _clock(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _round(
    ex: Executor, d: Path, series: list[str], small: list[str], large: list[str]
) -> list[float]:
    """Seconds of: track, lab, scan of the 2 small models, scan of the 4 LLaMA-shaped ones."""
    lab, overrides = scenario.LAB
    steps = [0, 10, 20, 30]
    return [
        _clock(lambda: track(series, d / "track", steps=steps, executor=ex)),
        _clock(lambda: run_lab(lab, d / "lab", overrides=overrides, executor=ex)),
        _clock(lambda: scan_many(small, [d / "s0", d / "s1"], config=NO_IMAGES, executor=ex)),
        _clock(
            lambda: scan_many(
                large, [d / f"l{i}" for i in range(len(large))], config=NO_IMAGES, executor=ex
            )
        ),
    ]


def _llama(path: Path, rng: np.random.Generator, d: int = 384, f: int = 1024) -> str:
    tensors = {"model.embed_tokens.weight": rng.standard_normal((2000, d)),
               "model.norm.weight": np.ones(d)}  # fmt: skip
    for i in range(2):
        p = f"model.layers.{i}."
        tensors |= {p + f"self_attn.{x}_proj.weight": rng.standard_normal((d, d)) for x in "qkvo"}
        tensors |= {p + "mlp.gate_proj.weight": rng.standard_normal((f, d)),
                    p + "mlp.up_proj.weight": rng.standard_normal((f, d)),
                    p + "mlp.down_proj.weight": rng.standard_normal((d, f))}  # fmt: skip
    save_file({k: v.astype(np.float32) for k, v in tensors.items()}, path)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import ray

    root = Path(tempfile.mkdtemp(prefix="striate-executor-"))
    try:
        paths = scenario._write_series(root / "ckpts")
        series = [str(p) for p in [*paths, paths[-1]]]
        small = scenario._write_models(root / "small")
        rng = np.random.default_rng(0)
        large = [_llama(root / f"m{i}.safetensors", rng) for i in range(4)]
        start = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        print(f"ray.init(num_cpus={args.workers}): {time.perf_counter() - start:.2f} s")
        executors = {"local": Executor(), "ray": make_executor("ray")}
        print("round  executor   track     lab  scan-2-small  scan-4-llama  (seconds)")
        for r in range(args.rounds + 1):
            for name, ex in executors.items():
                times = _round(ex, root / f"{r}-{name}", series, small, large)
                tag = "cold" if r == 0 else str(r)
                print(f"{tag:5s}  {name:8s}  " + "  ".join(f"{t:6.2f}" for t in times))
        ray.shutdown()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
