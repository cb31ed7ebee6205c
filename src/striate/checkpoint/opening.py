"""`open_checkpoint`: from a path, folder, sample name or Hugging Face id to a Checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

from striate.checkpoint.base import Checkpoint, MultiFileCheckpoint, library_error
from striate.checkpoint.registry import read_head, reader_classes
from striate.errors import StriateError

# Files in a model folder that are never weights.
_NOT_WEIGHTS = {".json", ".txt", ".md", ".py", ".model", ".yaml", ".yml", ".gitattributes"}


def open_checkpoint(target: str | Path) -> Checkpoint:
    """Open a checkpoint file or folder, `sample:NAME`, or a Hugging Face id `org/name`.

    The format is found from the file's signature first and its suffix second.
    Raises StriateError naming the file, what was tried and what to do.
    """
    text = str(target)
    if text.startswith("sample:"):
        from striate.samples import sample_path

        return open_checkpoint(sample_path(text.removeprefix("sample:")))
    path = Path(text).expanduser()
    if path.is_dir():
        return _open_folder(path)
    if path.is_file():
        return _open_file(path)
    if looks_like_hub_id(text):
        from striate.checkpoint.hf_cache import resolve_hub_id

        return _open_folder(resolve_hub_id(text))
    raise StriateError("no such file or folder", path=path, hint=_nearest(path))


def looks_like_hub_id(text: str) -> bool:
    """Whether `text` can only be a Hugging Face id `org/name`: two non-empty parts, not a
    relative or home path, no weight-file suffix, and no local folder named like its `org`
    (then it is a mistyped path, e.g. `runs/minlm`)."""
    parts = text.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not text.startswith((".", "~"))
        and Path(parts[1]).suffix.lower() not in {x for c in reader_classes() for x in c.suffixes}
        and not Path(parts[0]).exists()
    )


def _nearest(path: Path) -> str:
    """What to do about a path that does not exist: its deepest existing parent, and the
    entries there whose names are closest to the missing one."""
    import difflib

    parent = path.absolute().parent
    while not parent.is_dir():
        parent = parent.parent
    missing = path.absolute().relative_to(parent).parts[0]
    try:
        names = sorted(p.name for p in parent.iterdir() if not p.name.startswith("."))
    except OSError:
        names = []
    close = difflib.get_close_matches(missing, names, n=3, cutoff=0.6)
    here = Path.cwd()
    shown = parent.relative_to(here) if parent.is_relative_to(here) else parent
    if close:
        return f"{shown}/ has no {missing!r}; did you mean {', '.join(map(repr, close))}?"
    return (
        f"{shown}/ exists but has no {missing!r}; give a checkpoint file, a model folder, "
        "`sample:NAME` (see `striate samples`) or a Hugging Face id like org/name"
    )


def _open_file(path: Path) -> Checkpoint:
    if path.stat().st_size == 0:
        raise StriateError("file is empty", path=path)
    head = read_head(path)
    classes = reader_classes()
    for cls in classes:
        if _sniffs(cls, path, head):
            return _construct(cls, path)
    suffix = path.suffix.lower()
    for cls in classes:
        if suffix in cls.suffixes:
            return _construct(cls, path)
    tried = ", ".join(cls.format for cls in classes)
    raise StriateError(
        f"not a checkpoint striate can read (tried {tried} by signature and suffix)",
        path=path,
        hint="check the file is complete, or convert it to safetensors",
    )


def _sniffs(cls: type[Checkpoint], path: Path, head: bytes) -> bool:
    try:
        return cls.sniff(path, head)
    except Exception:  # a damaged file fails its signature check; the suffix may still fit
        return False


def _construct(cls: type[Checkpoint], path: Path) -> Checkpoint:
    try:
        return cls(path)
    except StriateError:
        raise
    except Exception as exc:  # a library refusing a broken file
        raise StriateError(
            f"cannot open as {cls.format}: {library_error(exc)}",
            path=path,
            hint="the file may be truncated or corrupt",
        ) from exc


def _open_folder(folder: Path) -> Checkpoint:
    indexes = sorted(folder.glob("*.index.json"))
    if indexes:
        return _open_index(indexes[0])
    candidates = [
        p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() not in _NOT_WEIGHTS and not p.name.startswith(".")
    ]
    opened: dict[str, list[Checkpoint]] = {}
    for p in candidates:
        try:
            ckpt = _open_file(p)
        except StriateError:
            continue  # tokenizers, external-data blobs and the like
        opened.setdefault(ckpt.format, []).append(ckpt)
    if not opened:
        raise StriateError(
            "no checkpoint file in this folder",
            path=folder,
            hint=f"looked at {len(candidates)} files; give the weights file itself",
        )
    preference = [cls.format for cls in reader_classes()]
    chosen = min(opened, key=preference.index)
    for fmt, parts in opened.items():
        if fmt != chosen:
            for part in parts:
                part.close()
    parts = opened[chosen]
    if len(parts) == 1:
        return parts[0]
    multi = MultiFileCheckpoint(folder, parts)
    ignored = sorted(f for f in opened if f != chosen)
    if ignored:
        multi.metadata["striate.ignored_formats"] = ignored
    return multi


def _open_index(index: Path) -> Checkpoint:
    """A sharded checkpoint: `model.safetensors.index.json` or `pytorch_model.bin.index.json`."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        shards = list(dict.fromkeys(str(v) for v in weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StriateError(f"unreadable shard index: {exc}", path=index) from exc
    missing = [s for s in shards if not (index.parent / s).is_file()]
    if missing:
        raise StriateError(
            f"the index names {len(missing)} missing shard(s): {', '.join(missing[:3])}",
            path=index,
            hint="download every shard the index lists",
        )
    parts = [_open_file(index.parent / s) for s in shards]
    multi = MultiFileCheckpoint(index.parent, parts)
    for name, shard in weight_map.items():
        if name not in multi.names():
            raise StriateError(
                f"the index lists it in {shard} but it is not there", path=index, tensor=name
            )
    return multi
