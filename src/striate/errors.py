"""One exception type for everything striate refuses to do, with messages that say what next."""

from __future__ import annotations

from pathlib import Path


class StriateError(Exception):
    """Raised for any input striate cannot use.

    The message names the file (and tensor, shape) involved, what was tried, and what to do.

    Example:
        >>> raise StriateError("cannot read file", path="model.bin", hint="check the download")
        Traceback (most recent call last):
        striate.errors.StriateError: model.bin: cannot read file (check the download)
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        tensor: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = None if path is None else str(path)
        self.tensor = tensor
        self.hint = hint
        where = ": ".join(p for p in (self.path, f"tensor {tensor!r}" if tensor else None) if p)
        text = f"{where}: {message}" if where else message
        if hint:
            text += f" ({hint})"
        # one line: the CLI prints it as `striate: error: ...` and a library's message may not be
        super().__init__(" ".join(text.split()) if "\n" in text or "\r" in text else text)


class MissingExtraError(StriateError):
    """An optional library is needed for this file; the message gives the pip command."""

    def __init__(
        self,
        library: str,
        extra: str,
        *,
        path: str | Path | None = None,
        purpose: str = "reading this",
    ) -> None:
        super().__init__(
            f"{purpose} needs the '{library}' package, which is not installed",
            path=path,
            hint=f'pip install "striate[{extra}]"',
        )


def require(
    module: str, extra: str, *, path: str | Path | None = None, purpose: str = "reading this"
) -> object:
    """Import an optional dependency, or raise a StriateError naming the extra to install.

    `purpose` begins the message: "reading this needs the 'h5py' package, ...".
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module.split(".")[0], extra, path=path, purpose=purpose) from exc
