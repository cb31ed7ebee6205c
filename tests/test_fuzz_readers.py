"""Hypothesis mutates valid checkpoints of every format; every reader must hold.

Each example takes one tiny valid checkpoint (`hostile.VALID`: a file, or a set of files such as
a manifest and its shard), picks one of its files and mutates its bytes: bits flipped, bytes
overwritten, integers that make good lies (0, 2^31 - 1, 2^60, -1, the file size, ...) written
over what may be a length or an offset, ranges deleted or duplicated, the file cut short. Half
the positions fall in the first 256 bytes, where the headers are. The result is opened and read
in full inside `hostile.Sandbox` (2 GiB address-space cap, 30 s per answer): it must succeed or
raise a one-line StriateError naming the file, never another exception, a hang or a MemoryError.

The suite runs `STRIATE_FUZZ_EXAMPLES` examples per format (default 80, ~30 s in all on two
cores); the long run in docs/security.md sets it higher.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hostile import VALID, Sandbox, assert_clean
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("STRIATE_FUZZ_EXAMPLES", "80"))
#: the suite's short run is the same inputs every time (a CI failure reproduces); a long run
#: with STRIATE_FUZZ_EXAMPLES set explores new ones
LONG_RUN = "STRIATE_FUZZ_EXAMPLES" in os.environ
HEADER = 256  # bytes where the headers (and their lengths and offsets) lie
LIES = [0, 1, 2, 7, 255, 2**15, 2**16 - 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**60, 2**62,
        2**63 - 1, 2**63, 2**64 - 1]  # fmt: skip


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox()
    yield box
    box.close()


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory, sandbox: Sandbox) -> dict[str, Path]:
    """kind -> a valid checkpoint of that kind (a file, or a sharded model's folder), alone in
    its folder; each is checked to open, which also starts the sandbox once."""
    made = {}
    for kind, build in VALID.items():
        target = build(tmp_path_factory.mktemp(kind))
        assert sandbox.check(target).kind == "ok", kind
        made[kind] = target
    return made


@st.composite
def _position(draw: st.DrawFn, size: int) -> int:
    limit = min(size, HEADER) if draw(st.booleans()) else size
    return draw(st.integers(0, max(limit - 1, 0)))


@st.composite
def _mutation(draw: st.DrawFn, size: int) -> tuple[Any, ...]:
    kind = draw(st.sampled_from(["flip", "bytes", "lie", "cut", "delete", "duplicate"]))
    at = draw(_position(size))
    if kind == "flip":
        return kind, at, draw(st.integers(0, 7))
    if kind == "bytes":
        return kind, at, draw(st.binary(min_size=1, max_size=8))
    if kind == "lie":
        value = draw(st.sampled_from([*LIES, size, size + 1, size - at]))
        return kind, at, value, draw(st.sampled_from([2, 4, 8]))
    if kind == "cut":
        return (kind, at)
    return kind, at, draw(st.integers(1, 64)), draw(_position(size))


def _apply(data: bytearray, mutation: tuple[Any, ...]) -> bytearray:
    kind, at = mutation[0], min(mutation[1], max(len(data) - 1, 0))
    if not data:
        return data
    if kind == "flip":
        data[at] ^= 1 << mutation[2]
    elif kind == "bytes":
        data[at : at + len(mutation[2])] = mutation[2]
    elif kind == "lie":
        value, width = mutation[2], mutation[3]
        data[at : at + width] = (value % (1 << (8 * width))).to_bytes(width, "little")
    elif kind == "cut":
        del data[at:]
    elif kind == "delete":
        del data[at : at + mutation[2]]
    else:  # duplicate a range at another place, shifting what follows
        data[mutation[3] : mutation[3]] = data[at : at + mutation[2]]
    return data


@pytest.mark.parametrize("kind", list(VALID))
@settings(
    max_examples=EXAMPLES,
    derandomize=not LONG_RUN,
    # a hang is the sandbox's to catch (30 s); the long run also flags slowness
    deadline=timedelta(seconds=20) if LONG_RUN else None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_mutated_files(kind: str, sources: dict[str, Path], sandbox: Sandbox, data: Any) -> None:
    target = sources[kind]
    source = target if target.is_dir() else target.parent
    victim = data.draw(st.sampled_from(sorted(p.name for p in source.iterdir())), label="file")
    raw = bytearray((source / victim).read_bytes())
    mutations = data.draw(st.lists(_mutation(len(raw)), min_size=1, max_size=4), label="edits")
    for mutation in mutations:
        raw = _apply(raw, mutation)
    with tempfile.TemporaryDirectory(prefix="striate-fuzz-") as tmp:
        work = Path(tmp) / kind
        shutil.copytree(source, work)
        (work / victim).write_bytes(bytes(raw))
        outcome = sandbox.check(work / target.relative_to(source))
        assert_clean(outcome, [str(work)])
