"""A setting over several seeds: each seed a whole run of its own, the claims decided over all.

    striate experiment grokking --preset full --seeds 3 --out runs/grok

trains seeds 0, 1 and 2 as independent tasks of an executor (`striate.executor`: here in turn,
or on a Ray cluster), each into `runs/grok/seeds/seed_000/` and so on, a complete run with its
own summary.json, claims.json and report. The run directory then gets claims.json decided over
the seeds (`claims.write_claims`), summary.json with every seed's summary under `per_seed`,
figures (the claims, and the setting's own figures drawing every seed), manifest.json (with
`seeds`) and index.html.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from striate import store
from striate.config import as_dict
from striate.errors import StriateError
from striate.executor import Executor, task_bar
from striate.experiments.claims import draw_claims, write_claims
from striate.experiments.registry import find
from striate.experiments.setting import Kind, Setting, json_ready, resolve_config
from striate.report.claims_html import seed_dir, write_seeds_report
from striate.store import Manifest


def parse_seeds(text: str) -> list[int]:
    """`--seeds`: a count N (seeds 0 .. N-1) or a comma-separated list of seeds.

    >>> parse_seeds("3"), parse_seeds("0,4,7")
    ([0, 1, 2], [0, 4, 7])
    """
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        else:
            seeds = list(range(int(text)))
    except ValueError:
        raise StriateError(
            f"--seeds {text!r} is neither a count nor a list of seeds", hint="--seeds 3 or 0,1,4"
        ) from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise StriateError(
            f"--seeds {text!r}: give at least one seed, each once, none negative",
            hint="--seeds 3 or 0,1,4",
        )
    return seeds


@dataclass(frozen=True)
class SeedRun:
    """One seed's run, as a task an executor can send to another process or node."""

    kind: Kind
    name: str
    out: str
    preset: str
    overrides: tuple[str, ...]
    seed: int
    progress: bool
    device: str | None


def run_seed(task: SeedRun) -> dict[str, Any]:
    """Run one seed into its own folder; return its summary.json."""
    from striate.experiments import run_setting  # the package runs settings; it imports us

    out = run_setting(task.kind, task.name, task.out, preset=task.preset,
                      overrides=task.overrides, seed=task.seed, progress=task.progress,
                      device=task.device)  # fmt: skip
    summary: dict[str, Any] = store.read_json(out / "summary.json")
    return summary


def run_seeds(
    kind: Kind,
    name: str,
    out: str | Path,
    seeds: Sequence[int],
    *,
    preset: str = "quick",
    overrides: Sequence[str] = (),
    progress: bool = False,
    executor: Executor | None = None,
    device: str | None = None,
    resume: bool = False,
) -> Path:
    """Run setting `name` once per seed and decide its claims over the seeds; returns the run
    directory. Experiments send their seeds to `executor` (each seed one task); a lab gives
    `executor` the groups of each seed's sweep, every seed at once when the executor runs
    elsewhere (`_lab_seeds`). `resume`: a seed whose
    folder already holds a finished run of the same settings and code is not run again (a long
    reproduction can be finished over several sittings)."""
    setting = find(kind, name)
    configs = {s: resolve_config(setting, preset, overrides, s) for s in seeds}  # bad --set: now
    config = configs[seeds[-1]]
    out = Path(out)
    started = time.time()
    found = {s: finished_seed(out / seed_dir(s), configs[s]) for s in seeds} if resume else {}
    done = {s: summary for s, summary in found.items() if summary is not None}
    tasks = [SeedRun(kind, name, str(out / seed_dir(s)), preset, tuple(overrides), s, progress,
                     device) for s in seeds if s not in done]  # fmt: skip
    executor = executor or Executor()
    if kind == "lab":
        ran = _lab_seeds(tasks, executor, progress)
    else:
        ran = list(executor.map(run_seed, tasks, label="seeds", progress=False))
    fresh = dict(zip((t.seed for t in tasks), ran, strict=True))
    summaries = [fresh[s] if s in fresh else done[s] for s in seeds]
    return finish_seeds(setting, config, out, list(seeds), summaries, preset, overrides, started)


def _lab_seeds(tasks: list[SeedRun], executor: Executor, progress: bool) -> list[dict[str, Any]]:
    """Run a lab's seeds; each gives `executor` the groups of its sweep. On an executor that
    runs elsewhere every seed's sweep is under way at once (one thread each here), so its
    workers get the groups of all the seeds: a sweep of one group (one shape of fresh batches)
    would otherwise keep one worker busy and the others idle."""
    from striate.experiments import run_setting  # the package runs settings; it imports us

    def one(t: SeedRun, bars: bool) -> dict[str, Any]:
        path = run_setting(t.kind, t.name, t.out, preset=t.preset, overrides=t.overrides,
                           seed=t.seed, progress=bars, executor=executor)  # fmt: skip
        summary: dict[str, Any] = store.read_json(path / "summary.json")
        return summary

    if executor.in_process or len(tasks) < 2:
        return [one(t, progress) for t in tasks]
    bar = task_bar(len(tasks), enabled=progress, label="seeds")  # one bar: of seeds done
    with bar as advance, ThreadPoolExecutor(len(tasks)) as pool:
        futures = [pool.submit(one, t, False) for t in tasks]
        for _ in as_completed(futures):
            advance()
        return [f.result() for f in futures]


def finished_seed(folder: Path, config: Any) -> dict[str, Any] | None:
    """The summary of a seed's run in `folder` when it finished with exactly `config` (the
    settings its manifest records, seed included) and the code of this striate version; else
    None, and the seed is run again."""
    try:
        manifest = store.read_json(folder / "manifest.json")
        summary: dict[str, Any] = store.read_json(folder / "summary.json")
    except (OSError, ValueError):
        return None
    same = (
        manifest.get("settings") == json_ready(as_dict(config))
        and manifest.get("code") == store.code_digest()
    )
    return summary if same and manifest.get("finished") else None


def finish_seeds(
    setting: Setting[Any, Any],
    config: Any,
    out: Path,
    seeds: list[int],
    summaries: list[dict[str, Any]],
    preset: str,
    overrides: Sequence[str],
    started: float,
) -> Path:
    """claims.json, summary.json, figures, manifest.json and index.html of a run over seeds."""
    deviations = setting.deviations(config) if setting.deviations else []
    rows = write_claims(out, setting.claims, summaries, seeds, deviations)
    title = f"{setting.name}: each claim's measure in {len(seeds)} seeds"
    figures = [draw_claims(rows, out / "figures" / "claims.png", title)] if rows else []
    if setting.draw_seeds:
        figures += setting.draw_seeds([out / seed_dir(s) for s in seeds], out / "figures")
    record = Manifest(
        setting.kind,
        source=f"{setting.kind} {setting.name}",
        settings={k: v for k, v in as_dict(config).items() if k != "seed"},
        figures=figures,
        extra={
            "name": setting.name,
            "about": setting.about,
            "preset": preset,
            "overrides": list(overrides),
            "seeds": seeds,
        },
    )
    record.finish(started)
    summary = {setting.kind: setting.name, "preset": preset, "seeds": seeds,
               "wall_time_s": record.seconds,
               "per_seed": {str(s): m for s, m in zip(seeds, summaries, strict=True)}}  # fmt: skip
    store.write_json(out / "summary.json", json_ready(summary))
    write_seeds_report(out, store.write_manifest(out, record))
    return out


__all__ = ["SeedRun", "finish_seeds", "parse_seeds", "run_seed", "run_seeds"]
