"""`striate scan`: stream a checkpoint one tensor at a time through every analysis.

For each tensor: read it (float32, storage coordinates), compute its stats, run the analyses its
anatomy calls for, draw its image, and record its status. One failing tensor is recorded in the
manifest with its error and the scan goes on. The tables are assembled at the end and written
atomically; see `striate.run.Run` for what comes back.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from striate import store
from striate._version import __version__
from striate.analyses import banding as bands
from striate.analyses.banding import Banding, BandingConfig
from striate.analyses.ffn import FFNConfig
from striate.analyses.finding import Finding
from striate.analyses.heads import HeadsConfig, head_blocks
from striate.analyses.hotspots import HotspotsConfig, find_hotspots
from striate.analyses.lines import LinesConfig, analyse_lines
from striate.analyses.nonfinite import NonfiniteConfig, find_nonfinite
from striate.analyses.norms import NormsConfig, find_norm_outliers
from striate.analyses.periodicity import PeriodicityConfig, find_periodic
from striate.analyses.spectrum import (
    SpectrumConfig,
    as_matrix,
    rank_tolerance,
    resolve_device,
    singular_values,
    skip_reason,
    spectrum_metrics,
)
from striate.analyses.stats import tensor_stats
from striate.anatomy import Anatomy, TensorAnatomy, anatomy_of
from striate.anatomy.records import READS, WRITES
from striate.checkpoint import Checkpoint, TensorInfo, open_checkpoint
from striate.config import as_dict
from striate.errors import StriateError
from striate.ffn_scan import FFNCollector, default_layers, ffn_figure_calls, ffn_tables
from striate.heap import HeapTrimmer
from striate.norm_links import norm_links
from striate.progress import progress_bar
from striate.residual import ResidualConfig, pooled_evidence, vector_z
from striate.run import Run, assemble, write_run
from striate.scan_cache import Entry, TensorCache
from striate.scan_workers import Clock, Workers
from striate.spectrum_scan import depth_figure_calls, draw_matrix_spectrum, spectra_table

EMBEDS = frozenset({"embedding", "position_embedding"})  # they write the stream's first state
_HEAD_ROLES = {"attn_q": "q", "attn_k": "kv", "attn_v": "kv", "attn_qkv": "qkv", "attn_out": "q"}


@dataclass(frozen=True)
class ImagesConfig:
    enabled: bool = True  # draw one PNG per tensor into images/
    max_pixels: int = 1024  # longest side of a tensor image after outlier-preserving downsampling
    spectra: bool = False  # also draw each matrix's spectrum into images/spectra/ (~0.5 s each)


@dataclass(frozen=True)
class ScanConfig:
    """Every threshold of a scan; `--set section.field=value` changes one."""

    lines: LinesConfig = field(default_factory=LinesConfig)
    hotspots: HotspotsConfig = field(default_factory=HotspotsConfig)
    norms: NormsConfig = field(default_factory=NormsConfig)
    periodicity: PeriodicityConfig = field(default_factory=PeriodicityConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    nonfinite: NonfiniteConfig = field(default_factory=NonfiniteConfig)
    ffn: FFNConfig = field(default_factory=FFNConfig)
    spectrum: SpectrumConfig = field(default_factory=SpectrumConfig)
    banding: BandingConfig = field(default_factory=BandingConfig)
    residual: ResidualConfig = field(default_factory=ResidualConfig)
    images: ImagesConfig = field(default_factory=ImagesConfig)


@dataclass(frozen=True)
class HeadCounts:
    n_heads: int | None
    n_kv_heads: int | None


@dataclass
class TensorResult:
    """What one tensor contributes to the run: a row of tensors.parquet and its findings."""

    row: dict[str, Any]
    findings: list[Finding]
    singular_values: np.ndarray | None = None  # of the tensor viewed as a matrix, descending
    matrix_shape: tuple[int, int] | None = None  # that matrix's shape
    banding: Banding | None = None  # of a conv kernel of at least min_kernel x min_kernel
    residual_z: np.ndarray | None = None  # (d,) signed z of each residual dim (striate.residual)


def analyse_tensor(
    w: np.ndarray,
    part: TensorAnatomy,
    heads: HeadCounts,
    config: ScanConfig,
    seconds: dict[str, float] | None = None,
) -> TensorResult:
    """Stats and every analysis the tensor's role and shape call for. Pure: no I/O. With
    `seconds`, each analysis adds the time it took under its name (see `STAGES`)."""
    clock = Clock(seconds)
    with clock("stats"):
        row: dict[str, Any] = dict(tensor_stats(w))
        found: list[Finding] = find_nonfinite(w, config.nonfinite)
    if part.role in ("norm", "norm_bias") and w.ndim == 1:
        label = "gain" if part.role == "norm" else "bias"
        with clock("norms"):
            found += find_norm_outliers(w, config.norms, label=label)
    residual_z = None
    if w.ndim >= 2:
        axes = _line_axes(w.ndim, part.layout)
        with clock("lines"):
            lines, z = analyse_lines(w, config.lines, axes=axes)
        found += lines
        if part.residual_axis in z:
            residual_z = z[part.residual_axis]
        with clock("hotspots"):
            found += find_hotspots(w, config.hotspots, axes=axes)
    elif w.ndim == 1 and part.residual_axis == 0:
        residual_z = vector_z(w, config.residual)
    include = config.periodicity.include
    if w.ndim >= 2 and (
        part.role == "position_embedding" or (include and re.search(include, part.name))
    ):
        with clock("periodicity"):
            periodic, _ = find_periodic(w, config.periodicity, position_axis=w.ndim - 2)
        found += periodic
    blocks = head_partition(w, part, heads)
    row["head_score"] = None
    if blocks is not None:
        with clock("heads"):
            by_head = head_blocks(w, blocks[0], blocks[1], config.heads)
        row["head_score"] = float(by_head.score)
        found += by_head.findings
    with clock("banding"):
        banding = _banding(w, part, config.banding, row)
    if banding is not None:
        finding = bands.banding_finding(banding)
        found += [] if finding is None else [finding]
    result = TensorResult(row, found, banding=banding, residual_z=residual_z)
    matrix = as_matrix(w, part.layout)
    row["spectrum_skipped"] = "not a matrix" if matrix is None else None
    if matrix is not None:
        shape = (int(matrix.shape[0]), int(matrix.shape[1]))
        row["spectrum_skipped"] = skip_reason(shape, config.spectrum)
        n_bad = int(row.get("n_nan", 0)) + int(row.get("n_inf", 0))
        if row["spectrum_skipped"] is None and n_bad:
            row["spectrum_skipped"] = f"{n_bad} non-finite values (see the nonfinite finding)"
        if row["spectrum_skipped"] is None:
            with clock("spectrum"):
                result.singular_values = singular_values(
                    matrix, config.spectrum.torch_device(), rank_tolerance(shape, config.spectrum)
                )
                result.matrix_shape = shape
                row |= spectrum_metrics(result.singular_values, shape, config.spectrum)
    return result


#: the parts of a scan timed in the manifest's `stage_seconds`, in pipeline order
STAGES = ("read", "cache_key", "stats", "norms", "lines", "hotspots", "periodicity", "heads",
          "banding", "spectrum", "images", "ffn", "end_figures")  # fmt: skip


def _banding(
    w: np.ndarray, part: TensorAnatomy, config: BandingConfig, row: dict[str, Any]
) -> Banding | None:
    """The banding score of a conv kernel (its columns go into `row`), or None."""
    if not config.enabled or part.role != "conv" or w.ndim != 4:
        return None
    kernels = bands.as_oihw(w, part.layout)
    row["banding_skipped"] = bands.skip_reason(kernels, config)
    if row["banding_skipped"] is not None:
        return None
    b = bands.banding_score(kernels, config)
    row |= b.row()
    return b


def head_partition(w: np.ndarray, part: TensorAnatomy, heads: HeadCounts) -> tuple[int, int] | None:
    """(n_blocks, head_axis) for an attention projection whose head count is known."""
    kind = _HEAD_ROLES.get(part.role)
    if kind is None or w.ndim != 2 or part.residual_axis is None or heads.n_heads is None:
        return None
    n_blocks = {"q": heads.n_heads, "kv": heads.n_kv_heads or heads.n_heads,
                "qkv": 3 * heads.n_heads}[kind]  # fmt: skip
    head_axis = 1 - part.residual_axis
    if n_blocks < 2 or w.shape[head_axis] % n_blocks:
        return None
    return n_blocks, head_axis


def _line_axes(ndim: int, layout: str | None) -> tuple[int, int]:
    """(out axis, in axis) of a tensor as stored; conv kernels keep their layout."""
    if layout == "hwio" and ndim == 4:
        return 3, 2
    if ndim == 3 and layout is None:
        return ndim - 2, ndim - 1  # e.g. ViT position embeddings [1, n, d]
    return 0, 1


def head_counts(ckpt: Checkpoint) -> HeadCounts:
    """Attention head counts from config.json or GGUF metadata, when the file says."""
    config = ckpt.config or {}
    n = config.get("num_attention_heads") or config.get("n_head") or config.get("num_heads")
    kv = config.get("num_key_value_heads")
    arch = ckpt.metadata.get("general.architecture")
    if arch:
        n = n or ckpt.metadata.get(f"{arch}.attention.head_count")
        kv = kv or ckpt.metadata.get(f"{arch}.attention.head_count_kv")
    return HeadCounts(_int_or_none(n), _int_or_none(kv))


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, np.integer)) and int(value) > 0 else None


def image_name(position: int, name: str) -> str:
    """A file name for a tensor's image: its position (unique) and a readable, safe stem."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:120] or "tensor"
    return f"{position:04d}_{stem}.png"


