"""Reading and writing run directories: the one writer every command goes through.

Every file is written atomically (temp file, rename). Every run directory, whichever command
wrote it, has a `manifest.json` written from a `Manifest` (kind, striate version, source,
settings, per-tensor statuses, timings, figures, and what only that kind records), which
`striate report` reads back for every kind. A scan holds the directory's lock (`run_lock`) while
it writes, so two scans never mix their files.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import pandas as pd

from striate._version import __version__
from striate.errors import StriateError

#: the tables of a scan run directory (shared/DESIGN.md, "Output contract")
TABLES = ("tensors", "findings", "residual_dims")
#: tables written only when their analysis found something to say
OPTIONAL_TABLES = ("ffn", "ffn_layers", "spectra", "norm_links")
#: the kinds of run directory, by the command that writes them
KINDS = ("scan", "spectra", "ffn", "banding", "track", "diff", "experiment", "lab")
LOCK_FILE = ".striate.lock"
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_TEMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # what atomic_file's mkstemp names look like


@contextmanager
def atomic_file(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside `path`; it replaces `path` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report server must read it
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and disk_full(exc) and exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc  # name the file
        raise


def disk_full(exc: BaseException) -> bool:
    """True for the error of a write to a full disk (or an exhausted quota)."""
    return isinstance(exc, OSError) and exc.errno in _DISK_FULL


def remove_temp_files(run_dir: Path) -> None:
    """Delete the temporary files a killed scan left in `run_dir` and its images (hold its lock)."""
    for path in [*run_dir.glob(".*.tmp"), *(run_dir / "images").rglob(".*.tmp")]:
        if _TEMP.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)


@contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """Hold `folder/.striate.lock` (pid and host) for the block; refuse if another scan holds it.

    A lock left by a process that no longer runs on this host (a scan that was killed) is taken
    over with a note on stderr.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    me: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _lock_holder(path)
            if _alive(holder, me["host"]):
                raise StriateError(
                    f"another striate scan (pid {holder.get('pid')} on "
                    f"{holder.get('host')}) is writing into this directory",
                    path=folder,
                    hint=f"wait for it or choose another --out; if none runs, delete {LOCK_FILE}",
                ) from None
            print(
                f"striate: note: {folder}: taking over the lock of pid {holder.get('pid')}, "
                "which no longer runs",
                file=sys.stderr,
            )
            if _lock_holder(path) == holder:  # not already taken over by another scan
                path.unlink(missing_ok=True)
            continue
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
        except OSError as exc:  # a full disk, most likely: leave no empty lock behind
            path.unlink(missing_ok=True)
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        break
    else:  # another scan took the stale lock between our look and our retry
        raise StriateError("another striate scan took this directory's lock", path=folder)
    try:
        yield
    finally:
        if _lock_holder(path) == me:
            path.unlink(missing_ok=True)


def _lock_holder(path: Path) -> dict[str, Any]:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # being written this instant, or not ours: treat as held
        return {"pid": "?", "host": "?"}
    return holder if isinstance(holder, dict) else {"pid": "?", "host": "?"}


def _alive(holder: dict[str, Any], host: str) -> bool:
    """Whether the lock's process may still run; only a pid on this host can be checked."""
    pid = holder.get("pid")
    if holder.get("host") != host or not isinstance(pid, int) or sys.platform == "win32":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


@functools.cache
def code_digest(root: Path | None = None) -> str:
    """BLAKE2b of the source files of striate (or of the package at `root`): a cache key that
    a change to any analysis (a new column, a fixed bug) invalidates, where the version number
    would not change."""
    root = root or Path(__file__).resolve().parent
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def digest(*parts: object, data: bytes | memoryview | None = None) -> str:
    """BLAKE2b (128 bits) of the reprs of `parts`, then `data`."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\0")
    if data is not None:
        h.update(data)
    return h.hexdigest()


def write_json(path: Path, data: Any) -> None:
    with atomic_file(path, "w") as fh:
        json.dump(data, fh, indent=1, default=str)
        fh.write("\n")


def read_json(path: Path) -> Any:
    """A JSON file this package wrote (summary.json, claims.json)."""
    return json.loads(path.read_text(encoding="utf-8"))


def write_table(path: Path, table: pd.DataFrame) -> None:
    with atomic_file(path) as fh:
        table.to_parquet(fh, index=False)


def read_table(run_dir: Path, name: str) -> pd.DataFrame:
    table = pd.read_parquet(run_dir / f"{name}.parquet")
    if "index" in table.columns:  # list<int64> with nulls comes back as float arrays
        table["index"] = table["index"].map(_int_list)
    return table


def _int_list(values: Any) -> list[int | None] | None:
    if values is None:
        return None
    return [None if pd.isna(v) else int(v) for v in values]


def now() -> str:
    """The time now, as manifests record it (UTC, ISO 8601, seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Manifest:
    """What `manifest.json` says of a run, whichever command wrote it.

    The fields every kind has come first in the file; `extra` holds what only one kind records
    (a scan's model facts and cache counts, a track's checkpoints, an experiment's conditions).
    """

    kind: str  # one of KINDS
    source: str | None = None  # the model (or series, or setting) the run is of
    settings: dict[str, Any] = field(default_factory=dict)  # resolved, as plain data
    tensors: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {status, error}
    figures: Any = None  # paths relative to the run directory (a list, or lists by group)
    started: str = field(default_factory=now)
    finished: str | None = None
    seconds: float | None = None  # wall time of the whole run
    extra: dict[str, Any] = field(default_factory=dict)
    striate_version: str = __version__
    code: str = field(default_factory=lambda: code_digest())  # the source files that ran

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown run kind {self.kind!r} (one of {', '.join(KINDS)})")

    def finish(self, started: float) -> None:
        """Record the end of the run; `started` is its `time.time()` at the start (and becomes
        `started`: a manifest made at the end of a run still says when the run began)."""
        self.started = datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds")
        self.finished = now()
        self.seconds = round(time.time() - started, 3)

    def as_dict(self) -> dict[str, Any]:
        """The manifest as `manifest.json` holds it: the common fields, then `extra`'s."""
        common = {"striate_version": self.striate_version, "code": self.code, "kind": self.kind,
                  "source": self.source, "settings": self.settings, "started": self.started,
                  "finished": self.finished, "seconds": self.seconds, "figures": self.figures,
                  "tensors": self.tensors}  # fmt: skip
        clash = set(common) & set(self.extra)
        if clash:
            raise ValueError(f"extra repeats common manifest fields: {sorted(clash)}")
        return common | self.extra


def write_manifest(run_dir: Path, manifest: Manifest) -> dict[str, Any]:
    """Write `run_dir/manifest.json` (atomically); returns what was written, as a dict."""
    data = manifest.as_dict()
    write_json(run_dir / "manifest.json", data)
    return data


def read_manifest(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    return data
