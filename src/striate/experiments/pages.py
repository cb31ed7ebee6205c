"""The reproduction pages of docs/reproductions, generated from their JSON files.

A reproduction's folder holds what its run wrote (claims.json, summary.json, manifest.json,
figures/) and one hand-written file, discussion.md. Its README.md is generated (`page`): the
command, the run's facts, a table of the claims with every seed, the deviations from the source,
the figures and the discussion. The discussion types no number: it names them with
placeholders that the page fills from the JSON files,

    {{claim:ID.mean}}  {{claim:ID.sd}}  {{claim:ID.per_seed}}  {{claim:ID.verdict}}
    {{summary:per_seed/0/conditions/wd=1/test99_step}}  {{settings:p}}

and `check_discussion` refuses a digit outside them (and outside `code spans`, where tensor
names such as `fc1.weight` live). `index` writes docs/reproductions/README.md, every claim of
every reproduction with its verdict. `publish` copies a run into the docs and writes its page;
scripts/reproductions.py is the command, tests/test_reproduction_pages.py regenerates every
committed page and fails on any difference.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from striate import store
from striate.errors import StriateError
from striate.report.claims_html import number, read_claims, seed_dir, spread

PLACEHOLDER = re.compile(r"\{\{(claim|summary|settings):([^}]+)\}\}")
CODE = re.compile(r"`[^`]*`")
FILES = ("claims.json", "summary.json", "manifest.json")
VERDICT_MARK = {"met": "✅ met", "mixed": "🟡 mixed", "not met": "❌ not met"}


def fill(text: str, claims: Sequence[Mapping[str, Any]], summary: Any, settings: Any) -> str:
    """`text` with every placeholder replaced by its value from the JSON files.

    >>> rows = [{"id": "drop", "mean": 0.3141, "sd": 0.02, "per_seed": [0.3, 0.33],
    ...          "verdict": "met"}]
    >>> fill("fell by {{claim:drop.mean}} ({{claim:drop.verdict}}), p = {{settings:p}}",
    ...      rows, {}, {"p": 113})
    'fell by 0.314 (met), p = 113'
    """
    by_id = {r["id"]: r for r in claims}

    def value(match: re.Match[str]) -> str:
        kind, ref = match.group(1), match.group(2).strip()
        try:
            if kind == "claim":
                claim, _, field = ref.rpartition(".")
                v = by_id[claim][field]
            else:
                v = summary if kind == "summary" else settings
                for key in ref.split("/"):
                    v = v[int(key)] if isinstance(v, list) else v[key]
        except (KeyError, IndexError, ValueError, TypeError):
            raise StriateError(f"discussion.md: {match.group(0)} names nothing") from None
        return show(v)

    return PLACEHOLDER.sub(value, text)


def show(v: Any) -> str:
    """A JSON value as the pages write it: numbers to 3 significant digits, lists joined."""
    if isinstance(v, bool) or v is None:
        return {True: "yes", False: "no", None: "—"}[v]
    if isinstance(v, (int, float)):
        return number(float(v)) if isinstance(v, float) else f"{v:,}"
    if isinstance(v, list):
        return ", ".join(show(x) for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{k}={show(x)}" for k, x in v.items())
    return str(v)


def check_discussion(text: str, where: str = "discussion.md") -> None:
    """Refuse a number typed by hand: a digit outside placeholders and `code spans`.

    >>> check_discussion("rank fell by {{claim:drop.mean}} in `fc1.weight`")
    >>> check_discussion("rank fell by 13%")
    Traceback (most recent call last):
    striate.errors.StriateError: discussion.md: a number typed by hand: 'rank fell by 13%'
    """
    for line in text.splitlines():
        bare = CODE.sub("", PLACEHOLDER.sub("", line))
        if re.search(r"\d", bare):
            raise StriateError(f"{where}: a number typed by hand: {line.strip()[:80]!r}")


def command(manifest: Mapping[str, Any]) -> str:
    """The command that made the run, from its manifest.

    >>> command({"kind": "experiment", "name": "grokking", "preset": "full",
    ...          "seeds": [0, 1, 2], "overrides": ["steps=100"]})
    'striate experiment grokking --preset full --seeds 3 --set steps=100 --out runs/grokking'
    """
    seeds = manifest.get("seeds") or []
    parts = ["striate", manifest["kind"], manifest["name"], "--preset", manifest["preset"]]
    if seeds:
        count = seeds == list(range(len(seeds)))
        parts += ["--seeds", str(len(seeds)) if count else ",".join(map(str, seeds))]
    for o in manifest.get("overrides") or []:
        parts += ["--set", o]
    return " ".join([*parts, "--out", f"runs/{manifest['name']}"])


def _claims_table(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = ["| claim | criterion | per seed | mean ± sd | verdict |", "|---|---|---|---|---|"]
    for r in rows:
        seeds = ", ".join(number(v) for v in r["per_seed"])
        lines.append(f"| **{r['id']}**: {r['statement']} | `{r['criterion']}` | {seeds} | "
                     f"{spread(r)} | {VERDICT_MARK[r['verdict']]} |")  # fmt: skip
    return "\n".join(lines)


def _measures(rows: Sequence[Mapping[str, Any]]) -> str:
    """Each claim's measure, under its source: a source shared by several claims is quoted once."""
    sources = list(dict.fromkeys(r["source"] for r in rows))
    return "\n\n".join(
        f"Source: {source}\n\n"
        + "\n".join(f"- **{r['id']}**: {r['measure']}" for r in rows if r["source"] == source)
        for source in sources
    )


