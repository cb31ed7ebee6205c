"""`striate.diff(a, b)`: stream two models tensor by tensor, compare each matched pair, and
collect the tables (`DiffRun`), written to a run directory when `out` is given.

As the scan streams one model: for each pair, in A's order, both tensors are read here (one of
each model in memory, plus one pair per extra job), looked up in the cache, or compared on a
worker thread (`striate.scan.workers`); results are collected in order, so the tables do not
depend on timing. A pair that cannot be read or compared is recorded with its error and the
diff goes on. The residual tables are pooled at the end; with `out`, the images of the tensors
that changed most (`diff.images`), the tables, the manifest and the report
(`striate.report.diff_html`) are written last.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from striate import store
from striate.anatomy import Anatomy, anatomy_of
from striate.checkpoint import Checkpoint, TensorInfo, open_checkpoint
from striate.config import as_dict
from striate.devices import resolve_device
from striate.diff.blocks import BlockGrid, block_grid
from striate.diff.config import DiffConfig
from striate.diff.images import draw_images
from striate.diff.matching import Matching, Pair, match_tensors, model_heads
from striate.diff.pair import PairResult, compare_pair, failed_pair
from striate.diff.residual import residual_findings, residual_table
from striate.diff.run import DiffRun, assemble
from striate.errors import StriateError
from striate.progress import progress_bar
from striate.report.diff_html import write_diff_report
from striate.scan import ScanInterrupted, TensorResult
from striate.scan.cache import TensorCache
from striate.scan.heap import HeapTrimmer
from striate.scan.workers import Workers
from striate.store import Manifest
from striate.threads import auto_jobs, torch_threads


def diff(
    a: str | Path | Checkpoint,
    b: str | Path | Checkpoint,
    out: str | Path | None = None,
    *,
    config: DiffConfig | None = None,
    jobs: int = 1,
    device: str | None = None,
    progress: bool = False,
    resume: bool = True,
) -> DiffRun:
    """Compare model `b` with model `a` (paths, folders, sample:NAME, hub ids or open
    Checkpoints), tensor by tensor; returns the tables (`DiffRun`).

    With `out`, the run directory is written there and each pair's result is cached in
    `out/.striate-cache/` as soon as it is done: a diff that was stopped continues where it
    stopped, a second diff of unchanged models reuses every result (`resume=False` recomputes).
    `jobs` > 1 compares that many pairs at once in threads while this thread reads the next
    (one BLAS thread each). `device` ("auto", "cpu", "cuda", ...; default
    `config.scan.spectrum.device`) is where the spectra of A and B are computed; the update's
    ranks and the top-k factors run in numpy. Raises StriateError naming both models when they
    have no tensor in common.

        >>> run = striate.diff("sample:minilm", "minilm-q8_0.gguf")  # doctest: +SKIP
        >>> run.tensors[["name", "rel_change", "cosine"]]              # doctest: +SKIP
    """
    config = config or DiffConfig()
    spectrum = config.scan.spectrum
    chosen = resolve_device(spectrum.device if device is None else device)
    config = replace(config, scan=replace(config.scan, spectrum=replace(spectrum, device=chosen)))
    if jobs < 0:
        raise StriateError(f"jobs must be 0 (one per core) or more, got {jobs}")
    jobs = auto_jobs(jobs)
    out_dir = None if out is None else Path(out)
    tally = _Tally()
    try:
        with ExitStack() as stack:
            ckpts = []
            for model in (a, b):
                ckpt = model if isinstance(model, Checkpoint) else open_checkpoint(model)
                if ckpt is not model:
                    stack.enter_context(ckpt)
                ckpts.append(ckpt)
            labels = [str(m.path) if isinstance(m, Checkpoint) else str(m) for m in (a, b)]
            cache = None
            if out_dir is not None:
                stack.enter_context(store.run_lock(out_dir))
                store.remove_temp_files(out_dir)
                (out_dir / "manifest.json").unlink(missing_ok=True)  # written last, when complete
                # which tensors are included or drawn changes no pair's result
                keyed = replace(config, compare=replace(config.compare, include="", images=0))
                cache = TensorCache(out_dir, as_dict(keyed), reuse=resume)
            if jobs > 1:
                stack.enter_context(torch_threads(1))
            workers = stack.enter_context(Workers(jobs, False))
            job = _Diff(ckpts[0], ckpts[1], labels, config, cache, workers, tally)
            return job.run(out_dir, progress)
    except KeyboardInterrupt as exc:  # the CLI prints it and exits 130, as for a scan
        rerun = "; rerun to continue" if out_dir is not None else ""
        message = f"interrupted: {tally.done} of {tally.total} tensors compared{rerun}"
        raise ScanInterrupted(message) from exc
    except OSError as exc:
        if store.disk_full(exc):
            kept = f"{tally.done} tensors compared are kept in the cache"
            where = f"disk full while writing {exc.filename}; {kept}"
            raise StriateError(where, path=out_dir, hint="free space and run again") from exc
        raise


@dataclass
class _Tally:
    done: int = 0
    total: int = 0


@dataclass
class _Task:
    """One pair on its way: read, then compared (or taken from the cache)."""

    pair: Pair
    w_a: np.ndarray | None = None
    w_b: np.ndarray | None = None
    key: str = ""
    result: TensorResult | None = None  # the cache's form of a `PairResult`
    hit: bool = False
    future: Future[TensorResult] | None = None

    def done(self) -> bool:
        return self.future is None or self.future.done()

    def outcome(self) -> PairResult:
        result = self.result if self.future is None else self.future.result()
        assert result is not None
        return PairResult.from_entry(result)


def in_order(tasks: Iterable[_Task], jobs: int) -> Iterator[_Task]:
    """The tasks of `tasks` (started as they are drawn) in their order, each once it is done,
    with at most `jobs` + 1 started and not yet given back: the tables do not depend on
    timing, and memory holds a bounded number of pairs."""
    pending: deque[_Task] = deque()
    for task in tasks:
        pending.append(task)
        while pending and (len(pending) > jobs or pending[0].done()):
            yield pending.popleft()
    yield from pending


def _side(ckpt: Checkpoint, anat: Anatomy, label: str) -> dict[str, Any]:
    """What the manifest says of one model."""
    return {
        "source": label,
        "path": str(Path(ckpt.path).resolve()),  # the viewer opens it from anywhere
        "format": ckpt.format,
        "family": anat.family,
        "n_tensors": len(ckpt.names()),
        "files": [{"path": str(f), "bytes": f.stat().st_size} for f in ckpt.files],
    }


def no_common_tensor(labels: list[str], a: Checkpoint, b: Checkpoint, found: Matching) -> str:
    """The one-line reason two models have no pair to compare."""
    shapes = [r for r in found.unmatched if r["reason"].startswith("shape")]
    if shapes:
        return (f"{len(shapes)} tensors share a name but none has the same shape, e.g. "
                f"{shapes[0]['name']!r}: {shapes[0]['reason']}")  # fmt: skip
    first = [next(iter(c.names()), None) for c in (a, b)]
    n_a, n_b = len(a.names()), len(b.names())
    return (f"no tensor in common between {labels[0]} ({n_a} tensors, e.g. {first[0]!r}) "
            f"and {labels[1]} ({n_b} tensors, e.g. {first[1]!r})")  # fmt: skip


class _Diff:
    """One diff of two open checkpoints: the pairs, and what has been collected of them."""

    def __init__(
        self,
        a: Checkpoint,
        b: Checkpoint,
        labels: list[str],
        config: DiffConfig,
        cache: TensorCache | None,
        workers: Workers,
        tally: _Tally,
    ) -> None:
        self.a, self.b, self.config, self.cache = a, b, config, cache
        self.workers, self.tally = workers, tally
        anat_a, anat_b = anatomy_of(a), anatomy_of(b)
        self.heads = model_heads(a, b)
        found = match_tensors(a, b, anat_a, anat_b, self.heads)
        include = config.compare.include
        self.pairs = [p for p in found.pairs if re.search(include, p.name)]
        self.unmatched = [r for r in found.unmatched
                          if re.search(include, r["name"] or r["name_b"])]  # fmt: skip
        if not self.pairs:
            reason = (f"no matched tensor of A matches compare.include {include!r}"
                      if found.pairs else no_common_tensor(labels, a, b, found))  # fmt: skip
            raise StriateError(
                f"cannot diff {labels[0]} and {labels[1]}: {reason}",
                hint="diff compares two versions of one model; names are matched as they "
                "are, or between Hugging Face and GGUF names through the gguf package's map",
            )
        self.hidden = anat_a.hidden_size or anat_b.hidden_size
        self.grids = {
            p.name: block_grid(p, a.format, b.format, config.compare.block) for p in self.pairs
        }
        self.manifest = Manifest("diff", source=labels[0], settings=as_dict(config), extra={
            "a": _side(a, anat_a, labels[0]),
            "b": _side(b, anat_b, labels[1]),
            "name_mapping": found.mapping,
            "n_matched": len(self.pairs),
            "n_unmatched": len(self.unmatched),
            "n_excluded": len(found.pairs) - len(self.pairs),
            "hidden_size": self.hidden,
        })  # fmt: skip
        self.rows: list[dict[str, Any]] = []
        self.findings: list[dict[str, Any]] = []
        self.blocks: list[dict[str, Any]] = []
        self.evidence: list[dict[str, Any]] = []
        self.reused = 0
        self.trim = HeapTrimmer()

    def run(self, out_dir: Path | None, progress: bool) -> DiffRun:
        started = time.time()
        self.tally.total = len(self.pairs)
        infos = [p.info_a for p in self.pairs]
        with progress_bar(infos, enabled=progress, label="diffing") as advance:
            started_tasks = (self._start(pair) for pair in self.pairs)
            for task in in_order(started_tasks, self.workers.jobs):
                advance(self._collect(task))
        residual = residual_table(self.evidence, self.hidden)
        self.findings += residual_findings(self.evidence, self.hidden, self.config)
        for row in self.unmatched:
            key = row["name"] if row["name"] is not None else row["name_b"]
            key = f"{key} (B)" if key in self.manifest.tensors else key
            self.manifest.tensors[key] = {"status": "skipped", "reason": row["reason"]}
        self.manifest.extra["cache"] = {"reused": self.reused,
                                        "computed": self.tally.total - self.reused}  # fmt: skip
        self.manifest.finish(started)
        run = assemble(out_dir, self.manifest.as_dict(), self.rows, self.findings, self.blocks,
                       self.unmatched, residual)  # fmt: skip
        if out_dir is not None:
            self._images(run, out_dir)
            run.write()
            write_diff_report(out_dir, run.manifest, run.report_tables())
        if self.cache is not None:
            self.cache.prune()
        return run

    def _images(self, run: DiffRun, out_dir: Path) -> None:
        """A, B and B - A of the tensors that changed most, for the report (`diff.images`)."""
        compare, images = self.config.compare, self.config.scan.images
        run.manifest["images"] = draw_images(
            out_dir, run.tensors, run.blocks, self.a, self.b, self.pairs, self.heads,
            n=compare.images, max_pixels=images.max_pixels,
        )  # fmt: skip

    def _grid(self, pair: Pair) -> BlockGrid | None:
        return self.grids[pair.name]

    def _start(self, pair: Pair) -> _Task:
        """Read `pair`; compare it on a worker unless the cache has its result."""
        task = self._read(pair)
        if task.result is None:
            task.future = self.workers.submit(self._compute, task)
        return task

    def _read(self, pair: Pair) -> _Task:
        """Read both tensors of `pair` and look their result up in the cache."""
        task = _Task(pair)
        try:
            task.w_a = self.a.read(pair.name)
            task.w_b = self.b.read(pair.name_b)
            if self.cache is not None:
                ia, ib = pair.info_a, pair.info_b
                facts = (pair.name, pair.name_b, ia.shape, ia.dtype, ib.shape, ib.dtype,
                         pair.part, pair.transposed, pair.rope_heads, pair.rope_undo,
                         self.heads, self._grid(pair))  # fmt: skip
                key_a = self.cache.key("a", *facts, values=task.w_a)
                key_b = self.cache.key("b", *facts, values=task.w_b)
                task.key = self.cache.derived_key("diff", key_a, key_b)
                task.result = self.cache.get(task.key)
                task.hit = task.result is not None
        except Exception as exc:  # one bad tensor never stops the diff (`scan.tensor.failure`)
            task.result = failed_pair(pair, exc).entry()
        return task

    def _compute(self, task: _Task) -> TensorResult:
        """Compare one pair that was read; cache the result. Runs on a worker."""
        assert task.w_a is not None and task.w_b is not None
        try:
            result = compare_pair(
                task.w_a, task.w_b, task.pair, self.heads, self.config, self._grid(task.pair)
            ).entry()
        except Exception as exc:  # one bad tensor never stops the diff
            return failed_pair(task.pair, exc).entry()
        if self.cache is not None:
            self.cache.put(task.key, result)
        return result

    def _collect(self, task: _Task) -> TensorInfo:
        """Add one finished pair to the diff, in A's order."""
        kept = task.outcome()
        task.w_a = task.w_b = None
        self.trim(task.pair.info_a.nbytes + task.pair.info_b.nbytes)
        self.rows.append(kept.row)
        self.findings += kept.findings
        self.blocks += kept.blocks
        if kept.evidence is not None:
            self.evidence.append(kept.evidence)
        self.manifest.tensors[task.pair.name] = kept.status
        self.reused += task.hit
        self.tally.done += 1
        return task.pair.info_a