def scan(
    model: str | Path | Checkpoint,
    out: str | Path | None = None,
    *,
    config: ScanConfig | None = None,
    progress: bool = False,
    resume: bool = True,
    jobs: int = 1,
) -> Run:
    """Scan every tensor of `model` (path, folder, sample:NAME, hub id or open Checkpoint).

    With `out`, the run directory is written there (tables, manifest, images), and each tensor's
    result is cached in `out/.striate-cache/` as soon as it is done: a scan that was stopped
    continues where it stopped, and a second scan of an unchanged model with the same settings
    reuses every result. `resume=False` empties the cache first and recomputes every tensor.
    Returns the tables as pandas DataFrames either way.

    `jobs` > 1 analyses that many tensors at once in threads while this thread reads the next
    one (numpy, LAPACK and torch release the GIL) and draws their figures in as many processes:
    at most `jobs` + 1 tensors are in memory here (and one per drawing process), each numeric
    library gets one thread per job, and the tables and pictures are those of `jobs=1`.
    `config.spectrum.device` "auto" is resolved here ("cuda" when torch sees a GPU) and
    recorded in the manifest's settings.
    """
    config = config or ScanConfig()
    config = replace(
        config, spectrum=replace(config.spectrum, device=resolve_device(config.spectrum.device))
    )
    if jobs < 1:
        raise StriateError(f"jobs must be at least 1, got {jobs}")
    out_dir = None if out is None else Path(out)
    tally = _Tally()
    try:
        with ExitStack() as stack:
            ckpt = model if isinstance(model, Checkpoint) else open_checkpoint(model)
            if ckpt is not model:
                stack.enter_context(ckpt)
            cache = None
            if out_dir is not None:
                stack.enter_context(store.run_lock(out_dir))
                store.remove_temp_files(out_dir)
                (out_dir / "manifest.json").unlink(missing_ok=True)  # written last, when complete
                cache = TensorCache(out_dir, as_dict(config), reuse=resume)
            if jobs > 1:
                from striate.threads import torch_threads

                stack.enter_context(torch_threads(1))  # one BLAS/torch thread per job
            draws = out_dir is not None and config.images.enabled
            workers = stack.enter_context(Workers(jobs, draws))
            return _scan(model, ckpt, out_dir, config, progress, cache, tally, workers)
    except KeyboardInterrupt as exc:
        again = "; rerun with --resume" if out_dir is not None else ""
        raise ScanInterrupted(
            f"interrupted: {tally.done} of {tally.total} tensors done{again}"
        ) from exc
    except OSError as exc:
        if not store.disk_full(exc):
            raise
        raise StriateError(
            f"disk full while writing {exc.filename}; {tally.done} tensors done are kept in the "
            "cache",
            path=out_dir,
            hint="free space and rerun with --resume",
        ) from exc


