"""`striate scan`: stream a checkpoint one tensor at a time through every analysis.

For each tensor: read it (float32, storage coordinates), look its result up in the cache, or
analyse it (`scan.tensor`) and draw its pictures (`scan.images`) on a worker (`scan.workers`).
One failing tensor is recorded in the manifest with its error and the scan goes on. Results are
collected in file order, so the tables do not depend on timing. The model-level passes run as
the tensors stream past (FFN geometry, `scan.ffn`) or at the end (residual dimensions, norm
links, spectra, end figures); the tables, manifest and report are written last.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from striate import store
from striate.analyses.finding import Finding
from striate.analyses.norm_links import norm_links
from striate.analyses.residual import pooled_evidence
from striate.anatomy import Anatomy, TensorAnatomy, anatomy_of
from striate.anatomy.heads import HeadCounts, head_counts
from striate.anatomy.records import READS, WRITES
from striate.checkpoint import Checkpoint, TensorInfo, open_checkpoint
from striate.config import as_dict
from striate.devices import resolve_device
from striate.errors import StriateError
from striate.progress import progress_bar
from striate.report import write_report
from striate.report.curves import CURVE_METRICS, draw_metric
from striate.run import Run, assemble, write_run
from striate.scan.cache import TensorCache
from striate.scan.config import STAGES, ScanConfig
from striate.scan.ffn import FFNCollector, default_layers, ffn_figure_calls, ffn_tables
from striate.scan.heap import HeapTrimmer
from striate.scan.images import IMAGE_COLUMNS, draw_images, uses_matplotlib
from striate.scan.spectra import depth_figure_calls, spectra_table
from striate.scan.tensor import TensorResult, analyse_tensor, base_row, failed_result
from striate.scan.workers import Clock, FigureCall, Workers
from striate.store import Manifest
from striate.threads import auto_jobs, torch_threads

EMBEDS = frozenset({"embedding", "position_embedding"})  # they write the stream's first state


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
    if jobs < 0:
        raise StriateError(f"jobs must be 0 (one per core) or more, got {jobs}")
    jobs = auto_jobs(jobs)
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
                (out_dir / "images").mkdir(parents=True, exist_ok=True)
                cache = TensorCache(out_dir, as_dict(config), reuse=resume)
            if jobs > 1:
                stack.enter_context(torch_threads(1))  # one BLAS/torch thread per job
            draws = out_dir is not None and config.images.enabled
            workers = stack.enter_context(Workers(jobs, draws))
            label = ckpt.path.name if isinstance(model, Checkpoint) else str(model)
            return _Scan(ckpt, label, out_dir, config, cache, workers, tally).run(progress)
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


@dataclass
class _Task:
    """One tensor on its way through the scan: read, then analysed (or taken from the cache)."""

    info: TensorInfo
    part: TensorAnatomy
    position: int  # in the checkpoint's order; it names the tensor's images
    w: np.ndarray | None = None  # its values; None when reading failed
    key: str = ""  # its cache key
    result: TensorResult | None = None  # what the run keeps of it, once known
    hit: bool = False  # the result came from the cache
    future: Future[TensorResult] | None = None  # the analysis running on a worker
    seconds: dict[str, float] = field(default_factory=dict)  # by stage (`STAGES`)

    def done(self) -> bool:
        return self.future is None or self.future.done()

    def outcome(self) -> TensorResult:
        result = self.result if self.future is None else self.future.result()
        assert result is not None
        return result


class _Scan:
    """One scan of an open checkpoint: what it has collected so far, and the steps that fill it."""

    def __init__(
        self,
        ckpt: Checkpoint,
        label: str,
        out_dir: Path | None,
        config: ScanConfig,
        cache: TensorCache | None,
        workers: Workers,
        tally: _Tally,
    ) -> None:
        self.ckpt, self.label, self.out_dir, self.config = ckpt, label, out_dir, config
        self.cache, self.workers, self.tally = cache, workers, tally
        self.anat = anatomy_of(ckpt)
        self.heads = head_counts(ckpt)
        self.manifest = _manifest(ckpt, self.anat, config, self.heads)
        self.rows: list[dict[str, Any]] = []
        self.findings: list[tuple[str, TensorAnatomy, Finding]] = []
        self.spectra: dict[str, np.ndarray] = {}
        self.evidence: list[tuple[str, np.ndarray]] = []  # (read/write/other, (d,) z by dim)
        self.reused = 0
        self.seconds: dict[str, float] = {}
        self.clock = Clock(self.seconds)
        self.figure_layers = list(config.ffn.layers) or default_layers(
            sorted(t.layer for t in self.anat.ffn)
        )
        self.ffn = FFNCollector(
            self.anat, config.ffn, layers=None if config.ffn.enabled else set(),
            similarity_layers=set(self.figure_layers), cache=cache,
        )  # fmt: skip
        self.trim = HeapTrimmer()  # bounded memory: see scan.heap

    def run(self, progress: bool) -> Run:
        started = time.time()
        infos = [self.ckpt.info(n) for n in self.ckpt.names()]
        self.tally.total = len(infos)
        with progress_bar(infos, enabled=progress, label="scanning") as advance:
            queue: deque[_Task] = deque()
            for position, info in enumerate(infos):
                task = self._read(info, position)
                if task.result is None:
                    task.future = self.workers.submit(self._compute, task)
                queue.append(task)
                while len(queue) > self.workers.jobs or (queue and queue[0].done()):
                    advance(self._collect(queue.popleft()))  # in order: not timing-dependent
            while queue:
                advance(self._collect(queue.popleft()))
        run = self._assemble()
        self.manifest.finish(started)
        self.manifest.extra["stage_seconds"] = {
            k: round(self.seconds[k], 3) for k in STAGES if k in self.seconds
        }
        run.manifest = self.manifest.as_dict()
        if self.out_dir is not None:
            write_run(run)
            write_report(run)
        return run

    def _read(self, info: TensorInfo, position: int) -> _Task:
        """Read one tensor and look its result up in the cache. A tensor that cannot be read
        comes back failed; one found in the cache comes back done."""
        task = _Task(info, self.anat[info.name], position)
        clock = Clock(task.seconds)
        try:
            with clock("read"):
                task.w = self.ckpt.read(info.name)
            if self.cache is not None:
                facts = (position, info.name, info.shape, info.dtype, info.nbytes,
                         info.file.name, info.file_shape, task.part, self.heads)  # fmt: skip
                with clock("cache_key"):
                    task.key = self.cache.key(*facts, values=task.w)
                    task.result = self.cache.get(task.key)
                task.hit = task.result is not None
        except Exception as exc:  # one bad tensor never stops the scan (`tensor.failure`)
            task.result = failed_result(info, task.part, exc)
        return task

    def _compute(self, task: _Task) -> TensorResult:
        """Analyse and draw one tensor that was read; cache the result. Runs on a worker; pure
        but for its files."""
        w, part, config = task.w, task.part, self.config
        assert w is not None
        try:
            result = analyse_tensor(w, part, self.heads, config, task.seconds)
            result.row = base_row(task.info, part) | result.row
            if self.out_dir is not None and config.images.enabled:
                try:
                    with Clock(task.seconds)("images"):
                        result.row |= self.workers.draw(
                            uses_matplotlib(result, config), draw_images, self.out_dir,
                            task.position, w, part, result, self.heads, config,
                        )  # fmt: skip
                except Exception as exc:  # a figure that fails loses only itself
                    if store.disk_full(exc):
                        raise
                    result.status["image_error"] = f"{type(exc).__name__}: {exc}"
            result.row["status"] = "done"
            images = [result.row[c] for c in IMAGE_COLUMNS if result.row.get(c) is not None]
            result.images = dict.fromkeys(images, "")
            if self.cache is not None and "image_error" not in result.status:
                self.cache.put(task.key, result)  # failures are not cached: retried next time
            return result
        except Exception as exc:  # one bad tensor never stops the scan
            return failed_result(task.info, part, exc)

    def _collect(self, task: _Task) -> TensorInfo:
        """Add one finished tensor to the run, in file order."""
        kept = task.outcome()
        name, part = task.info.name, task.part
        self.trim(task.info.nbytes)
        for stage, took in task.seconds.items():
            self.seconds[stage] = self.seconds.get(stage, 0.0) + took
        if not kept.failed and task.w is not None:
            with self.clock("ffn"):
                self.ffn.offer(name, task.w, task.key)
        task.w = None
        self.rows.append(kept.row)
        self.findings.extend((name, part, f) for f in kept.findings)
        if kept.singular_values is not None:
            self.spectra[name] = kept.singular_values
        if kept.residual_z is not None and kept.residual_z.size == self.anat.hidden_size:
            role = part.role
            tag = "read" if role in READS else "write" if role in WRITES | EMBEDS else "other"
            self.evidence.append((tag, kept.residual_z))
        self.manifest.tensors[name] = kept.status
        self.reused += task.hit
        self.tally.done += 1
        return task.info

    def _assemble(self) -> Run:
        """The tables of the run, once every tensor is in; the end-of-scan figures."""
        config, manifest, anat = self.config, self.manifest, self.anat
        with self.clock("ffn"):
            self.ffn.finish()
        evidence = pooled_evidence(self.evidence)
        run = assemble(self.rows, self.findings, {}, self.out_dir, evidence, config.residual)
        run.ffn, run.ffn_layers = ffn_tables(self.ffn)
        run.spectra = spectra_table(self.spectra)
        run.norm_links = norm_links(run.findings, run.tensors, anat.family, anat.hidden_size)
        skipped = {str(k): v for k, v in self.ffn.skipped.items()}
        manifest.extra["ffn_skipped"] = skipped
        manifest.extra["cache"] = {
            "reused": self.reused,
            "computed": self.tally.total - self.reused,
        }
        out_dir, cache = self.out_dir, self.cache
        if out_dir is not None and cache is not None and config.images.enabled:
            layers, ffn = self.figure_layers, self.ffn
            figures = {
                "ffn": ((self.label, layers, skipped), lambda: ffn_figure_calls(
                    out_dir, ffn, run.ffn, run.ffn_layers, layers, model=self.label)),
                "spectra": ((), lambda: depth_figure_calls(out_dir, run.tensors)),
            }  # fmt: skip
            # the report's curve figures are drawn beside these, in parallel; the report then
            # finds them drawn (`curves.draw_metric` keeps the digest of what each one shows)
            report: list[FigureCall] = [
                (draw_metric, (run.tensors, m, out_dir), {}) for m in CURVE_METRICS
            ]
            with self.clock("end_figures"):
                manifest.figures = cache.figures(
                    figures, lambda calls: self.workers.draw_all(calls + report)
                )
        if cache is not None:
            cache.prune()
        return run


def _manifest(ckpt: Checkpoint, anat: Anatomy, config: ScanConfig, heads: HeadCounts) -> Manifest:
    return Manifest(
        "scan",
        source=str(ckpt.path),
        settings=as_dict(config),
        extra={
            "format": ckpt.format,
            "family": anat.family,
            "n_layers": anat.n_layers,
            "hidden_size": anat.hidden_size,
            "n_heads": heads.n_heads,
            "n_kv_heads": heads.n_kv_heads,
            "files": [{"path": str(f), "bytes": f.stat().st_size} for f in ckpt.files],
        },
    )
