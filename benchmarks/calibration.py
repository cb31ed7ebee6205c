"""How often the detectors find what is not there, and how often they find what is.

    .venv/bin/python benchmarks/calibration.py [--quick] [--seed 0] [--alphas 1e-4,1e-3,1e-2]
        [--out-doc docs/calibration.md] [--out-images docs/images] [--workers N]

(a) False findings on structure-free tensors: i.i.d. Gaussian and Student-t (df 3, 4, 6) matrices,
    and the matrices of sample:minilm and sample:smollm2 with their entries shuffled; false pooled
    dims on null models of 20-40 matrices sharing a residual axis.
(b) Recall against planted strength: loud and quiet lines, hotspots and pooled dims planted in
    Gaussian matrices, both layouts, stored as float32, float16 and bfloat16.
(c) The false-alarm knobs (LinesConfig.alpha, HotspotsConfig.alpha, ResidualConfig.alpha) swept:
    false findings against recall at the target strengths.

Writes docs/calibration.md and docs/images/calibration_*.png; every number is generated, the
verdicts against the targets included. The cases (`calibration_cases.py`) run in a pool of
`--workers` processes (default: the CPU count) with one BLAS thread each. `run()` returns the
records as DataFrames (the test asserts on them). `--quick` is a smoke run of a minute or two.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import calibration_cases as cases  # noqa: E402
from calibration_cases import (  # noqa: E402
    FALSE_TARGET,
    KNOBS,
    POOLED_TARGET_TENSORS,
    RECALL_TARGET,
    TARGETS,
    Plan,
    Results,
    cp_upper,
    is_target_size,
    run,
)

UNIT = {"loud": "x", "quiet": "x", "hotspot": " sigma", "pooled": "x"}


# ---- numbers from the records ------------------------------------------------------------


def _at(df: pd.DataFrame, alpha: float) -> pd.DataFrame:
    return df[np.isclose(df["alpha"], alpha)]


def null_rates(nulls: pd.DataFrame, detector: str, alpha: float, by: list[str]) -> pd.DataFrame:
    """False findings of `detector` at `alpha` per 100 tensors, grouped by `by`: `loud`,
    `quiet`, `hotspots`, `new` (hotspots that were not hotspots before shuffling) and their sum
    `per100` (lines + new hotspots); `any`: tensors with a finding counted in `per100`,
    `upper`: the 95% bound on that share, in %."""
    d = _at(nulls[nulls["detector"] == detector], alpha)
    d = d.assign(new=d["hotspots"] - d["preexisting"])
    g = d.groupby(by, sort=False)
    out = 100 * g[["loud", "quiet", "hotspots", "new"]].mean()
    out["per100"] = out["loud"] + out["quiet"] + out["new"]
    out["preexisting"] = g["preexisting"].sum()
    out["tensors"] = g.size()
    out["any"] = (d["loud"] + d["quiet"] + d["new"] > 0).groupby([d[c] for c in by]).sum()
    out["upper"] = [100 * cp_upper(k, n) for k, n in zip(out["any"], out["tensors"], strict=True)]
    return out.reset_index()


def pooled_null_rates(pooled: pd.DataFrame, alpha: float, by: list[str]) -> pd.DataFrame:
    """False pooled dims at `alpha` per 100 models; `any`, `upper` as in `null_rates`."""
    d = _at(pooled, alpha)
    g = d.groupby(by, sort=False)
    out = pd.DataFrame(
        {
            "models": g.size(),
            "per100": 100 * g["false_dims"].mean(),
            "any": (d["false_dims"] > 0).groupby([d[c] for c in by]).sum(),
        }
    )
    out["upper"] = [100 * cp_upper(k, n) for k, n in zip(out["any"], out["models"], strict=True)]
    return out.reset_index()


def recall_table(recall: pd.DataFrame, alpha: float, by: list[str]) -> pd.DataFrame:
    g = _at(recall, alpha).groupby(by, sort=False)["hit"]
    return pd.DataFrame({"trials": g.size(), "recall": g.mean()}).reset_index()


def target_recall(r: Results, kind: str, alpha: float | None = None,
                  by: tuple[str, ...] = ("size", "strength")) -> pd.DataFrame:  # fmt: skip
    """Recall at `kind`'s target strength and beyond, in the target sizes (pooled: over >=
    POOLED_TARGET_TENSORS tensors), at `alpha` (default: the config's), grouped by `by`."""
    knob = {"hotspot": "hotspots", "pooled": "residual"}.get(kind, "lines")
    alpha = getattr(r.detectors, knob).alpha if alpha is None else alpha
    sign = -1 if kind == "quiet" else 1
    if kind == "pooled":
        d = r.pooled_recall[r.pooled_recall["tensors"] >= POOLED_TARGET_TENSORS]
    else:
        d = r.recall[(r.recall["kind"] == kind) & r.recall["size"].map(is_target_size)]
    d = d[sign * (d["strength"] - TARGETS[kind]) >= -1e-9]
    t = recall_table(d, alpha, list(by))
    if "strength" in t:  # the weakest first among equal recalls: the target's own row
        t = t.assign(_far=(t["strength"] - TARGETS[kind]).abs())
        t = t.sort_values(["recall", "_far"], kind="stable").drop(columns="_far")
    return t


@dataclass(frozen=True)
class Verdict:
    target: str
    measured: str
    met: bool


def verdicts(r: Results) -> list[Verdict]:
    """Each target against the run, at the configs' own alphas."""
    det, out = r.detectors, []
    for kind in ("loud", "quiet", "hotspot", "pooled"):
        by = ("d", "tensors", "strength") if kind == "pooled" else ("size", "strength")
        t = target_recall(r, kind, by=by)
        beyond = "<=" if kind == "quiet" else ">="
        what = {"hotspot": "hotspots", "pooled": "pooled dims"}.get(kind, f"{kind} lines")
        where = (f"over >= {POOLED_TARGET_TENSORS} tensors" if kind == "pooled"
                 else "in every size >= 96x384")  # fmt: skip
        goal = f"recall >= {RECALL_TARGET:.0%} for {what} {beyond} {TARGETS[kind]:g}" \
               f"{UNIT[kind]} {where}"  # fmt: skip
        if t.empty:
            out.append(Verdict(goal, "no trials", False))
            continue
        w = t.iloc[0]
        place = f"d={w['d']:.0f}, T={w['tensors']:.0f}" if kind == "pooled" else w["size"]
        out.append(Verdict(goal, f"lowest {w['recall']:.1%} ({place}, {w['strength']:g}"
                           f"{UNIT[kind]}, {w['trials']:.0f} trials)",
                           bool(w["recall"] >= RECALL_TARGET)))  # fmt: skip
    nulls = r.nulls[r.nulls["size"].map(is_target_size)]
    for knob, what in (("lines", "false lines"), ("hotspots", "false hotspots")):
        t = null_rates(nulls, knob, getattr(det, knob).alpha, ["family"])
        w = t.loc[t["per100"].idxmax()]
        out.append(
            Verdict(
                f"<= {FALSE_TARGET:g} {what} per 100 tensors on every null (sizes >= 96x384)",
                f"highest {w['per100']:.2f} per 100 ({w['family']}, {w['tensors']} tensors; 95% "
                f"bound on tensors with any: {w['upper']:.2f}%)",
                bool(w["per100"] <= FALSE_TARGET),
            )
        )
    t = pooled_null_rates(r.pooled_nulls, det.residual.alpha, ["family"])
    w = t.loc[t["per100"].idxmax()]
    out.append(
        Verdict(
            f"<= {FALSE_TARGET:g} false pooled dims per 100 null models",
            f"highest {w['per100']:.2f} per 100 ({w['family']}, {w['models']} models; 95% bound "
            f"on models with any: {w['upper']:.2f}%)",
            bool(w["per100"] <= FALSE_TARGET),
        )
    )
    return out


def sweep_table(r: Results, knob: str) -> pd.DataFrame:
    """Per alpha of `knob`: false findings per 100 tensors (models) on each null, sizes >=
    96x384, and recall at the target strength over the target sizes, layouts and dtypes."""
    rows = []
    nulls = r.nulls[r.nulls["size"].map(is_target_size)]
    for config in r.detectors.sweep(knob):
        a = config.alpha
        row: dict[str, Any] = {"alpha": a}
        if knob == "residual":
            t = pooled_null_rates(r.pooled_nulls, a, ["family"])
            row |= {f"{f} models": v for f, v in zip(t["family"], t["per100"], strict=True)}
        else:
            t = null_rates(nulls, knob, a, ["family"])
            row |= dict(zip(t["family"], t["per100"], strict=True))
        kinds = {"lines": ["loud", "quiet"], "hotspots": ["hotspot"], "residual": ["pooled"]}
        for kind in kinds[knob]:
            t = target_recall(r, kind, a, by=("d" if kind == "pooled" else "size", "strength"))
            t = t[np.isclose(t["strength"], TARGETS[kind])]
            row[f"recall {kind}"] = (t["recall"] * t["trials"]).sum() / max(t["trials"].sum(), 1)
            row[f"lowest {kind}"] = t["recall"].min() if len(t) else np.nan
        nulls_ok = all(v <= FALSE_TARGET for k, v in row.items() if k != "alpha" and
                       not k.startswith(("recall", "lowest")))  # fmt: skip
        recall_ok = all(v >= RECALL_TARGET for k, v in row.items() if k.startswith("lowest"))
        row["both targets"] = "yes" if nulls_ok and recall_ok else "no"
        rows.append(row)
    return pd.DataFrame(rows)


# ---- the page --------------------------------------------------------------------------------


def markdown_table(df: pd.DataFrame, formats: dict[str, str] | None = None) -> str:
    """`df` as a markdown table; `formats` maps a column to a format spec for its numbers."""
    formats = formats or {}

    def cell(col: str, v: Any) -> str:
        if col in formats and isinstance(v, (int, float, np.number)) and not pd.isna(v):
            return format(v, formats[col])
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(c, row[c]) for c in df.columns) + " |"
              for _, row in df.iterrows()]  # fmt: skip
    return "\n".join(lines)