class ScanInterrupted(KeyboardInterrupt):
    """Ctrl-C during a scan; the message says how far it got. The cache keeps what was done."""


@dataclass
class _Tally:
    """How far a scan got, for the messages of an interrupted one."""

    done: int = 0  # tensors finished (with an output directory: their results are cached)
    total: int = 0


def _scan(
    model: str | Path | Checkpoint,
    ckpt: Checkpoint,
    out_dir: Path | None,
    config: ScanConfig,
    progress: bool,
    cache: TensorCache | None,
    tally: _Tally,
    workers: Workers,
) -> Run:
    if out_dir is not None:
        (out_dir / "images").mkdir(parents=True, exist_ok=True)
    anat = anatomy_of(ckpt)
    heads = head_counts(ckpt)
    started = time.time()
    manifest = _manifest_head(ckpt, anat, config, heads)
    rows: list[dict[str, Any]] = []
    findings: list[tuple[str, TensorAnatomy, Finding]] = []
    spectra: dict[str, np.ndarray] = {}
    evidence: list[tuple[str, np.ndarray]] = []  # (read/write/other, (d,) z along the stream)
    names = ckpt.names()
    infos = [ckpt.info(n) for n in names]
    tally.total = len(infos)
    ffn_layers = sorted(t.layer for t in anat.ffn)
    figure_layers = list(config.ffn.layers) or default_layers(ffn_layers)
    collector = FFNCollector(
        anat,
        config.ffn,
        layers=None if config.ffn.enabled else set(),
        similarity_layers=set(figure_layers),
        cache=cache,
    )
    reused = 0
    trim = HeapTrimmer()  # bounded memory: see striate.heap
    seconds: dict[str, float] = {}
    clock = Clock(seconds)
    with progress_bar(infos, enabled=progress, label="scanning") as advance:

        def collect(task: _Task) -> None:
            nonlocal reused
            kept = task.result()
            trim(task.info.nbytes)
            for stage, took in task.seconds.items():
                seconds[stage] = seconds.get(stage, 0.0) + took
            if kept.row["status"] != "failed" and task.w is not None:
                with clock("ffn"):
                    collector.offer(task.info.name, task.w, task.key)
            rows.append(kept.row)
            findings.extend((task.info.name, task.part, f) for f in kept.findings)
            if kept.singular_values is not None:
                spectra[task.info.name] = kept.singular_values
            if kept.residual_z is not None and kept.residual_z.size == anat.hidden_size:
                role = task.part.role
                tag = "read" if role in READS else "write" if role in WRITES | EMBEDS else "other"
                evidence.append((tag, kept.residual_z))
            manifest["tensors"][task.info.name] = kept.status
            reused += task.hit
            tally.done += 1
            advance(task.info)

        queue: deque[_Task] = deque()
        for position, info in enumerate(infos):
            part = anat[info.name]
            task = _read(ckpt, info, position, part, heads, cache)
            if task.entry is None:
                task.future = workers.submit(
                    _compute, task, position, heads, config, out_dir, cache, workers.draw
                )
            queue.append(task)
            while len(queue) > workers.jobs or (queue and queue[0].done()):
                collect(queue.popleft())  # in order: the tables do not depend on timing
        while queue:
            collect(queue.popleft())
    with clock("ffn"):
        collector.finish()
    run = assemble(rows, findings, manifest, out_dir, pooled_evidence(evidence), config.residual)
    run.ffn, run.ffn_layers = ffn_tables(collector)
    run.spectra = spectra_table(spectra)
    run.norm_links = norm_links(run.findings, run.tensors, anat.family, anat.hidden_size)
    manifest["ffn_skipped"] = {str(k): v for k, v in collector.skipped.items()}
    manifest["cache"] = {"reused": reused, "computed": len(infos) - reused}
    if out_dir is not None and cache is not None and config.images.enabled:
        label = _label(model, ckpt)

        figures = {
            "ffn": ((label, figure_layers, manifest["ffn_skipped"]), lambda: ffn_figure_calls(
                out_dir, collector, run.ffn, run.ffn_layers, figure_layers, model=label)),
            "spectra": ((), lambda: depth_figure_calls(out_dir, run.tensors)),
        }  # fmt: skip
        with clock("end_figures"):
            manifest["figures"] = cache.figures(figures, workers.draw_all)
    if cache is not None:
        cache.prune()
    manifest["finished"] = _now()
    manifest["seconds"] = round(time.time() - started, 3)
    manifest["stage_seconds"] = {k: round(seconds[k], 3) for k in STAGES if k in seconds}
    if out_dir is not None:
        from striate.report import write_report

        write_run(run)
        write_report(run)
    return run


