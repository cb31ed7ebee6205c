"""The claims contract: verdicts over seeds on planted numbers, claims.json of a run over seeds
checked against each seed's own, and the generated reproduction pages."""

from __future__ import annotations

import dataclasses
import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pictures import assert_drawn
from typer.testing import CliRunner

from striate.cli import app
from striate.errors import StriateError
from striate.executor import Executor
from striate.experiments import pages, parse_seeds, registry, run_experiment, run_setting
from striate.experiments.claims import Claim, Criterion, decide, verdict
from striate.report.claims_html import number

GROW = Claim("grows", "planted", "x grows.", "x", Criterion(">=", 0.5), lambda s: s["x"])


@pytest.mark.parametrize(
    "values,expected",
    [
        ([0.6, 0.7, 0.9], "met"),
        ([0.6, 0.7, 0.1], "mixed"),  # 2 of 3 seeds hold, but not the mean 0.467
        ([0.6, 0.9, 0.1, 0.2], "mixed"),  # 2 of 4 seeds hold: fewer than 2/3
        ([0.6, 0.55, 0.0], "mixed"),  # 2 of 3 hold but the mean 0.383 does not
        ([0.1, 0.2, None], "not met"),
        ([0.9, None, None], "mixed"),  # undefined seeds count as failing
        ([0.7], "met"),
        ([0.4], "not met"),
    ],
)
def test_verdict_rules_on_planted_values(values: list[float | None], expected: str) -> None:
    assert verdict(values, GROW.criterion) == expected


def test_yes_no_and_between_criteria() -> None:
    yes = Criterion("true")
    assert verdict([1.0, 1.0, 0.0], yes) == "met"
    assert verdict([1.0, 0.0, 0.0], yes) == "mixed"
    assert verdict([0.0, 0.0, 0.0], yes) == "not met"
    window = Criterion("between", (0.8, 1.2))
    assert [window.holds(x) for x in (0.79, 0.8, 1.2, 1.21, None, float("nan"))] == [
        False, True, True, False, False, False]  # fmt: skip
    assert verdict([0.9, 1.1, 1.5], window) == "met"  # mean 1.167 inside, 2 of 3 seeds


def test_decide_reports_every_seed_mean_and_sd() -> None:
    summaries: list[dict[str, Any]] = [{"x": 0.9}, {"x": 0.6}, {}, {"x": float("nan")}]
    row = decide(GROW, summaries, deviations=["smaller model"])
    assert row["per_seed"] == [0.9, 0.6, None, None]  # missing and NaN: undefined
    assert row["holds"] == [True, True, False, False]
    assert row["mean"] == pytest.approx(0.75) and row["sd"] == pytest.approx(
        np.std([0.9, 0.6], ddof=1)
    )
    assert row["n_seeds"] == 4 and row["verdict"] == "mixed"  # 2 of 4 seeds < 2/3
    assert row["criterion"] == "grows >= 0.5" and row["deviations"] == ["smaller model"]
    one = decide(GROW, [{"x": True}])
    assert one["per_seed"] == [1.0] and one["sd"] == 0.0 and one["verdict"] == "met"


def test_parse_seeds_and_option_errors(tmp_path: Path) -> None:
    assert parse_seeds("5") == [0, 1, 2, 3, 4] and parse_seeds("2,9") == [2, 9]
    for bad in ("0", "a", "1,1", "-1,2"):
        with pytest.raises(StriateError, match="--seeds"):
            parse_seeds(bad)
    with pytest.raises(StriateError, match="--seed or --seeds"):
        run_experiment("grokking", tmp_path, seed=1, seeds=[0, 1])
    with pytest.raises(StriateError, match="trains on the CPU only"):
        run_experiment("lottery", tmp_path, device="cuda")


TINY = ["p=11", "steps=30", "checkpoints=4", "d_embed=8", "d_hidden=8", "eval_every=10"]


def final_rank(summary: dict[str, Any]) -> float:
    return float(summary["conditions"]["wd=1"]["effective_rank"]["fc1.weight"]["final"])


