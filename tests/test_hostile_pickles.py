"""Pickles never run: a payload in a torch zip, a legacy torch file, a bare pickle or an .npy
object array is refused inside `hostile.Sandbox` (the `sandbox` fixture of conftest.py), and the
file it would create is never there. The control shows the same bytes do run under `pickle`."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hostile import Sandbox, assert_clean


class Payload:
    """Unpickled by a plain `pickle.load`, this creates the file `mark`."""

    def __init__(self, how: str, mark: Path) -> None:
        self.how, self.mark = how, str(mark)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        if self.how == "os.system":
            return os.system, (f"touch {self.mark}",)
        if self.how == "open":
            return open, (self.mark, "w")
        return subprocess.call, (["touch", self.mark],)


def _save_payload(layout: str, payload: Payload, folder: Path) -> Path:
    import torch

    path = folder / ("model.pt" if layout == "zip" else "model.bin")
    if layout == "bare pickle":
        path.write_bytes(pickle.dumps({"w": np.ones(3), "x": payload}, protocol=2))
    else:
        state = {"w": torch.ones(3), "x": payload}
        torch.save(state, path, _use_new_zipfile_serialization=layout == "zip")
    return path


@pytest.mark.parametrize("how", ["os.system", "open", "subprocess"])
@pytest.mark.parametrize("layout", ["zip", "legacy", "bare pickle"])
def test_pickled_code_never_runs(layout: str, how: str, tmp_path: Path, sandbox: Sandbox) -> None:
    mark = tmp_path / "pwned"
    path = _save_payload(layout, Payload(how, mark), tmp_path)
    outcome = sandbox.check(path)
    assert outcome.kind == "error", outcome
    assert_clean(outcome, str(path))
    assert not mark.exists()


def test_the_payload_is_live(tmp_path: Path) -> None:
    """The control: the same bytes given to `pickle.loads` do create the file."""
    mark = tmp_path / "pwned"
    data = _save_payload("bare pickle", Payload("open", mark), tmp_path).read_bytes()
    pickle.loads(data)["x"].close()
    assert mark.exists()


def test_npy_object_array_is_refused_unread(tmp_path: Path, sandbox: Sandbox) -> None:
    mark = tmp_path / "pwned"
    path = tmp_path / "w.npy"
    np.save(path, np.array([Payload("open", mark)], dtype=object), allow_pickle=True)
    outcome = sandbox.check(path)
    assert outcome.kind == "error" and "refused" in outcome.message
    assert not mark.exists()


def test_cli_subprocess_on_a_pickle_payload(tmp_path: Path) -> None:
    mark = tmp_path / "pwned"
    path = _save_payload("legacy", Payload("os.system", mark), tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "striate", "info", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("striate: error: ") and str(path) in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not mark.exists()
