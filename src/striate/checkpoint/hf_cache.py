"""Hugging Face model ids (`org/name`) resolved through the local Hugging Face cache.

The cache layout (`huggingface_hub`): `<cache>/models--org--name/refs/<revision>` holds a commit
hash and `snapshots/<hash>/` the files. The cache is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
`~/.cache/huggingface/hub`. A model not in the cache is downloaded with `huggingface_hub` when
that package is installed and the network allows; otherwise the error says how to get it.
"""

from __future__ import annotations

import os
from pathlib import Path

from striate.errors import StriateError

_WEIGHT_PATTERNS = ["*.json", "*.safetensors", "*.bin", "*.gguf", "*.onnx", "*.h5", "*.pth"]


def hub_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path("~/.cache/huggingface/hub").expanduser()


def resolve_hub_id(model_id: str, revision: str = "main") -> Path:
    """The snapshot folder of `org/name` in the local cache (downloading it if possible)."""
    if "@" in model_id:
        model_id, revision = model_id.split("@", 1)
    cache = hub_cache_dir()
    repo = cache / ("models--" + model_id.replace("/", "--"))
    snapshot = _cached_snapshot(repo, revision)
    if snapshot is not None:
        return snapshot
    return _download(model_id, revision, cache)


def _cached_snapshot(repo: Path, revision: str) -> Path | None:
    ref = repo / "refs" / revision
    if ref.is_file():
        candidate = repo / "snapshots" / ref.read_text(encoding="utf-8").strip()
        return candidate if candidate.is_dir() else None
    direct = repo / "snapshots" / revision  # a commit hash given as the revision
    if direct.is_dir():
        return direct
    return None


def _download(model_id: str, revision: str, cache: Path) -> Path:
    where = f"not in the local Hugging Face cache ({cache})"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        raise StriateError(
            f"{where} and HF_HUB_OFFLINE is set",
            path=model_id,
            hint=f"download it first: huggingface-cli download {model_id}",
        )
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise StriateError(
            f"{where}, and huggingface_hub is not installed to download it",
            path=model_id,
            hint=f"pip install huggingface_hub && huggingface-cli download {model_id}",
        ) from None
    try:
        folder = snapshot_download(
            model_id, revision=revision, cache_dir=cache, allow_patterns=_WEIGHT_PATTERNS
        )
    except Exception as exc:  # network unreachable, repo missing, gated model ...
        raise StriateError(
            f"{where} and the download failed ({type(exc).__name__})",
            path=model_id,
            hint="check the id and your network, or pass a local path",
        ) from None
    return Path(folder)