def _ordered(df: pd.DataFrame, r: Results) -> pd.DataFrame:
    """Rows in the plan's order of nulls, then by size."""
    order = [*r.plan.families, *(f"{m} shuffled" for m in r.plan.real_models)]
    keys = {"family": lambda s: s.map(order.index)}
    if "size" in df:
        keys["size"] = lambda s: s.map(lambda x: np.prod([int(v) for v in x.split("x")]))
    return df.sort_values(list(keys), key=lambda s: keys[s.name](s), kind="stable")


def figures(r: Results, out: Path) -> dict[str, Path]:
    """The recall curves and the alpha sweeps, as PNGs in `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    det, paths = r.detectors, {}
    fig, axs = plt.subplots(1, 4, figsize=(17, 4.2))
    for ax, kind in zip(axs, ("loud", "quiet", "hotspot", "pooled"), strict=True):
        knob = {"hotspot": "hotspots", "pooled": "residual"}.get(kind, "lines")
        if kind == "pooled":
            t = recall_table(r.pooled_recall, det.residual.alpha, ["tensors", "strength"])
            curves = [(f"T = {n} tensors", g, 1.0) for n, g in t.groupby("tensors")]
        else:
            t = recall_table(r.recall[r.recall["kind"] == kind], getattr(det, knob).alpha,
                             ["size", "strength"])  # fmt: skip
            curves = [(str(s), g, 1.0 if is_target_size(str(s)) else 0.45)
                      for s, g in t.groupby("size", sort=False)]  # fmt: skip
        for label, g, alpha in curves:
            g = g.sort_values("strength")
            ax.plot(g["strength"], g["recall"], "o-", ms=3, label=label, alpha=alpha)
        if kind == "hotspot":
            ax.set_xscale("log")
            ax.set_xticks(r.plan.strengths[kind], [f"{x:g}" for x in r.plan.strengths[kind]])
            ax.minorticks_off()
        ax.set_xlabel({"hotspot": "planted |w| / sd", "pooled": "planted dim scale in every "
                       "tensor"}.get(kind, "planted line scale"))  # fmt: skip
        ax.set_title(f"{kind} ({KNOBS[knob]} = {getattr(det, knob).alpha:g})", fontsize=10)
        ax.axvline(TARGETS[kind], color="k", ls="--", lw=0.8)
        ax.axhline(RECALL_TARGET, color="k", ls=":", lw=0.8)
        ax.set_ylim(-0.03, 1.03)
        ax.legend(fontsize=8)
    axs[0].set_ylabel("recall")
    fig.tight_layout()
    paths["recall"] = out / "calibration_recall.png"
    fig.savefig(paths["recall"], dpi=110)
    plt.close(fig)

    fig, axs = plt.subplots(2, 3, figsize=(15, 7.5), sharex="col")
    for col, knob in enumerate(KNOBS):
        t = sweep_table(r, knob)
        for c in t.columns[1:]:
            if not c.startswith(("recall", "lowest")):
                axs[0, col].plot(t["alpha"], t[c], "o-", ms=4, label=c)
            elif c.startswith("recall"):
                axs[1, col].plot(t["alpha"], t[c], "o-", ms=4, label=c)
        axs[0, col].set_yscale("symlog", linthresh=0.1)
        axs[0, col].axhline(FALSE_TARGET, color="k", ls=":", lw=0.8)
        axs[0, col].set_title(KNOBS[knob])
        axs[1, col].axhline(RECALL_TARGET, color="k", ls=":", lw=0.8)
        axs[1, col].set_ylim(-0.03, 1.03)
        axs[1, col].set_xlabel("alpha")
        for ax in axs[:, col]:
            ax.set_xscale("log")
            ax.axvline(getattr(det, knob).alpha, color="k", ls="--", lw=0.8, label="default")
            ax.legend(fontsize=8)
    axs[0, 0].set_ylabel("false findings per 100 tensors (models)")
    axs[1, 0].set_ylabel("recall at the target strength")
    fig.tight_layout()
    paths["sweep"] = out / "calibration_sweep.png"
    fig.savefig(paths["sweep"], dpi=110)
    plt.close(fig)
    return paths


def _null_section(r: Results) -> list[str]:
    det, plan = r.detectors, r.plan
    la, ha = det.lines.alpha, det.hotspots.alpha

    def view(by: list[str], nulls: pd.DataFrame) -> pd.DataFrame:
        t = null_rates(nulls, "lines", la, by).merge(
            null_rates(nulls, "hotspots", ha, by), on=[*by, "tensors"], suffixes=("", " h")
        )
        t = _ordered(t, r)
        return pd.DataFrame({
            **{c: t[c] for c in by}, "tensors": t["tensors"], "loud lines": t["loud"],
            "quiet lines": t["quiet"], "lines: bound, %": t["upper"], "hotspots": t["hotspots h"],
            "of which hotspots before shuffling": t["preexisting h"],
            "hotspots: bound on new, %": t["upper h"],
        })  # fmt: skip

    fmt = dict.fromkeys(["loud lines", "quiet lines", "lines: bound, %", "hotspots",
                         "hotspots: bound on new, %"], ".2f")  # fmt: skip
    shuffled = _at(r.nulls[r.nulls["family"].str.endswith(" shuffled")
                           & (r.nulls["detector"] == "hotspots")], ha)  # fmt: skip
    real = r.nulls[r.nulls["family"].str.endswith(" shuffled")]
    matrices = real["tensor"].str.split("#").str[0].groupby(real["family"]).nunique()
    names = ", ".join(f"{m.removesuffix(' shuffled')} ({n} matrices)" for m, n in
                      matrices.items())  # fmt: skip
    pooled = _ordered(pooled_null_rates(r.pooled_nulls, det.residual.alpha, ["family", "d"]), r)
    pooled = pooled.rename(columns={"per100": "false dims per 100 models", "any":
                                    "models with any", "upper": "bound, %"})  # fmt: skip
    return [
        "## (a) False findings on structure-free tensors",
        "",
        f"Synthetic nulls: {plan.null_tensors} matrices per family and size, i.i.d. Gaussian "
        "or Student-t with 3, 4 and 6 degrees of freedom. Real nulls: the 2-D matrices of "
        f"{names} (both sides >= 64, at most {plan.real_max_numel:,} entries: the embedding "
        "tables are left out), each with all its entries shuffled by a random permutation "
        "(values kept, structure destroyed), permuted as often as it takes to make "
        f"{plan.real_tensors} tensors per model. Findings per 100 tensors; a bound is the "
        "one-sided 95% Clopper-Pearson upper bound on the share of tensors with any false "
        "finding (hotspots: any that was not a hotspot before shuffling), in %.",
        "",
        "Every null, sizes >= 96x384 together:",
        "",
        markdown_table(view(["family"], r.nulls[r.nulls["size"].map(is_target_size)]), fmt),
        "",
        f"Shuffling keeps every value: of the {int(shuffled['hotspots'].sum())} hotspots found "
        f"in shuffled real tensors, {int(shuffled['preexisting'].sum())} are weights that were "
        "already hotspots in the unshuffled tensor. A super weight stays an extreme value "
        "wherever it lands, so these are true findings of an extreme weight, not false alarms; "
        "the verdict and the bounds count only the others.",
        "",
        *_new_hotspots(shuffled),
        "By size:",
        "",
        markdown_table(view(["family", "size"], r.nulls), fmt),
        "",
        f"Pooled dims: {plan.pooled_null_models} null models per family and d, each of 20 to "
        "40 independent matrices sharing a residual axis of d, in layers of q, k, v (d x d, "
        f"residual as columns), o (d x d, as rows), FFN up and gate ({cases.POOLED_SIDE} x d) "
        f"and down (d x {cases.POOLED_SIDE}); `line_z` along the residual axis of each, "
        "pooled by `pool_z`; a dim is reported when `pooled_expected` <= "
        f"`{KNOBS['residual']}` = {det.residual.alpha:g}.",
        "",
        markdown_table(pooled, {"false dims per 100 models": ".2f", "bound, %": ".2f"}),
        "",
    ]


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _new_hotspots(shuffled: pd.DataFrame) -> list[str]:
    """The hotspots of shuffled tensors that were not hotspots in place, per matrix."""
    if "new_sd" not in shuffled or shuffled.empty:
        return []
    s = shuffled.assign(matrix=shuffled["tensor"].str.split("#").str[0],
                        n=shuffled["new_sd"].map(len))  # fmt: skip
    total = s.groupby(["family", "matrix"]).size()
    s = s[s["n"] > 0]
    if s.empty:
        return ["No other hotspot was found in a shuffled tensor.", ""]
    g = s.groupby(["family", "matrix"], sort=False)
    sds = g["new_sd"].agg(lambda x: [v for lst in x for v in lst])
    ranks = g["new_rank"].agg(lambda x: max(v for lst in x for v in lst))
    t = pd.DataFrame({
        "shuffles": total[g.size().index], "with new hotspots": g.size(),
        "new hotspots": g["n"].sum(),
        "magnitude / sd": sds.map(lambda v: f"{min(v):g} - {max(v):g}"),
        "largest magnitude rank (0: the tensor's largest)": ranks,
    }).reset_index().sort_values("new hotspots", ascending=False, kind="stable")  # fmt: skip
    every = [v for lst in s["new_sd"] for v in lst]
    return [
        f"The other {int(s['n'].sum())} ({_plural(len(s), 'shuffled tensor')} of "
        f"{_plural(len(t), 'matrix', 'matrices')}) were not hotspots in place; each is among "
        f"the {int(ranks.max()) + 1} largest |w| of its tensor, at {min(every):g} to "
        f"{max(every):g} sd of the tensor:",
        "",
        markdown_table(t.head(12)),
        "",
    ]


def _recall_section(r: Results, link: str) -> list[str]:
    det, plan = r.detectors, r.plan
    parts = []
    for kind in ("loud", "quiet", "hotspot"):
        knob = "hotspots" if kind == "hotspot" else "lines"
        d = r.recall[(r.recall["kind"] == kind) & np.isclose(r.recall["strength"], TARGETS[kind])]
        t = recall_table(d, getattr(det, knob).alpha, ["size", "layout", "dtype"])
        parts.append(t.assign(planted=f"{kind} {TARGETS[kind]:g}{UNIT[kind]}"))
    table = pd.concat(parts).pivot_table(index=["planted", "size"], columns=["dtype", "layout"],
                                         values="recall", sort=False)  # fmt: skip
    table.columns = [f"{dtype} {layout}" for dtype, layout in table.columns]
    table = table.reset_index()
    pr = r.pooled_recall[np.isclose(r.pooled_recall["strength"], TARGETS["pooled"])]
    pooled = recall_table(pr, det.residual.alpha, ["d", "tensors", "layout", "dtype"])
    pooled = pooled.pivot_table(index=["d", "tensors"], columns=["dtype", "layout"],
                                values="recall", sort=False)  # fmt: skip
    pooled.columns = [f"{dtype} {layout}" for dtype, layout in pooled.columns]
    pooled = pooled.reset_index()
    others = _at(r.recall[r.recall["kind"] != "hotspot"], det.lines.alpha)
    others_h = _at(r.recall[r.recall["kind"] == "hotspot"], det.hotspots.alpha)
    pct = dict.fromkeys([*table.columns[2:], *pooled.columns[2:]], ".0%")
    return [
        "## (b) Recall against planted strength",
        "",
        f"One structure per trial, planted in a Gaussian matrix (sd {cases.SIGMA}): "
        f"{plan.line_trials} trials per line kind, size, layout and dtype, {plan.hotspot_trials} "
        "per hotspot size, layout and dtype; every strength is planted in turn at the same place "
        "of the same matrix. Layout `rows`: the residual axis (the size's first number) is "
        "stored as rows (a Linear's out-axis), `columns`: as columns (its in-axis). The planted "
        "matrix is cast to float16 or bfloat16 with torch and read back. Loud or quiet line: "
        "the residual line times the strength, found when that line is reported with that "
        "direction; hotspot: one weight set to +-strength x sd, found when that exact weight is "
        f"reported. Pooled dims: {plan.pooled_trials} trials per d, layout and dtype; dim k "
        f"times the strength in each of T Gaussian d x {cases.POOLED_SIDE} matrices (the first "
        "T of one set of 40), found when its `pooled_expected` <= "
        f"`{KNOBS['residual']}`. Dashed: the target strength; dotted: {RECALL_TARGET:.0%}. "
        "Faint curves: sizes below 96x384, outside the targets.",
        "",
        f"![recall against planted strength]({link})",
        "",
        "Recall at the target strengths:",
        "",
        markdown_table(table, pct),
        "",
        markdown_table(pooled, pct),
        "",
        *_small_sizes(r),
        f"Other findings beside the planted one: {int(others['others'].sum())} lines in "
        f"{len(others)} tensors with a planted line, {int(others_h['others'].sum())} hotspots "
        f"in {len(others_h)} tensors with a planted hotspot.",
        "",
    ]


def _small_sizes(r: Results) -> list[str]:
    """Recall at the target strengths in the sizes below the targets' (where they stop)."""
    small = [f"{a}x{b}" for a, b in r.plan.sizes if not is_target_size(f"{a}x{b}")]
    out = []
    for size in small:
        parts = []
        for kind in ("loud", "quiet", "hotspot"):
            knob = "hotspots" if kind == "hotspot" else "lines"
            d = r.recall[(r.recall["kind"] == kind) & (r.recall["size"] == size)
                         & np.isclose(r.recall["strength"], TARGETS[kind])]  # fmt: skip
            recall = recall_table(d, getattr(r.detectors, knob).alpha, ["size"])["recall"]
            if len(recall):
                parts.append(f"{recall.iloc[0]:.0%} for {kind} {TARGETS[kind]:g}{UNIT[kind]}")
        out += [f"In {size} matrices, below the targets' sizes, recall at the target strengths "
                f"is {', '.join(parts)}.", ""]  # fmt: skip
    return out