@dataclass
class _Task:
    """One tensor on its way through the scan: read, then analysed (or taken from the cache)."""

    info: TensorInfo
    part: TensorAnatomy
    w: np.ndarray | None = None  # its values; None when reading failed
    key: str = ""  # its cache key
    entry: Entry | None = None  # what the run keeps of it, once known
    hit: bool = False  # the entry came from the cache
    future: Future[Entry] | None = None  # the analysis running on a worker
    seconds: dict[str, float] = field(default_factory=dict)  # by stage (`STAGES`)

    def done(self) -> bool:
        return self.future is None or self.future.done()

    def result(self) -> Entry:
        entry = self.entry if self.future is None else self.future.result()
        assert entry is not None
        return entry


def _read(
    ckpt: Checkpoint,
    info: TensorInfo,
    position: int,
    part: TensorAnatomy,
    heads: HeadCounts,
    cache: TensorCache | None,
) -> _Task:
    """Read one tensor and look its result up in the cache. A tensor that cannot be read
    comes back failed; one found in the cache comes back done."""
    task = _Task(info, part)
    clock = Clock(task.seconds)
    try:
        with clock("read"):
            task.w = ckpt.read(info.name)
        if cache is not None:
            facts = (position, info.name, info.shape, info.dtype, info.nbytes, info.file.name,
                     info.file_shape, part, heads)  # fmt: skip
            with clock("cache_key"):
                task.key = cache.key(*facts, values=task.w)
                task.entry = cache.get(task.key)
            task.hit = task.entry is not None
    except Exception as exc:  # one bad tensor never stops the scan
        if store.disk_full(exc):
            raise
        task.entry = _failed(info, part, exc)
    return task


