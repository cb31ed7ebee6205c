"""Bounds check of a legacy (pre-zip) `torch.save` file before torch loads it.

torch's legacy loader allocates every storage at the size its pickle claims before it reads a
byte of the values, and reads each pickled string at the length its opcode claims: a flipped
byte asks for exabytes. `check_legacy_sizes` walks the file's pickles opcode by opcode
(`pickletools.genops`: nothing is built, imported or called), keeps just enough of a stack to
see the persistent ids `("storage", type, key, location, numel, view)` torch writes for
storages, and refuses a file whose storages claim more bytes than it holds. Every length an
opcode gives is read through a reader that never asks for more than the file has left.
"""

from __future__ import annotations

import pickletools
from pathlib import Path
from typing import IO, Any, cast

from striate.errors import StriateError

# torch's legacy files: magic number, protocol version, system info, the object, storage keys
_PICKLES = 5
# bytes per element of the storage classes torch names in legacy pickles ("torch FloatStorage")
_ELEMENT_SIZE = {
    "Double": 8, "Float": 4, "Half": 2, "BFloat16": 2, "Long": 8, "Int": 4, "Short": 2,
    "Char": 1, "Byte": 1, "Bool": 1, "ComplexDouble": 16, "ComplexFloat": 8,
}  # fmt: skip
_LINE_LIMIT = 1 << 16  # the text opcodes (GLOBAL, INT, ...) hold a short line


class _Bounded:
    """The file object genops reads from, capped at the bytes the file has left."""

    def __init__(self, fh: IO[bytes], size: int) -> None:
        self._fh, self.left = fh, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self._fh.read(n)
        self.left -= len(data)
        return data

    def readline(self) -> bytes:
        data = self._fh.readline(min(_LINE_LIMIT, self.left))
        self.left -= len(data)
        return data


def check_legacy_sizes(path: Path) -> None:
    """Raise StriateError when the pickles are malformed or claim more bytes than `path` holds."""
    size = path.stat().st_size
    claims: dict[str, int] = {}
    with path.open("rb") as fh:
        reader = _Bounded(fh, size)
        try:
            for _ in range(_PICKLES):
                if not reader.left:  # a bare pickle: torch says what it lacks
                    break
                _storages(reader, claims)
        except StriateError:
            raise
        except Exception as exc:  # genops: truncated argument, unknown opcode, ...
            raise StriateError(
                f"damaged pickle: {' '.join(str(exc).split())[:200]}",
                path=path,
                hint="the file may be truncated or corrupt",
            ) from None
    claimed = sum(claims.values())
    if claimed > size:
        raise StriateError(
            f"its pickle claims {claimed} bytes of tensor data but the file holds {size}",
            path=path,
            hint="the file is truncated or corrupt",
        )


def _storages(reader: _Bounded, claims: dict[str, int]) -> None:
    """Walk one pickle; record `key -> bytes` of each storage its persistent ids name.

    The stack holds the constants it needs (ints, strings, globals as "module name", tuples of
    these) and None for anything else; opcodes that build other objects pop and push by the
    counts `pickletools` gives for them.
    """
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[Any, Any] = {}
    for op, arg, _pos in pickletools.genops(cast("IO[bytes]", reader)):  # read/readline only
        name = op.name
        if name == "STOP":
            return
        if name == "MARK":
            marks.append(len(stack))
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(arg))
        elif name == "TUPLE":
            start = marks.pop()
            items = tuple(stack[start:])
            del stack[start:]
            stack.append(items)
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            if len(stack) < n:
                raise ValueError(f"{name} on a stack of {len(stack)}")
            items = tuple(stack[-n:])
            del stack[-n:]
            stack.append(items)
        elif name in ("BINPERSID", "PERSID"):
            _claim(stack.pop() if name == "BINPERSID" else arg, claims)
            stack.append(None)
        elif name == "NONE":
            stack.append(None)
        elif not op.stack_before and len(op.stack_after) == 1 and arg is not None:
            stack.append(arg)  # ints, strings, GLOBAL "module name", ...
        else:
            _generic(op, stack, marks)
    raise ValueError("pickle ends without STOP")


def _generic(op: pickletools.OpcodeInfo, stack: list[Any], marks: list[int]) -> None:
    before = op.stack_before
    if pickletools.markobject in before:
        below = before.index(pickletools.markobject)
        del stack[marks.pop() :]
    else:
        below = len(before)
    if len(stack) < below:
        raise ValueError(f"{op.name} on a stack of {len(stack)}")
    del stack[len(stack) - below :]
    stack.extend([None] * len(op.stack_after))


def _claim(pid: Any, claims: dict[str, int]) -> None:
    if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
        return  # torch itself refuses other persistent ids
    _, kind, key, _location, numel, _view = pid
    if not isinstance(numel, int) or numel < 0:
        raise ValueError(f"storage {key!r} has {numel!r} elements")
    stem = str(kind).rsplit(" ", 1)[-1].removesuffix("Storage")
    claims[str(key)] = max(claims.get(str(key), 0), numel * _ELEMENT_SIZE.get(stem, 1))