def _sweep_section(r: Results, link: str) -> list[str]:
    text = [
        "## (c) The false-alarm knobs",
        "",
        "Each alpha is the expected number of false findings, under the detector's own null "
        "model, per axis (lines), per tensor (hotspots) or per model (pooled dims). Per alpha: "
        "false findings per 100 tensors (models) on each null, sizes >= 96x384 (shuffled "
        "hotspots: those that were not hotspots before), and recall at the target strength over "
        "the target sizes, layouts and dtypes, with the lowest size (d). The same null tensors "
        "and planted matrices serve every alpha. **Bold**: the default.",
        "",
    ]
    for knob in KNOBS:
        t = sweep_table(r, knob)
        default = getattr(r.detectors, knob).alpha
        good = [
            f"{a:g}" for a, ok in zip(t["alpha"], t["both targets"], strict=True) if ok == "yes"
        ]
        is_good = f"{default:g}" in good
        t["alpha"] = [f"**{a:g}**" if np.isclose(a, default) else f"{a:g}" for a in t["alpha"]]
        fmt = {c: ".1%" if c.startswith(("recall", "lowest")) else ".2f" for c in t.columns}
        text += [
            f"`{KNOBS[knob]}` (default {default:g}):",
            "",
            markdown_table(t, fmt),
            "",
            f"Alphas of the sweep that meet both targets: {', '.join(good) or 'none'}; the "
            f"default {default:g} {'is' if is_good else 'is not'} one of them.",
            "",
        ]
    return [*text, f"![false findings and recall against alpha]({link})", ""]