def page(folder: Path) -> str:
    """The README.md of one reproduction folder, from its JSON files and discussion.md."""
    claims = read_claims(folder)
    summary = store.read_json(folder / "summary.json")
    manifest = store.read_json(folder / "manifest.json")
    settings = manifest.get("settings") or {}
    discussion_file = folder / "discussion.md"
    discussion = discussion_file.read_text(encoding="utf-8") if discussion_file.is_file() else ""
    check_discussion(discussion, str(discussion_file))
    seeds = manifest.get("seeds") or [settings.get("seed", manifest.get("seed", 0))]
    seed_manifests = _seed_manifests(folder, manifest.get("seeds") or [])
    per_seed = [m["seconds"] for m in seed_manifests if isinstance(m.get("seconds"), (int, float))]
    wall = f"{number(manifest['seconds'] / 60)} min in all"
    if per_seed and manifest["seconds"] < max(per_seed):  # the seeds ran before, joined here
        wall = f"{number(sum(per_seed) / 60)} min of seed runs in all (joined with --resume)"
    if per_seed:
        wall += f", {number(min(per_seed) / 60)}-{number(max(per_seed) / 60)} min per seed"
    verdicts = [r["verdict"] for r in claims]
    tally = ", ".join(f"{verdicts.count(v)} {v}" for v in VERDICT_MARK if v in verdicts)
    deviations = list(dict.fromkeys(d for r in claims for d in r["deviations"]))
    figures = _figure_list(manifest.get("figures"))
    parts = [
        f"# {manifest['name']}: {manifest.get('about', '')}",
        "<!-- generated by scripts/reproductions.py from claims.json, summary.json, "
        "manifest.json and discussion.md: edit those, not this file -->",
        f"```bash\n{command(manifest)}\n```",
        f"Seeds {', '.join(map(str, seeds))} ({len(seeds)}); preset {manifest['preset']}; "
        f"wall time {wall} (2 CPU cores, shared with other jobs); "
        f"striate {manifest.get('striate_version')}. "
        f"Claims: {tally or 'none'}.",
        "## Claims\n\n" + _claims_table(claims),
        "### What each claim measures\n\n" + _measures(claims),
        "## Deviations from the source\n\n" + "\n".join(f"- {d}" for d in deviations)
        if deviations
        else "## Deviations from the source\n\nNone stated.",
        "## Figures\n\n" + "\n\n".join(f"![{Path(f).stem}]({f})" for f in figures),
    ]
    if seed_manifests:
        first = seed_dir(manifest["seeds"][0])
        own = [f"{first}/{f}" for f in _figure_list(seed_manifests[0].get("figures"))]
        own = [f for f in own if (folder / f).is_file()]
        if own:
            parts.append(f"### Seed {manifest['seeds'][0]}'s own figures\n\n"
                         + "\n\n".join(f"![{Path(f).stem}]({f})" for f in own))  # fmt: skip
    if discussion.strip():
        parts.append("## Discussion\n\n" + fill(discussion.strip(), claims, summary, settings))
    parts.append("## Settings\n\n" + _settings(settings))
    return "\n\n".join(parts) + "\n"


def _settings(settings: Mapping[str, Any]) -> str:
    return "\n".join(f"- `{k}` = `{show(v)}`" for k, v in settings.items())


def reproductions(root: Path) -> list[Path]:
    """The reproduction folders under `root` that follow the claims contract."""
    return sorted(p.parent for p in root.glob("*/claims.json"))