def _compute(
    task: _Task,
    position: int,
    heads: HeadCounts,
    config: ScanConfig,
    out_dir: Path | None,
    cache: TensorCache | None,
    draw: Callable[..., dict[str, str]],
) -> Entry:
    """Analyse and draw one tensor that was read (`draw(_images, ...)` draws); cache the
    result. Pure but for its files."""
    w, part = task.w, task.part
    assert w is not None
    try:
        result = analyse_tensor(w, part, heads, config, task.seconds)
        row = _base_row(task.info, part) | result.row
        status: dict[str, Any] = {"status": "done"}
        if out_dir is not None and config.images.enabled:
            try:
                with Clock(task.seconds)("images"):
                    row |= draw(_images, out_dir, position, w, part, result, heads, config)
            except Exception as exc:  # a figure that fails loses only itself
                if store.disk_full(exc):
                    raise
                status["image_error"] = f"{type(exc).__name__}: {exc}"
        row["status"] = "done"
        images = [row[c] for c in _IMAGE_COLUMNS if row.get(c) is not None]
        kept = Entry(
            row, status, result.findings, result.singular_values, dict.fromkeys(images, ""),
            result.residual_z,
        )  # fmt: skip
        if cache is not None and "image_error" not in status:
            cache.put(task.key, kept)  # failures are not cached: the next scan tries again
        return kept
    except Exception as exc:  # one bad tensor never stops the scan
        if store.disk_full(exc):
            raise
        return _failed(task.info, part, exc)


