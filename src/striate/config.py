"""Settings as frozen dataclasses; users change any field with `section.field=value`.

`apply_overrides(config, ["lines.alpha=1e-4", "images.enabled=false"])` returns a new config; a
config file (TOML or JSON: `{"lines": {"z": 8}}`) does the same. The resolved config is
written into every run's manifest.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from striate.errors import StriateError

C = TypeVar("C")


def apply_overrides(config: C, assignments: Iterable[str]) -> C:
    """Apply `section.field=value` strings (values parsed to the field's type)."""
    for text in assignments:
        key, sep, raw = text.partition("=")
        if not sep:
            raise StriateError(
                f"setting {text!r} is not key=value", hint="e.g. --set lines.alpha=1e-4"
            )
        config = _set(config, key.strip().split("."), raw.strip(), key)
    return config


def load_config_file(config: C, path: Path) -> C:
    """Apply a TOML or JSON file of `{section: {field: value}}`."""
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".toml":
            tomllib: Any = importlib.import_module("tomllib")  # Python 3.11+; JSON elsewhere
            data: Any = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (OSError, ValueError, ImportError) as exc:
        raise StriateError(f"cannot read config: {exc}", path=path) from None
    return apply_overrides(config, [f"{k}={json.dumps(v)}" for k, v in _flatten(data)])


def as_dict(config: object) -> dict[str, Any]:
    """The resolved config as plain data, for the manifest."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError("not a dataclass instance")
    return dataclasses.asdict(config)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            items += _flatten(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


def _set(obj: Any, path: list[str], raw: str, key: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else {}
    name = path[0]
    if name not in fields:
        known = ", ".join(sorted(fields))
        raise StriateError(f"unknown setting {key!r}", hint=f"known here: {known}")
    current = getattr(obj, name)
    if len(path) > 1:
        return dataclasses.replace(obj, **{name: _set(current, path[1:], raw, key)})
    if dataclasses.is_dataclass(current):
        raise StriateError(f"setting {key!r} is a section", hint=f"set one of its fields: {key}.X")
    return dataclasses.replace(obj, **{name: _parse(raw, current, key)})


def _parse(raw: str, current: Any, key: str) -> Any:
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw  # bare strings
    if isinstance(current, bool):
        if isinstance(value, str) and value.lower() in {"true", "false", "yes", "no", "on", "off"}:
            return value.lower() in {"true", "yes", "on"}
        if isinstance(value, bool):
            return value
    elif isinstance(current, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif isinstance(current, float) and isinstance(value, (int, float)):
        return float(value)
    elif isinstance(current, str):
        return str(value)
    elif isinstance(current, tuple) and isinstance(value, list):
        return tuple(value)
    elif current is None:
        return value
    raise StriateError(f"setting {key!r} wants a {type(current).__name__}, got {raw!r}")
