"""Bounds check of a GGUF header before the `gguf` library reads it.

`gguf.GGUFReader` trusts the header's counts: an array of a million-billion one-byte items past
the end of the file keeps it looping (and appending) for ever, since each read past the end
gives an empty view and moves on by zero bytes. `check_gguf_header` walks the same layout with
every count and length checked against the bytes that remain, and caps the array items a
header may hold, so the reader that follows is bounded by the file's size.

Layout (v2/v3, little- or big-endian): magic, u32 version, u64 tensor count, u64 key-value
count; key-values (string key, u32 type, value); tensor infos (string name, u32 n_dims, u64 dims,
u32 type, u64 offset). A string is a u64 length and its bytes; an array a u32 item type, a u64
count and its items.
"""

from __future__ import annotations

import math
import mmap
import struct
from collections.abc import Mapping
from pathlib import Path

from striate.errors import StriateError

# bytes of each scalar value type: u8 i8 u16 i16 u32 i32 f32 bool, then u64 i64 f64
_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9
_VERSIONS = (2, 3)
# tokenizer vocabularies and merges come to ~10^6 items; the gguf reader makes a view per item
MAX_ARRAY_ITEMS = 1 << 24
_MAX_NESTING = 8
_MAX_DIMS = 4  # GGML_MAX_DIMS
_SMALLEST_KV = 8 + 4 + 1  # empty key, type, one-byte value
_SMALLEST_TENSOR_INFO = 8 + 4 + 4 + 8  # empty name, no dims, type, offset


class _Header:
    def __init__(self, data: mmap.mmap, path: Path, order: str) -> None:
        self.data, self.path, self.order = data, path, order
        self.pos = 0
        self.items = 0  # array items seen so far

    def fail(self, message: str) -> StriateError:
        return StriateError(message, path=self.path, hint="the file is truncated or corrupt")

    def take(self, n: int, what: str) -> int:
        """Skip `n` bytes of `what`; return where they start."""
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(
                f"{what} ({n} bytes at byte {self.pos}) runs past the end of the "
                f"{len(self.data)}-byte file"
            )
        start, self.pos = self.pos, self.pos + n
        return start

    def number(self, fmt: str, what: str) -> int:
        start = self.take(struct.calcsize(fmt), what)
        value: int = struct.unpack_from(self.order + fmt, self.data, start)[0]
        return value

    def string(self, what: str) -> bytes:
        n = self.number("Q", f"length of {what}")
        start = self.take(n, what)
        return bytes(self.data[start : start + min(n, 200)])

    def value(self, kind: int, key: str, depth: int = 0) -> None:
        if kind in _SCALAR:
            self.take(_SCALAR[kind], f"value of {key!r}")
        elif kind == _STRING:
            self.string(f"string value of {key!r}")
        elif kind == _ARRAY and depth < _MAX_NESTING:
            item = self.number("I", f"item type of {key!r}")
            count = self.number("Q", f"item count of {key!r}")
            self.items += count
            if self.items > MAX_ARRAY_ITEMS:
                raise self.fail(
                    f"key-value {key!r} brings the header's array items to {self.items}, "
                    f"past the {MAX_ARRAY_ITEMS} striate reads"
                )
            if item in _SCALAR:
                self.take(count * _SCALAR[item], f"{count} items of {key!r}")
            else:
                for _ in range(count):
                    self.value(item, key, depth + 1)
        else:
            raise self.fail(f"key-value {key!r} has unknown type {kind}")

    def count(self, n: int, what: str, smallest: int) -> int:
        """`n`, checked against the room left for items of at least `smallest` bytes each."""
        room = (len(self.data) - self.pos) // smallest
        if n > room:
            raise self.fail(f"the header claims {n} {what}; the file has room for {room}")
        return n


def check_gguf_header(path: Path, type_sizes: Mapping[int, tuple[int, int]]) -> None:
    """Raise StriateError when a count, length or offset in the GGUF header at `path` lies.

    `type_sizes` maps each tensor type the gguf library knows to (elements per block, bytes per
    block), as `gguf.GGML_QUANT_SIZES` does. Files of a version other than 2 or 3 are left to
    the gguf library, which names the version.
    """
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if len(data) < 8 or data[:4] != b"GGUF":
            return
        (version,) = struct.unpack_from("<I", data, 4)
        order = ">" if version & 0xFFFF == 0 else "<"  # written on a big-endian machine
        header = _Header(data, path, order)
        header.take(4, "magic")
        if header.number("I", "version") not in _VERSIONS:
            return
        tensors = header.number("Q", "tensor count")
        kvs = header.number("Q", "key-value count")
        alignment = 32
        for _ in range(header.count(kvs, "key-values", _SMALLEST_KV)):
            key = header.string("key").decode("utf-8", "replace")
            kind = header.number("I", f"type of {key!r}")
            if key == "general.alignment" and kind == 4:  # u32, as the gguf library requires
                alignment = header.number("I", f"value of {key!r}") or 1
            else:
                header.value(kind, key)
        infos = []
        for _ in range(header.count(tensors, "tensors", _SMALLEST_TENSOR_INFO)):
            name = header.string("tensor name").decode("utf-8", "replace")
            n_dims = header.number("I", f"dimension count of tensor {name!r}")
            if n_dims > _MAX_DIMS:
                raise header.fail(
                    f"tensor {name!r} has {n_dims} dimensions; GGUF allows {_MAX_DIMS}"
                )
            dims = [header.number("Q", f"shape of tensor {name!r}") for _ in range(n_dims)]
            kind = header.number("I", f"type of tensor {name!r}")
            infos.append((name, dims, kind, header.number("Q", f"offset of tensor {name!r}")))
        start = -(-header.pos // alignment) * alignment
        for name, dims, kind, offset in infos:
            _check_tensor(header, name, dims, kind, start + offset, type_sizes)


def _check_tensor(
    header: _Header,
    name: str,
    dims: list[int],
    kind: int,
    at: int,
    type_sizes: Mapping[int, tuple[int, int]],
) -> None:
    def fail(message: str) -> StriateError:
        return StriateError(message, path=header.path, tensor=name, hint="the file is corrupt")

    if kind not in type_sizes:
        raise fail(
            f"unknown tensor type {kind} (the installed gguf package knows {len(type_sizes)})"
        )
    block, block_bytes = type_sizes[kind]
    if dims and dims[0] % block:
        raise fail(f"rows of {dims[0]} are not whole blocks of {block}")
    nbytes = math.prod(dims) // block * block_bytes
    if at + nbytes > len(header.data):
        raise fail(
            f"its {nbytes} bytes at byte {at} run past the end of the {len(header.data)}-byte file"
        )
