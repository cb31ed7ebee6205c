"""Settings overrides, the residual-dimension table, and non-finite findings."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from striate import StriateError
from striate.analyses.nonfinite import NonfiniteConfig, find_nonfinite
from striate.analyses.residual import residual_dims
from striate.config import apply_overrides, load_config_file


@dataclass(frozen=True)
class _Inner:
    z: float = 6.0
    cap: int = 20
    on: bool = True
    name: str = "x"


@dataclass(frozen=True)
class _Outer:
    lines: _Inner = field(default_factory=_Inner)


def test_overrides_parse_to_the_field_type() -> None:
    c = apply_overrides(_Outer(), ["lines.z=8", "lines.cap=3", "lines.on=false", "lines.name=y"])
    assert c.lines == _Inner(z=8.0, cap=3, on=False, name="y")
    assert isinstance(c.lines.z, float)
    assert _Outer().lines.z == 6.0  # the original is untouched


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("lines.nope=1", "unknown setting 'lines.nope'"),
        ("lines.cap=2.5", "setting 'lines.cap' wants a int, got '2.5'"),
        ("lines=3", "setting 'lines' is a section"),
        ("lines.z", "setting 'lines.z' is not key=value"),
    ],
)
def test_bad_overrides(setting: str, message: str) -> None:
    with pytest.raises(StriateError, match=message):
        apply_overrides(_Outer(), [setting])


def test_config_files(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text(json.dumps({"lines": {"z": 9, "on": False}}))
    (tmp_path / "c.toml").write_text("[lines]\nz = 7.5\ncap = 4\n")
    assert load_config_file(_Outer(), tmp_path / "c.json").lines == _Inner(z=9.0, on=False)
    assert load_config_file(_Outer(), tmp_path / "c.toml").lines == _Inner(z=7.5, cap=4)


def test_residual_dims_counts_tensors_and_ranks() -> None:
    findings = pd.DataFrame(
        [
            ("line", "a", 0, 10.0, 7),
            ("line", "a", 0, 12.0, 7),  # two lines, one tensor
            ("norm_outlier", "ln", 0, 30.0, 7),
            ("line", "b", 1, 8.0, 7),
            ("hotspot", "c", 1, 999.0, 20),
            ("periodic", "wpe", None, 0.9, 3),
            ("line", "d", 1, 9.0, None),  # not on the residual axis
        ],
        columns=["kind", "tensor", "layer", "score", "residual_dim"],
    )
    table = residual_dims(findings)
    assert list(table["residual_dim"]) == [7, 20]
    seven = table.iloc[0]
    counts = ("n_tensors", "n_lines", "n_norm_outliers", "n_hotspots")
    assert tuple(seven[c] for c in counts) == (3, 2, 1, 0)
    assert list(seven["layers"]) == [0, 1]
    expected = np.log10(1 + 12.0) + np.log10(1 + 30.0) + np.log10(1 + 8.0)
    assert seven["score"] == pytest.approx(expected, rel=1e-12)
    assert table.iloc[1]["score"] == pytest.approx(np.log10(1000.0), rel=1e-12)
    assert residual_dims(findings.iloc[0:0]).empty


def test_nonfinite_finding() -> None:
    w = np.zeros((4, 5), np.float32)
    assert find_nonfinite(w, NonfiniteConfig()) == []
    w[1, 2], w[3, 0], w[3, 4] = np.nan, np.inf, -np.inf
    (f,) = find_nonfinite(w, NonfiniteConfig(first=2))
    assert (f.kind, f.index, f.value, f.score) == ("nonfinite", (1, 2), 3.0, 3 / 20)
    assert f.extra == {"n_nan": 1, "n_inf": 2}
    assert f.detail == "3 non-finite values (1 NaN, 2 ±Inf), first at (1, 2), (3, 0)"
