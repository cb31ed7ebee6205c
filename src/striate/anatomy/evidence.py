"""What a config.json or GGUF header says about the model, read defensively.

Values come from JSON or from format readers (numpy scalars, bytes), so every read checks types
and returns None rather than trusting a key.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model", "dim", "embed_dim")
LAYER_KEYS = ("num_hidden_layers", "n_layer", "n_layers", "num_layers")


def as_int(value: Any) -> int | None:
    """A positive int from an int-like value (numpy scalars too), else None. Bools are not ints."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (list, tuple)) and len(value) == 1:
        return as_int(value[0])
    try:
        number = operator.index(value)
    except TypeError:
        return None
    return number if number > 0 else None


def as_str(value: Any) -> str | None:
    """A str from str or bytes, else None."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else None


def architecture(metadata: Mapping[str, Any]) -> str | None:
    """GGUF `general.architecture` ("llama", "qwen2", ...), lower case."""
    arch = as_str(metadata.get("general.architecture"))
    return arch.lower() if arch else None


def declared(config: Mapping[str, Any], metadata: Mapping[str, Any]) -> list[str]:
    """Lower-case names the files give the model: config `model_type`, `architectures`, GGUF
    `general.architecture`. Families compare these by prefix (`"bertmodel"` starts `"bert"`)."""
    names = [as_str(config.get("model_type")), architecture(metadata)]
    archs = config.get("architectures")
    if isinstance(archs, list):
        names += [as_str(a) for a in archs]
    return [n.lower() for n in names if n]


def hidden_size(config: Mapping[str, Any], metadata: Mapping[str, Any]) -> int | None:
    """Width of the residual stream from config keys or GGUF `<arch>.embedding_length`."""
    for key in HIDDEN_KEYS:
        if (value := as_int(config.get(key))) is not None:
            return value
    arch = architecture(metadata)
    return as_int(metadata.get(f"{arch}.embedding_length")) if arch else None


def n_layers(config: Mapping[str, Any], metadata: Mapping[str, Any]) -> int | None:
    """Number of blocks from config keys or GGUF `<arch>.block_count`."""
    for key in LAYER_KEYS:
        if (value := as_int(config.get(key))) is not None:
            return value
    arch = architecture(metadata)
    return as_int(metadata.get(f"{arch}.block_count")) if arch else None