def index(root: Path) -> str:
    """docs/reproductions/README.md: every claim of every reproduction with its verdict, and
    the folders still waiting for a run under the claims contract."""
    lines = [
        "# Reproductions",
        "<!-- generated by scripts/reproductions.py: edit the folders, not this file -->",
        "Each folder holds one run of a `striate experiment` or `striate lab` setting over "
        "several seeds: its claims.json (each claim, its criterion fixed in code before the "
        "run, the measure in every seed, mean, sd and verdict), summary.json, manifest.json, "
        "figures and a page generated from them. Verdicts: met (the criterion holds for the "
        "mean and in at least 2/3 of the seeds), mixed (in some seeds), not met.",
        "| reproduction | claim | mean ± sd | verdict |\n|---|---|---|---|",
    ]
    rows = []
    for folder in reproductions(root):
        for r in read_claims(folder):
            rows.append(f"| [{folder.name}]({folder.name}/) | **{r['id']}**: {r['statement']} "
                        f"| {spread(r)} | {VERDICT_MARK[r['verdict']]} |")  # fmt: skip
    if rows:
        lines[-1] += "\n" + "\n".join(rows)
    else:
        lines[-1] = "No reproduction has been run under the claims contract yet."
    waiting = sorted(p.parent.name for p in root.glob("*/README.md")
                     if not (p.parent / "claims.json").is_file())  # fmt: skip
    if waiting:
        lines.append(
            "Not yet rerun under the claims contract (one seed, claims decided before "
            "claims.json existed; their pages are as written then): "
            + ", ".join(f"[{w}]({w}/)" for w in waiting)
            + "."
        )
    return "\n\n".join(lines) + "\n"


BEGIN, END = "<!-- reproductions:begin -->", "<!-- reproductions:end -->"


def summary_block(root: Path) -> str:
    """The README's summary of findings: per reproduction, its seeds and how many claims are
    met, mixed and not met, linked to its page."""
    lines = ["| reproduction | seeds | met | mixed | not met |", "|---|---|---|---|---|"]
    for folder in reproductions(root):
        rows = read_claims(folder)
        counts = [sum(r["verdict"] == v for r in rows) for v in VERDICT_MARK]
        seeds = max((r["n_seeds"] for r in rows), default=0)
        lines.append(f"| [{folder.name}](docs/reproductions/{folder.name}/README.md) | {seeds} | "
                     + " | ".join(map(str, counts)) + " |")  # fmt: skip
    if len(lines) == 2:
        return "No reproduction has been run under the claims contract yet."
    return "\n".join(lines)


def with_summary(readme: str, root: Path) -> str:
    """`readme` with the text between its reproductions markers replaced by `summary_block`."""
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    if not rest:
        raise StriateError(f"README.md has no {BEGIN} marker")
    return f"{head}{BEGIN}\n{summary_block(root)}\n{END}{tail}"


def publish(run: Path, folder: Path) -> Path:
    """Copy a run's JSON files and top-level figures into a reproduction `folder`, write the
    folder's README.md; return the page's path. What the folder held before goes, except its
    discussion.md."""
    if folder.is_dir():
        for old in folder.iterdir():
            if old.name != "discussion.md":
                shutil.rmtree(old) if old.is_dir() else old.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copy2(run / name, folder / name)
    manifest = store.read_json(run / "manifest.json")
    _copy_figures(run, folder, manifest)
    for i, seed in enumerate(manifest.get("seeds") or []):  # each seed's manifest (its wall
        one = run / seed_dir(seed)  # time); the first seed's own figures
        (folder / seed_dir(seed)).mkdir(parents=True, exist_ok=True)
        shutil.copy2(one / "manifest.json", folder / seed_dir(seed) / "manifest.json")
        if i == 0:
            _copy_figures(one, folder / seed_dir(seed), store.read_json(one / "manifest.json"))
    (folder / "README.md").write_text(page(folder), encoding="utf-8")
    return folder / "README.md"


def _copy_figures(run: Path, folder: Path, manifest: Mapping[str, Any]) -> None:
    for f in _figure_list(manifest.get("figures")):
        (folder / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(run / f, folder / f)


def _figure_list(figures: Any) -> list[str]:
    """A manifest's figures as one list (some kinds keep lists by group)."""
    if isinstance(figures, dict):
        return [f for v in figures.values() for f in _figure_list(v)]
    if isinstance(figures, list):
        return [f for v in figures for f in _figure_list(v)]
    return [figures] if isinstance(figures, str) else []


def _seed_manifests(folder: Path, seeds: Sequence[Any]) -> list[dict[str, Any]]:
    paths = [folder / seed_dir(s) / "manifest.json" for s in seeds]
    return [store.read_json(p) for p in paths if p.is_file()]


def stale(root: Path) -> list[str]:
    """The generated files under `root` that differ from what their JSON files produce."""
    out = [str(f / "README.md") for f in reproductions(root)
           if (f / "README.md").read_text(encoding="utf-8") != page(f)]  # fmt: skip
    readme = root / "README.md"
    if not readme.is_file() or readme.read_text(encoding="utf-8") != index(root):
        out.append(str(readme))
    project = root.parent.parent / "README.md"  # docs/reproductions -> the project's README
    if project.is_file():
        text = project.read_text(encoding="utf-8")
        if text != with_summary(text, root):
            out.append(str(project))
    return out


__all__ = ["check_discussion", "command", "fill", "index", "page", "publish", "stale"]