def page(r: Results, images: dict[str, Path], doc: Path, command: str) -> str:
    """docs/calibration.md from the records."""
    from run_all import machine

    det, plan = r.detectors, r.plan
    link = {k: os.path.relpath(p, doc.parent) for k, p in images.items()}
    v = pd.DataFrame(
        [
            {"target": x.target, "measured": x.measured, "met": "**yes**" if x.met else "**no**"}
            for x in verdicts(r)
        ]
    )
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    return "\n".join([
        "# Calibration of the detectors",
        "",
        "How often `find_lines`, `find_hotspots` and the pooled residual dims report structure "
        "in weights that have none, and how often they find structure planted at a known "
        "strength. Every number and verdict on this page is computed by "
        "`benchmarks/calibration.py` from its run.",
        "",
        f"Generated by `.venv/bin/python {command}` on {when}: the cases took "
        f"{r.seconds / 60:.1f} min of wall time in {r.workers} worker processes of one BLAS "
        f"thread each, {r.cpu_seconds / 60:.1f} CPU-min in all: "
        f"{100 * r.cpu_seconds / max(r.seconds * r.workers, 1e-9):.0f}% of {r.workers} cores "
        "over that time (the rest: start-up, the last tasks, other work on the machine). Root seed "
        f"{r.seed}: each task draws from its own numpy Generator, seeded by the root seed and the "
        "task's key. Rerun it to regenerate this page.",
        "",
        *machine(),
        f"- striate source: {r.source}",
        "",
        "## Verdict",
        "",
        f"At the defaults: `{KNOBS['lines']}` = {det.lines.alpha:g}, `{KNOBS['hotspots']}` = "
        f"{det.hotspots.alpha:g}, `{KNOBS['residual']}` = {det.residual.alpha:g}.",
        "",
        markdown_table(v),
        "",
        *_null_section(r),
        *_recall_section(r, link["recall"]),
        *_sweep_section(r, link["sweep"]),
        "## Method notes",
        "",
        "- A detector runs at each alpha of its sweep, loosest first; a tensor in which nothing "
        "is found at one alpha is not run again at the stricter ones (a smaller alpha reports a "
        "subset; the harness's test checks it). Recall curves are at the default alphas; the "
        "sweep reruns the trials at the target strength.",
        "- Student-t weights are Z / sqrt(chi2_df / df), drawn in float32.",
        f"- Counts: {plan.null_tensors} null tensors per family and size; {plan.real_tensors} "
        f"shuffled tensors per model; {plan.line_trials} line trials and {plan.hotspot_trials} "
        f"hotspot trials per case; {plan.pooled_trials} pooled trials per case; "
        f"{plan.pooled_null_models} pooled null models per family and d.",
        "",
        "Configs (resolved):",
        "",
        "```",
        *(f"{type(c).__name__}{asdict(c)}" for c in (det.lines, det.hotspots, det.residual)),
        "```",
        "",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> Results:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run: few cases of each kind")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--alphas", default="1e-4,1e-3,1e-2", help="the sweep of every alpha knob")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument(
        "--detectors",
        default="striate",
        help="a module with the names of striate's detectors (a candidate)",
    )
    ap.add_argument("--out-doc", type=Path, default=HERE.parent / "docs" / "calibration.md")
    ap.add_argument("--out-images", type=Path, default=HERE.parent / "docs" / "images")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    a = ap.parse_args(argv)
    api = cases.api(a.detectors)
    det = cases.Detectors(
        a.detectors,
        api.LinesConfig(),
        api.HotspotsConfig(),
        api.ResidualConfig(),
        tuple(float(x) for x in a.alphas.split(",")),
    )
    say = None if a.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    results = run(Plan.quick() if a.quick else Plan(), det, seed=a.seed, workers=a.workers,
                  progress=say)  # fmt: skip
    images = figures(results, a.out_images)
    command = "benchmarks/calibration.py" + (" --quick" if a.quick else "")
    a.out_doc.parent.mkdir(parents=True, exist_ok=True)
    a.out_doc.write_text(page(results, images, a.out_doc, command))
    if say:
        say(f"wrote {a.out_doc} after {results.seconds:.0f} s of cases")
    return results


if __name__ == "__main__":
    main()
