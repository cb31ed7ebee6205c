"""Cost of a full scan against model size, up to models bigger than a third of RAM.

    .venv/bin/python benchmarks/scale.py [--sizes 10m,100m,500m,2b] [--big] [--work DIR]

For each size a synthetic LLaMA-shaped bf16 checkpoint (sharded safetensors, `synthetic.py`) is
generated (not kept in git), read once from disk cold (page cache dropped for its files with
posix_fadvise) and warm, and scanned by `striate scan --no-images --jobs 2` in a child process
whose own peak resident memory (VmHWM) is polled. `--big` adds a model of at least 8 GB (4.3 B
parameters, hidden 1024 so its largest tensor stays 65 MB) to show that peak memory follows the
largest tensor, not the model. Beside each scan, the compute floor of its spectra
(`floor_seconds`: float64 Gram + `eigvalsh` of the same matrices, 2 BLAS threads, reading
apart): no exact full spectrum on this machine is faster. Prints a table and draws
docs/images/bench_scale.png.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from synthetic import llama_shapes, n_params, write_llama  # noqa: E402

#: size name -> (hidden, layers, vocab)
SIZES = {
    "10m": (256, 8, 16000),
    "100m": (768, 12, 32000),
    "500m": (1024, 36, 32000),
    "2b": (2048, 32, 32000),
    "8gb": (1024, 330, 32000),
}


def drop_cache(files: list[Path]) -> None:
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_all(files: list[Path]) -> float:
    """Seconds to read every byte of `files` once, in 16 MiB chunks."""
    start = time.perf_counter()
    buf = bytearray(16 << 20)
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass
    return time.perf_counter() - start


def scan(model: str | Path, out: Path, *options: str, command: str = "scan") -> dict[str, float]:
    """`striate COMMAND MODEL --out OUT --quiet --no-resume OPTIONS` in a child process: wall
    seconds and peak resident MB (`wait_peak`); the run's manifest is in OUT."""
    cmd = [sys.executable, "-m", "striate", command, str(model), "--out", str(out), "--quiet",
           "--no-resume", *options]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    status, peak_mb = wait_peak(proc.pid)
    if status != 0:
        raise SystemExit(f"{command} of {model} failed (status {status})")
    return {"scan_s": time.perf_counter() - start, "peak_mb": peak_mb}


def wait_peak(pid: int) -> tuple[int, float]:
    """Wait for child `pid`: its exit status and peak resident MB (VmHWM, polled every 50 ms).

    Not wait4's ru_maxrss: Linux carries the resident peak of the process that forked the
    child across exec, so a child of a large benchmark process reports that process's size.
    VmHWM belongs to the child's own address space."""
    peak_kb = 0
    while True:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status, peak_kb / 1024
        time.sleep(0.05)


def floor_seconds(folder: Path) -> float:
    """The compute floor of the scan's spectra: the float64 Gram and LAPACK's `eigvalsh` of
    every matrix the scan takes a spectrum of, on 2 BLAS threads, each matrix read first and
    only the two steps timed (reading, conversion and every other analysis left out)."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    from striate.analyses.spectrum import SpectrumConfig, as_matrix, skip_reason
    from striate.anatomy import anatomy_of
    from striate.checkpoint import open_checkpoint

    config, total = SpectrumConfig(), 0.0
    with open_checkpoint(folder) as ckpt, threadpool_limits(2):
        anat = anatomy_of(ckpt)
        for name in ckpt.names():
            m = as_matrix(ckpt.read(name), anat[name].layout)
            if m is None or skip_reason(m.shape, config) is not None:
                continue
            m = np.asarray(m, dtype=np.float64)
            start = time.perf_counter()
            np.linalg.eigvalsh(m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T)
            total += time.perf_counter() - start
    return total


def measure(name: str, work: Path) -> dict[str, Any]:
    hidden, layers, vocab = SIZES[name]
    folder = work / f"llama-{name}"
    if not (folder / "config.json").is_file():
        print(f"writing {name} into {folder} ...", flush=True)
        write_llama(folder, hidden, layers, vocab=vocab)
    files = sorted(folder.glob("*.safetensors"))
    nbytes = sum(f.stat().st_size for f in files)
    largest = max(2 * int(np.prod(s)) for _, s in llama_shapes(hidden, layers, vocab=vocab))
    drop_cache(files)
    cold = read_all(files)
    warm = read_all(files)
    drop_cache(files)
    result = scan(folder, work / f"run-{name}", "--no-images", "--jobs", "2")
    floor = floor_seconds(folder)
    row = {
        "model": name, "parameters": n_params(hidden, layers, vocab=vocab), "GB": nbytes / 1e9,
        "largest tensor MB (bf16)": largest / 1e6, "read cold s": cold, "read warm s": warm,
        "scan s": result["scan_s"], "scan MB/s": nbytes / 1e6 / result["scan_s"],
        "spectra floor s": floor, "floor MB/s": nbytes / 1e6 / floor,
        "peak MB": result["peak_mb"],
        "peak / largest (float32)": result["peak_mb"] * 1e6 / (2 * largest),
    }  # fmt: skip
    print(row, flush=True)
    return row


def cell(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.3g}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def figure(rows: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), dpi=120)
    FigureCanvasAgg(fig)
    params = [r["parameters"] for r in rows]
    for k, (key, label) in enumerate(
        [("scan s", "scan wall time, s"), ("peak MB", "peak RSS, MB")]
    ):
        ax = fig.add_subplot(1, 2, k + 1)
        ax.loglog(params, [r[key] for r in rows], "o-")
        if key == "peak MB":
            ax.loglog(params, [2 * r["largest tensor MB (bf16)"] for r in rows], "--",
                      label="largest tensor as float32")  # fmt: skip
            ax.legend(fontsize=8)
        ax.set_xlabel("parameters")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10m,100m,500m,2b")
    ap.add_argument("--big", action="store_true", help="also the >= 8 GB model")
    ap.add_argument("--work", type=Path, default=Path("/tmp/striate-bench"))
    ap.add_argument(
        "--figure", type=Path, default=HERE.parent / "docs" / "images" / "bench_scale.png"
    )
    a = ap.parse_args()
    names = a.sizes.split(",") + (["8gb"] if a.big else [])
    rows = sweep(names, a.work)
    print(markdown(rows))
    figure(rows, a.figure)


def sweep(names: list[str], work: Path) -> list[dict[str, Any]]:
    work.mkdir(parents=True, exist_ok=True)
    return [measure(n, work) for n in names]


def markdown(rows: list[dict[str, Any]]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in r.values()) + " |" for r in rows])


if __name__ == "__main__":
    main()