def _failed(info: TensorInfo, part: TensorAnatomy, exc: Exception) -> Entry:
    message = str(exc) if isinstance(exc, StriateError) else f"{type(exc).__name__}: {exc}"
    row = _base_row(info, part) | {"status": "failed"}
    return Entry(row, {"status": "failed", "error": message}, [])


_IMAGE_COLUMNS = ("image", "spectrum_image", "banding_image")


def _images(
    out_dir: Path,
    position: int,
    w: np.ndarray,
    part: TensorAnatomy,
    result: TensorResult,
    heads: HeadCounts,
    config: ScanConfig,
) -> dict[str, str]:
    """Draw the tensor's image (and its spectrum's and banding's, when asked); the columns
    `image`, `spectrum_image`, `banding_image` with their paths."""
    rel = f"images/{image_name(position, part.name)}"
    _draw(w, out_dir / rel, part, result.findings, heads, config)
    columns = {"image": rel}
    if result.singular_values is not None and config.images.spectra:
        rel = f"images/spectra/{image_name(position, part.name)}"
        draw_matrix_spectrum(out_dir / rel, part.name, result)
        columns["spectrum_image"] = rel
    if result.banding is not None and config.banding.images:
        from striate.banding_scan import draw_layer

        rel = f"images/banding/{image_name(position, part.name)}"
        view = bands.nmf_view(bands.as_oihw(w, part.layout), seed=config.banding.seed)
        draw_layer(out_dir / rel, part.name, view, result.banding)
        columns["banding_image"] = rel
    return columns


def _draw(
    w: np.ndarray,
    path: Path,
    part: TensorAnatomy,
    found: list[Finding],
    heads: HeadCounts,
    config: ScanConfig,
) -> None:
    from striate.render import render_tensor

    periodic = [f.index[-1] for f in found if f.kind == "periodic" and f.index[-1] is not None]
    render_tensor(
        w,
        path,
        title=part.name,
        role=part.role,
        layout=part.layout,
        residual_axis=part.residual_axis,
        findings=found,
        head_blocks=head_partition(w, part, heads),
        periodic_channels=[int(c) for c in periodic[:4]],
        max_pixels=config.images.max_pixels,
    )


def _label(model: str | Path | Checkpoint, ckpt: Checkpoint) -> str:
    """How figures name the model: as the user gave it, or the checkpoint's file name."""
    return ckpt.path.name if isinstance(model, Checkpoint) else str(model)


def _base_row(info: TensorInfo, part: TensorAnatomy) -> dict[str, Any]:
    return {
        "name": info.name,
        "shape": list(info.shape),
        "dtype": info.dtype,
        "role": part.role,
        "layer": part.layer,
        "residual_axis": part.residual_axis,
        "layout": part.layout,
        "file": info.file.name,
        "nbytes": info.nbytes,
        "image": None,
    }


def _manifest_head(
    ckpt: Checkpoint, anat: Anatomy, config: ScanConfig, heads: HeadCounts
) -> dict[str, Any]:
    return {
        "striate_version": __version__,
        "kind": "scan",
        "source": str(ckpt.path),
        "format": ckpt.format,
        "family": anat.family,
        "n_layers": anat.n_layers,
        "hidden_size": anat.hidden_size,
        "n_heads": heads.n_heads,
        "n_kv_heads": heads.n_kv_heads,
        "files": [{"path": str(f), "bytes": f.stat().st_size} for f in ckpt.files],
        "settings": as_dict(config),
        "started": _now(),
        "tensors": {},
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
