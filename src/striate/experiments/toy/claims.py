"""What the lab settings share for their claims: the source, deviations, figures over seeds.

The lab reproduces Hobbhahn (2023), the seed text `SEED_FILE`, which replicates the "basic
results" and the privileged-basis section of Elhage et al. (2022, TMS) and the data double
descent of Henighan et al. (2023, SMDD), then extends them (an MLP block, a toy unembedding,
the limits of reconstruction). Each setting's claims (`striate.experiments.claims.Claim`)
quote it; the measures read one seed's summary.json.

A setting's deviations compare a config with what the source fixes (`Known`: a field and the
source's value) and, for the fields the source leaves to us, with the paper preset (our run of
the source's setting), so the quick preset lists more than the paper one.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from striate import store

SEED_FILE = "shared/seeds/004_c7c1cbccd8c4e808.txt"
#: a deviation every toy setting shares
BIAS_DECAY = "AdamW's weight decay also applies to the biases (the source does not say)."


def quote(*sentences: str, note: str = "") -> str:
    """A claim's source: the seed file, its sentences, and what they refer to.

    >>> quote("I can replicate all of the findings", note="TMS, figure 3")
    "shared/seeds/004_c7c1cbccd8c4e808.txt: 'I can replicate all of the findings' (TMS, figure 3)"
    """
    text = " and ".join(f"'{s}'" for s in sentences)
    return f"{SEED_FILE}: {text}" + (f" ({note})" if note else "")


@dataclass(frozen=True)
class Known:
    """A config field whose value in the source's setting we know."""

    field: str  # dotted: "train.steps"
    value: Any  # the source's value
    says: str  # the source's setting in words: "the source trains 50,000 full-batch steps"


def field_value(config: Any, dotted: str) -> Any:
    return functools.reduce(getattr, dotted.split("."), config)


def show(value: Any) -> str:
    """A config value in a sentence: `0.001`, `10,000`, `0, 0.9, 0.99`."""
    if isinstance(value, (tuple, list)):
        return ", ".join(show(v) for v in value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def deviations(
    config: Any,
    known: Sequence[Known],
    reference: Any,
    compared: Sequence[str],
    always: Sequence[str] = (),
) -> list[str]:
    """Each way `config` differs from the source's setting, as sentences: every `known` field
    set otherwise, every field of `compared` (ones the source leaves open) set otherwise than in
    `reference` (the paper preset), then the `always` sentences (what no field expresses).

    >>> from striate.experiments.toy.train import TrainConfig
    >>> deviations(TrainConfig(steps=2000, lr=0.01), [Known("steps", 50_000, "the source: 50,000")],
    ...            TrainConfig(), ["lr", "batch_size"])
    ['steps = 2,000: the source: 50,000.', 'lr = 0.01 (the paper preset: 0.001).']
    """
    out = [f"{k.field} = {show(field_value(config, k.field))}: {k.says}."
           for k in known if field_value(config, k.field) != k.value]  # fmt: skip
    for name in compared:
        ours, paper = field_value(config, name), field_value(reference, name)
        if ours != paper:
            out.append(f"{name} = {show(ours)} (the paper preset: {show(paper)}).")
    return out + list(always)


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation of x and y (average ranks for ties); None when it is
    undefined: fewer than 3 points, or either side constant.

    >>> rank_correlation([0.0, 0.9, 0.99], [5, 8, 11]), rank_correlation([0, 1], [1, 2])
    (1.0, None)
    """
    if len(x) < 3:
        return None
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return None
    r = float(np.corrcoef(rx, ry)[0, 1])
    return r if math.isfinite(r) else None


def over_seeds(
    seed_dirs: Sequence[Path], rows: Callable[[dict[str, Any]], list[dict[str, Any]]]
) -> pd.DataFrame:
    """One table of `rows(summary)` of every seed's summary.json, with a `seed` column."""
    frames = []
    for k, run in enumerate(seed_dirs):
        seed = store.read_json(run / "manifest.json").get("seed", k)
        frames.append(pd.DataFrame(rows(store.read_json(run / "summary.json"))).assign(seed=seed))
    table: pd.DataFrame = pd.concat(frames, ignore_index=True)
    return table


__all__ = [
    "BIAS_DECAY",
    "SEED_FILE",
    "Known",
    "deviations",
    "over_seeds",
    "quote",
    "rank_correlation",
]