@pytest.fixture(scope="module")
def over_seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Grokking, tiny, over seeds 0 and 3, with one planted claim on the final train accuracy."""
    claim = Claim("fits", "planted", "It has a rank.", "final effective rank of fc1, wd=1",
                  Criterion(">=", 0.0), final_rank)  # fmt: skip
    setting = dataclasses.replace(registry.SETTINGS["grokking"], claims=(claim,))
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry.SETTINGS, "grokking", setting)
        out = tmp_path_factory.mktemp("seeds") / "run"
        runner = CliRunner().invoke(app, ["experiment", "grokking", "--quiet", "--seeds", "0,3",
                                          "--out", str(out), *[a for s in TINY for a in
                                                               ("--set", s)]])  # fmt: skip
        assert runner.exit_code == 0, runner.output
        assert "met  fits: " in runner.output and "(2 seeds)" in runner.output
    return out


def test_a_run_over_seeds_decides_on_each_seeds_own_numbers(over_seeds: Path) -> None:
    rows = json.loads((over_seeds / "claims.json").read_text())
    assert [r["id"] for r in rows] == ["fits"] and rows[0]["seeds"] == [0, 3]
    own = []
    for seed in (0, 3):
        folder = over_seeds / "seeds" / f"seed_{seed:03d}"
        summary = json.loads((folder / "summary.json").read_text())
        own.append(final_rank(summary))
        one = json.loads((folder / "claims.json").read_text())  # the seed's own claims.json
        assert one[0]["per_seed"] == [own[-1]] and one[0]["seeds"] == [seed]
        assert json.loads((folder / "manifest.json").read_text())["settings"]["seed"] == seed
    assert rows[0]["per_seed"] == own and rows[0]["mean"] == pytest.approx(np.mean(own))
    assert own[0] != own[1]  # two seeds, two different trainings
    summary = json.loads((over_seeds / "summary.json").read_text())
    assert summary["seeds"] == [0, 3] and set(summary["per_seed"]) == {"0", "3"}
    manifest = json.loads((over_seeds / "manifest.json").read_text())
    assert manifest["seeds"] == [0, 3] and "seed" not in manifest["settings"]
    assert manifest["overrides"] == TINY and manifest["figures"][0] == "figures/claims.png"
    assert_drawn(over_seeds / "figures" / "claims.png")
    html = (over_seeds / "index.html").read_text()
    assert "fits" in html and 'href="seeds/seed_003/index.html"' in html


class Pickling(Executor):
    """A local executor that sends every task and result through pickle, as a cluster does."""

    def __init__(self) -> None:
        self.tasks: list[Any] = []

    def map(self, fn: Any, items: Any, *, label: str = "tasks", progress: bool = False) -> Any:
        for item in items:
            self.tasks.append((label, item))
            yield pickle.loads(pickle.dumps(fn(pickle.loads(pickle.dumps(item)))))


def test_each_seed_is_one_task_and_gives_what_it_gives_in_a_run_of_several(
    over_seeds: Path, tmp_path: Path
) -> None:
    """Seeds are independent tasks: seed 3 alone, through a pickling executor, trains exactly as
    seed 3 among seeds 0 and 3 did."""
    executor = Pickling()
    out = run_experiment("grokking", tmp_path / "run", overrides=TINY, seeds=[3],
                         executor=executor)  # fmt: skip
    assert [(label, task.seed) for label, task in executor.tasks] == [("seeds", 3)]
    alone = json.loads((out / "seeds" / "seed_003" / "summary.json").read_text())
    among = json.loads((over_seeds / "seeds" / "seed_003" / "summary.json").read_text())
    assert final_rank(alone) == final_rank(among)
    assert alone["conditions"] == among["conditions"]


def test_resume_runs_only_the_seeds_not_yet_run(over_seeds: Path, tmp_path: Path) -> None:
    """A run over seeds 0 and 3 continued to seeds 0, 3 and 5 trains seed 5 alone; a changed
    setting trains every seed again."""
    run = Path(shutil.copytree(over_seeds, tmp_path / "run"))
    before = json.loads((run / "summary.json").read_text())["per_seed"]
    executor = Pickling()
    run_setting("experiment", "grokking", run, overrides=TINY, seeds=[0, 3, 5],
                executor=executor, resume=True)  # fmt: skip
    assert [task.seed for _, task in executor.tasks] == [5]
    after = json.loads((run / "summary.json").read_text())
    assert after["seeds"] == [0, 3, 5] and after["per_seed"]["0"] == before["0"]
    assert after["per_seed"]["3"] == before["3"] != after["per_seed"]["5"]
    rows = json.loads((run / "claims.json").read_text())
    assert rows and all(r["seeds"] == [0, 3, 5] for r in rows)
    changed = Pickling()
    run_setting("experiment", "grokking", run, overrides=[*TINY, "lr=0.002"], seeds=[0, 3, 5],
                executor=changed, resume=True)  # fmt: skip
    assert [task.seed for _, task in changed.tasks] == [0, 3, 5]


def test_pages_are_generated_from_the_json_and_refuse_typed_numbers(
    over_seeds: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "docs" / "grokking"
    folder.mkdir(parents=True)
    (folder / "discussion.md").write_text(
        "The rank ends at {{claim:fits.mean}} over seeds {{claim:fits.seeds}}; "
        "`fc1.weight` is named in code.\n"
    )
    text = pages.publish(over_seeds, folder).read_text()
    mean = json.loads((over_seeds / "claims.json").read_text())[0]["mean"]
    assert f"The rank ends at {number(mean)} over seeds 0, 3;" in text
    assert "--seeds 0,3 --set p=11" in text and "| **fits**: It has a rank." in text
    assert (folder / "figures" / "claims.png").is_file()
    (folder.parent / "README.md").write_text(pages.index(folder.parent))
    assert pages.stale(folder.parent) == []
    index = (folder.parent / "README.md").read_text()
    assert "[grokking](grokking/)" in index and "**fits**" in index
    rows = json.loads((folder / "claims.json").read_text())  # a changed number is caught
    rows[0]["mean"] += 0.01
    (folder / "claims.json").write_text(json.dumps(rows))
    assert sorted(pages.stale(folder.parent)) == sorted(
        [str(folder / "README.md"), str(folder.parent / "README.md")]
    )
    (folder / "discussion.md").write_text("It fell by 13% here.\n")
    with pytest.raises(StriateError, match="a number typed by hand"):
        pages.page(folder)
    (folder / "discussion.md").write_text("{{claim:nothing.mean}}\n")
    with pytest.raises(StriateError, match="names nothing"):
        pages.page(folder)


def test_lab_prints_each_claim_with_its_numbers_and_criterion(tmp_path: Path) -> None:
    args = ["lab", "privileged", "--quiet", "--out", str(tmp_path / "lab"),
            "--set", "train.steps=40", "--set", "train.log_every=20"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "lab" / "claims.json").read_text())
    lines = [line for line in result.output.splitlines() if "(criterion: " in line]
    assert len(lines) == len(rows) >= 3
    for line, row in zip(lines, rows, strict=True):
        assert line.startswith(f"{row['verdict']}  {row['id']}: ")
        assert line.endswith(f"(criterion: {row['criterion']})")
        value = "undefined" if row["mean"] is None else number(row["mean"])
        assert value in line


def test_a_page_of_seeds_joined_with_resume_adds_the_seeds_times(
    over_seeds: Path, tmp_path: Path
) -> None:
    """Seeds run elsewhere and joined with --resume: the joining run's own seconds would say
    nothing of the work, so the page gives the sum of the seeds' times, and says so."""
    folder = tmp_path / "docs" / "grokking"
    folder.mkdir(parents=True)
    pages.publish(over_seeds, folder)
    seeds = [json.loads(p.read_text()) for p in sorted(folder.glob("seeds/*/manifest.json"))]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert len(seeds) == 2 and manifest["seconds"] >= max(s["seconds"] for s in seeds)
    assert "joined with --resume" not in pages.page(folder)
    manifest["seconds"] = 0.5 * min(s["seconds"] for s in seeds)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    total = sum(s["seconds"] for s in seeds) / 60
    assert f"wall time {number(total)} min of seed runs in all (joined with --resume)" in (
        pages.page(folder)
    )
