"""The claims contract of a reproduction (shared/DESIGN.md, "Claims of a reproduction").

A setting declares its claims in code, before any run: each `Claim` names its source, states
itself in one sentence, defines the measure that decides it (a function of one seed's
summary.json) and a `Criterion` (a comparison and a threshold). `decide` turns the measure of
every seed into one row of claims.json: the per-seed values, mean, sd and the verdict

- `met`: the criterion holds for the mean and in at least 2/3 of the seeds (for `above 2 sd`,
  the mean must clear the threshold by more than two sd over the seeds);
- `mixed`: it holds in some seeds;
- `not met`: in none.

A seed whose measure is undefined (None: it never reached the step the measure needs) counts as
a seed where the criterion does not hold.

    >>> c = Claim("drop", "seed 002", "Rank falls.", "relative rank drop", Criterion(">=", 0.2),
    ...           lambda s: s["drop"])
    >>> row = decide(c, [{"drop": 0.3}, {"drop": 0.25}, {"drop": 0.1}])
    >>> row["verdict"], row["per_seed"], row["holds"]
    ('met', [0.3, 0.25, 0.1], [True, True, False])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from striate import store

Op = Literal[">=", "<=", ">", "<", "between", "true", "above 2 sd"]
Verdict = Literal["met", "mixed", "not met"]
VERDICTS: tuple[Verdict, ...] = ("met", "mixed", "not met")
Summary = Mapping[str, Any]  # one seed's summary.json


@dataclass(frozen=True)
class Criterion:
    """A comparison fixed before the run: `>= 0.2`, `between 0.8 1.2`, `true` (a yes/no
    measure that must be yes; its mean is the share of seeds where it is), or `above 2 sd`
    (each seed's value above the threshold, and the mean above it by more than two sd over the
    seeds: a difference larger than the seed-to-seed spread)."""

    op: Op
    threshold: float | tuple[float, float] = 1.0

    def holds(self, x: float | None) -> bool:
        """Whether the value `x` meets the criterion (never for None or NaN).

        >>> Criterion("between", (0.8, 1.2)).holds(1.25), Criterion("<=", -0.8).holds(-0.9)
        (False, True)
        """
        if x is None or not math.isfinite(x):
            return False
        t = self.threshold
        if self.op == "between":
            assert isinstance(t, tuple)
            return t[0] <= x <= t[1]
        if self.op == "true":
            return x >= 0.5
        assert not isinstance(t, tuple)
        if self.op == "above 2 sd":
            return x > t
        return bool({">=": x >= t, "<=": x <= t, ">": x > t, "<": x < t}[self.op])

    def text(self, name: str = "x") -> str:
        """The criterion as written in claims.json and on the pages: `x >= 0.2`.

        >>> Criterion("between", (0.8, 1.2)).text("ratio"), Criterion("true").text("grokked")
        ('0.8 <= ratio <= 1.2', 'grokked is true')
        >>> Criterion("above 2 sd", 1.0).text("peak")
        'peak > 1, the mean by more than 2 sd over the seeds'
        """
        t = self.threshold
        if self.op == "between":
            assert isinstance(t, tuple)
            return f"{t[0]:g} <= {name} <= {t[1]:g}"
        if self.op == "true":
            return f"{name} is true"
        assert not isinstance(t, tuple)
        if self.op == "above 2 sd":
            return f"{name} > {t:g}, the mean by more than 2 sd over the seeds"
        return f"{name} {self.op} {t:g}"

    def holds_for_mean(self, defined: Sequence[float]) -> bool:
        """Whether the criterion holds for the mean of the defined per-seed values.

        >>> c = Criterion("above 2 sd", 1.0)
        >>> c.holds_for_mean([1.5, 1.6, 1.7]), c.holds_for_mean([1.1, 1.9, 1.2])
        (True, False)
        """
        mean = float(np.mean(defined))
        if self.op == "true":
            return mean >= 2 / 3
        if self.op == "above 2 sd":
            sd = float(np.std(defined, ddof=1)) if len(defined) > 1 else 0.0
            assert not isinstance(self.threshold, tuple)
            return mean - 2 * sd > self.threshold
        return self.holds(mean)


@dataclass(frozen=True)
class Claim:
    """One claim of a setting, decided by `criterion` on `value(summary)` of each seed."""

    id: str  # a stable slug
    source: str  # the seed file and the sentence or figure the claim comes from
    statement: str  # one sentence
    measure: str  # what is computed, with its definition
    criterion: Criterion
    value: Callable[[Summary], float | bool | None]  # the measure, from one seed's summary
    deviations: tuple[str, ...] = ()  # each way this claim's test differs from the source's

    def measure_of(self, summary: Summary) -> float | None:
        """The measure of one seed: a float (True/False as 1/0), None when undefined."""
        try:
            v = self.value(summary)
        except (KeyError, TypeError, IndexError, ZeroDivisionError):
            return None  # a summary without what the measure needs: undefined, not a crash
        if v is None:
            return None
        v = float(v)
        return v if math.isfinite(v) else None


def verdict(values: Sequence[float | None], criterion: Criterion) -> Verdict:
    """`met`, `mixed` or `not met` for the per-seed `values` (see the module's docstring).

    >>> verdict([1.0, 1.0, 0.0], Criterion("true")), verdict([0.3, None, None], Criterion(">", 0))
    ('met', 'mixed')
    """
    holds = [criterion.holds(v) for v in values]
    if not any(holds):
        return "not met"
    defined = [v for v in values if v is not None]
    return (
        "met"
        if criterion.holds_for_mean(defined) and 3 * sum(holds) >= 2 * len(values)
        else "mixed"
    )


def decide(
    claim: Claim, summaries: Sequence[Summary], deviations: Sequence[str] = ()
) -> dict[str, Any]:
    """One object of claims.json: the claim, its measure in every seed, mean, sd (over the
    defined values; sd 0 for one seed) and its verdict. `deviations` are the run's, added to
    the claim's own."""
    values = [claim.measure_of(s) for s in summaries]
    defined = [v for v in values if v is not None]
    return {
        "id": claim.id,
        "source": claim.source,
        "statement": claim.statement,
        "measure": claim.measure,
        "criterion": claim.criterion.text(claim.id),
        "op": claim.criterion.op,
        "threshold": claim.criterion.threshold,
        "per_seed": values,
        "holds": [claim.criterion.holds(v) for v in values],
        "mean": float(np.mean(defined)) if defined else None,
        "sd": float(np.std(defined, ddof=1)) if len(defined) > 1 else 0.0 if defined else None,
        "n_seeds": len(values),
        "verdict": verdict(values, claim.criterion),
        "deviations": list(dict.fromkeys([*claim.deviations, *deviations])),
    }


def write_claims(
    out: Path,
    claims: Sequence[Claim],
    summaries: Sequence[Summary],
    seeds: Sequence[int],
    deviations: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Decide every claim over the seeds' summaries and write `out/claims.json`: a list with one
    object per claim, each with the seeds it was decided on."""
    rows = [{**decide(c, summaries, deviations), "seeds": list(seeds)} for c in claims]
    store.write_json(out / "claims.json", rows)
    return rows


def draw_claims(rows: Sequence[Mapping[str, Any]], path: Path, title: str) -> str:
    """One panel per claim: every seed's measure (dots), the mean with ± 1 sd, and the
    criterion's threshold (dotted), green where the verdict is met. Returns `figures/NAME`."""
    from striate.render.png import save_figure
    from striate.render.style import canvas, style

    colors = {"met": "#2e7d32", "mixed": "#b7791f", "not met": "#c0392b"}
    with style():
        n = max(len(rows), 1)
        fig = canvas(min(max(3.0 * n, 6.0), 15.0), 2.6 * math.ceil(n / 5), dpi=110)  # title fits
        fig.suptitle(title, x=0.01, ha="left", fontsize=10, weight="bold", parse_math=False)
        axes = np.atleast_1d(fig.subplots(math.ceil(n / 5), min(n, 5), squeeze=False)).ravel()
        for ax, row in zip(axes, rows, strict=False):
            values = [v for v in row["per_seed"] if v is not None]
            color = colors[row["verdict"]]
            ax.scatter(np.zeros(len(values)) + np.linspace(-0.15, 0.15, len(values)), values,
                       color=color, s=14, zorder=3)  # fmt: skip
            if row["mean"] is not None:
                ax.errorbar([0.5], [row["mean"]], yerr=[row["sd"] or 0.0], fmt="o",
                            color="black", ms=4, capsize=3)  # fmt: skip
            t = row["threshold"]
            for level in t if isinstance(t, (list, tuple)) else [t]:
                if row["op"] != "true":
                    ax.axhline(level, color="grey", ls=":", lw=1)
            ax.set_xlim(-0.5, 1.0)
            ax.set_xticks([0, 0.5], ["seeds", "mean ± sd"], fontsize=7)
            ax.set_title(f"{row['id']}\n{row['verdict']}", fontsize=8, loc="left",
                         color=color, parse_math=False)  # fmt: skip
            ax.tick_params(labelsize=7)
        for ax in axes[len(rows) :]:
            ax.set_visible(False)
        fig.tight_layout()
        save_figure(fig, path)
    return f"figures/{path.name}"


__all__ = [
    "VERDICTS",
    "Claim",
    "Criterion",
    "decide",
    "draw_claims",
    "verdict",
    "write_claims",
]
