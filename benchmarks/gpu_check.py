"""The GPU check: the CUDA test, then `striate spectra` on cuda against cpu, one summary table.

    python3 benchmarks/gpu_check.py [--smollm2 PATH.gguf] [--synthetic-hidden 1536] [--out DIR]

Run by `benchmarks/gpu_check.sh` on a machine with one CUDA GPU (under 5 minutes there):

1. `pytest tests/test_jobs_and_device.py -k cuda` (the test that compares the torch path on
   cuda with numpy; skipped, and reported so, where torch sees no GPU).
2. `striate spectra` of SmolLM2 (its GGUF; `--smollm2`, else the sample cache) and of a
   synthetic bf16 LLaMA of about 1 GB (`benchmarks/synthetic.py`, made in the work folder),
   each whole process with `--device cpu` and `--device cuda`, fresh caches.
3. Agreement: the largest relative difference of every singular value (`spectra.parquet`)
   and of each spectrum column of `tensors.parquet`, cuda against cpu.

The table (markdown) is printed and written to OUT/gpu_check.md, to be committed to
docs/benchmarks.md by hand with the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
COLUMNS = ("spectral_norm", "stable_rank", "effective_rank", "alpha", "mp_sigma", "n_spikes")


def run(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Wall seconds, exit status and the last lines of output of `command`."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-3:])
    return time.perf_counter() - started, done.returncode, tail


def spectra(model: str, device: str, out: Path) -> tuple[float, int, str]:
    return run([sys.executable, "-m", "striate", "spectra", model, "--device", device,
                "--out", str(out), "--no-resume", "--quiet"])  # fmt: skip


def agreement(cpu: Path, cuda: Path) -> dict[str, float]:
    """Largest relative difference, cuda against cpu: singular values, then each column."""
    a = pd.read_parquet(cpu / "spectra.parquet").set_index(["tensor", "k"])["sigma"]
    b = pd.read_parquet(cuda / "spectra.parquet").set_index(["tensor", "k"])["sigma"]
    a, b = a.align(b)
    scale = a.groupby(level="tensor").transform("max")  # relative to each matrix's s_1
    out = {"sigma / s_1": float(np.nanmax(np.abs(a - b) / scale))}
    ta = pd.read_parquet(cpu / "tensors.parquet").set_index("name")
    tb = pd.read_parquet(cuda / "tensors.parquet").set_index("name").reindex(ta.index)
    for column in COLUMNS:
        if column in ta:
            x, y = ta[column].astype(float), tb[column].astype(float)
            rel = np.abs(x - y) / np.maximum(np.abs(x), 1e-300)
            out[column] = float(np.nanmax(rel)) if rel.notna().any() else float("nan")
    return out


def smollm2(path: str | None) -> str:
    if path:
        return path
    from striate.samples import sample_path

    return str(sample_path("smollm2", quiet=True))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smollm2", help="SmolLM2's GGUF (default: the sample cache)")
    parser.add_argument("--synthetic-hidden", type=int, default=1536)
    parser.add_argument("--synthetic-layers", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("/tmp/striate-gpu-check"))
    args = parser.parse_args(argv)
    work: Path = args.out
    work.mkdir(parents=True, exist_ok=True)
    lines = ["| step | cpu s | cuda s | speed-up | largest relative difference, cuda vs cpu |",
             "| --- | ---: | ---: | ---: | --- |"]  # fmt: skip

    seconds, status, tail = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                 "tests/test_jobs_and_device.py", "-k", "cuda", "-rs"])  # fmt: skip
    print(f"CUDA test ({seconds:.0f} s, exit {status}):\n{tail}", flush=True)
    lines.append(f"| CUDA test | | {seconds:.1f} | | exit {status}: "
                 f"{tail.splitlines()[-1] if tail else ''} |")  # fmt: skip

    synthetic = work / "synthetic"
    if not (synthetic / "config.json").exists():
        shape = ["--hidden", str(args.synthetic_hidden), "--layers", str(args.synthetic_layers)]
        made = run([sys.executable, str(HERE / "synthetic.py"), str(synthetic), *shape])
        print(f"synthetic model made in {made[0]:.0f} s (exit {made[1]})", flush=True)
    size = sum(p.stat().st_size for p in synthetic.glob("*.safetensors")) / 1e9
    models = {"SmolLM2 (GGUF)": smollm2(args.smollm2), f"synthetic {size:.2f} GB": str(synthetic)}
    for label, model in models.items():
        times: dict[str, float] = {}
        for device in ("cpu", "cuda"):
            seconds, status, tail = spectra(model, device, work / f"{label[:8]}-{device}")
            print(f"{label} on {device}: {seconds:.1f} s, exit {status}", flush=True)
            if status:
                print(tail, flush=True)
            times[device] = seconds if status == 0 else float("nan")
        try:
            diff = agreement(work / f"{label[:8]}-cpu", work / f"{label[:8]}-cuda")
            words = ", ".join(f"{k} {v:.1e}" for k, v in diff.items())
        except Exception as exc:  # a failed run leaves no table to compare
            words = f"not compared: {type(exc).__name__}: {exc}"
        speed = times["cpu"] / times["cuda"]
        lines.append(f"| `striate spectra` {label} | {times['cpu']:.1f} | {times['cuda']:.1f} | "
                     f"{speed:.1f}x | {words} |")  # fmt: skip
    table = "\n".join(lines)
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    report = f"GPU: {gpu}; CPU cores: {os.cpu_count()}; whole process, fresh caches.\n\n{table}\n"
    (work / "gpu_check.md").write_text(report, encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
