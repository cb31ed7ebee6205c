"""Reading and writing run directories. Every file is written atomically (temp file, rename)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pandas as pd

#: the tables of a scan run directory (shared/DESIGN.md, "Output contract")
TABLES = ("tensors", "findings", "residual_dims")
#: tables written only when their analysis found something to say
OPTIONAL_TABLES = ("ffn", "ffn_layers", "spectra")


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
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    with atomic_file(path, "w") as fh:
        json.dump(data, fh, indent=1, default=str)
        fh.write("\n")


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


def read_manifest(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    return data
