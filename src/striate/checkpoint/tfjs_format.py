"""TensorFlow.js weights, in two layouts.

Plain: a `*weights_manifest.json`, or a `model.json` with a `weightsManifest` key, beside binary
shard files. Give the manifest itself: `.json` files in a folder are not opened.

JS-module-wrapped (the npm package nsfwjs ships its models so): `model.min.js` holds the
model.json as a JS literal, `group1-shard1of6.min.js` ... each hold one shard as a base64 string.
The literal is the one assigned to `exports` (`module.exports = ...`; browserify's minified
bundles write `n.exports={modelTopology:...}` and `h.exports="SgJ5..."`) or given to
`export default`, and may be wrapped in `JSON.parse(...)`. It is parsed as data, never run: a
minified object literal is fine (unquoted keys, `.5`, `!0`), code is not. Such a `.js` file is
found by its `weightsManifest` key, and a folder of them opens its model file.

A manifest is a list of groups `{"paths": [shard files], "weights": [specs]}`; each group's
tensors lie one after another in its shard files read as one concatenated stream. A path names
the shard file itself or, wrapped, that name plus `.min.js` or `.js`. A wrapped shard is decoded
only where a tensor lies: bytes [a, b) of a shard are the base64 characters
[4 * (a // 3), 4 * ceil(b / 3)). A spec may carry `quantization`:
`{"dtype": "uint8"|"uint16", "min", "scale"}` (value = q * scale + min) or `{"dtype": "float16"}`.
"""

from __future__ import annotations

import base64
import json
import math
import mmap
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from striate.checkpoint.base import Checkpoint, TensorInfo
from striate.checkpoint.js_literal import literal_at
from striate.errors import StriateError

# stored element type -> numpy type (TF.js writes little-endian)
_DTYPES = {
    "float32": "<f4",
    "int32": "<i4",
    "bool": "u1",
    "uint8": "u1",
    "uint16": "<u2",
    "float16": "<f2",
}
# a model.json puts its (possibly large) modelTopology before the manifest: look at both ends
_SNIFF_BYTES = 256 * 1024
_MANIFEST_KEY = re.compile(rb'"weightsManifest"\s*:\s*\[')
_GROUP_START = re.compile(rb"^\s*\[\s*\{")
# in JS the key may be bare, quoted, or quoted inside a JSON.parse("...") string
_JS_MANIFEST_KEY = re.compile(rb"""\bweightsManifest\\?["']?\s*:\s*\[""")
_JS_SUFFIXES = (".js", ".mjs", ".cjs")
_SHARD_SUFFIXES = ("", ".min.js", ".js")  # tried in order after a manifest path
# where a wrapped literal starts; a shard's must lie in the file's first _HEAD_BYTES
_JS_EXPORT = re.compile(r"(?:\bexports\s*=(?!=)|\bexport\s+default\b)\s*(?:JSON\.parse\(\s*)?")
_HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class _Shard:
    """One shard file: raw bytes, or a base64 string at bytes [start, stop) of a JS module."""

    path: Path
    size: int  # bytes it adds to its group's stream
    payload: tuple[int, int] | None = None  # (start, stop) of the base64 text; None when raw

    def read(self, lo: int, hi: int) -> bytes:
        """Bytes [lo, hi) of this shard, 0 <= lo <= hi <= size; fewer where the file is short."""
        with self.path.open("rb") as fh:
            if self.payload is None:
                fh.seek(lo)
                return fh.read(hi - lo)
            start, stop = self.payload
            first = start + 4 * (lo // 3)
            last = min(start + 4 * -(-hi // 3), stop)
            if stop - last < 4:  # take a trailing partial quad along: a stray character is seen
                last = stop
            fh.seek(first)
            text = fh.read(last - first)
        try:
            raw = _decode_base64(text)
        except ValueError as exc:
            raise _BadPayload(self.path, str(exc)) from None
        return raw[lo % 3 : lo % 3 + hi - lo]


@dataclass(frozen=True)
class _Spec:
    shards: tuple[_Shard, ...]  # the group's shards, in stream order
    offset: int  # first byte in the group's concatenated stream
    nbytes: int
    stored: str  # element type in the file
    dtype: str  # type the tensor has in TF.js
    scale: float | None
    minimum: float | None


class TFJSCheckpoint(Checkpoint):
    """A TF.js weights manifest; shapes keep TF order (conv kernels are [kh, kw, in, out])."""

    format = "tfjs"
    suffixes = (".json",)

    @classmethod
    def sniff(cls, path: Path, head: bytes) -> bool:
        suffix = path.suffix.lower()
        if suffix != ".json" and suffix not in _JS_SUFFIXES:
            return False
        with path.open("rb") as fh:
            start = fh.read(_SNIFF_BYTES)
            size = fh.seek(0, 2)
            fh.seek(max(size - _SNIFF_BYTES, len(start)))
            end = fh.read()
        if suffix in _JS_SUFFIXES:
            return bool(
                _JS_MANIFEST_KEY.search(start) or _JS_MANIFEST_KEY.search(start[-64:] + end)
            )
        if _GROUP_START.match(start):
            return b'"paths"' in start and b'"weights"' in start
        return start.lstrip().startswith(b"{") and bool(
            _MANIFEST_KEY.search(start) or _MANIFEST_KEY.search(start[-64:] + end)
        )

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        wrapped = path.suffix.lower() in _JS_SUFFIXES
        try:
            text = path.read_text(encoding="utf-8")
            data = _module_literal(text) if wrapped else json.loads(text)
        except (OSError, ValueError) as exc:
            raise StriateError(
                f"unreadable {'JS' if wrapped else 'JSON'}: {exc}", path=path
            ) from exc
        if data is None:
            raise StriateError(
                "no TF.js model in this JS module (looked for `exports = {...}` or "
                "`export default {...}` holding a `weightsManifest`)",
                path=path,
                hint="give the model's model.json or its JS-wrapped model file",
            )
        if isinstance(data, dict):
            manifest = data.get("weightsManifest")
            self.metadata = {k: v for k, v in data.items() if isinstance(v, str)}
        else:
            manifest = data
        if not isinstance(manifest, list) or not all(isinstance(g, dict) for g in manifest):
            raise StriateError("no TF.js weights manifest (a list of groups) in it", path=path)
        self._specs: dict[str, _Spec] = {}
        for group in manifest:
            self._add_group(group)

    def _add_group(self, group: Any) -> None:
        try:
            paths = [str(p) for p in group["paths"]]
            weights = list(group["weights"])
        except (KeyError, TypeError) as exc:
            raise StriateError(f"malformed manifest group: {exc!r}", path=self.path) from exc
        found = {p: _find_shard(self.path.parent / p) for p in paths}
        missing = [p for p, f in found.items() if f is None]
        if missing and weights:
            raise StriateError(
                f"missing shard file(s) {', '.join(missing)} beside the manifest",
                path=self.path,
                tensor=str(weights[0].get("name")),
                hint="download every file the manifest's `paths` lists "
                "(a wrapped shard NAME.min.js or NAME.js is taken too)",
            )
        shards = tuple(_open_shard(f) for f in found.values() if f is not None)
        offset = 0
        for w in weights:
            name = str(w["name"])
            shape = tuple(int(d) for d in w["shape"])
            quant = w.get("quantization") or {}
            stored = str(quant.get("dtype", w["dtype"]))
            if stored not in _DTYPES or str(w["dtype"]) not in _DTYPES:
                raise StriateError(
                    f"unsupported dtype {w['dtype']!r} (stored as {stored!r}); the offsets of "
                    "the tensors after it are unknown",
                    path=self.path,
                    tensor=name,
                    hint="striate reads float32, int32 and bool, quantized to uint8/uint16/float16",
                )
            if name in self._specs:
                raise StriateError("tensor appears twice", path=self.path, tensor=name)
            if any(d < 0 for d in shape):
                raise StriateError(
                    f"negative dimension in shape {list(shape)}", path=self.path, tensor=name
                )
            nbytes = math.prod(shape) * np.dtype(_DTYPES[stored]).itemsize
            scale, minimum = quant.get("scale"), quant.get("min")
            self._specs[name] = _Spec(
                shards,
                offset,
                nbytes,
                stored,
                str(w["dtype"]),
                None if scale is None else float(scale),
                None if minimum is None else float(minimum),
            )
            first = _shard_at(shards, offset)
            self._infos[name] = TensorInfo(name, shape, stored, nbytes, first)
            offset += nbytes

    @property
    def files(self) -> list[Path]:
        shards = (s.path for spec in self._specs.values() for s in spec.shards)
        return [self.path, *dict.fromkeys(shards)]

    def _read(self, name: str) -> npt.NDArray[Any]:
        spec = self._specs[name]
        start, end = spec.offset, spec.offset + spec.nbytes
        try:
            raw = _read_stream(spec.shards, start, end)
        except _BadPayload as exc:
            raise StriateError(
                f"the shard's payload is not valid base64: {exc.reason}",
                path=exc.path,
                tensor=name,
                hint="the file is damaged or not a base64-wrapped shard",
            ) from None
        if len(raw) != spec.nbytes:
            held = sum(s.size for s in spec.shards)
            raise StriateError(
                f"bytes {start}..{end} of the shard stream but the shard files hold {held}",
                path=spec.shards[-1].path,
                tensor=name,
                hint="a shard file is truncated or the manifest belongs to other files",
            )
        q = np.frombuffer(raw, dtype=_DTYPES[spec.stored])
        if spec.scale is not None and spec.minimum is not None:
            # TF.js dequantizes in float64 (JS numbers) and stores float32
            values = q.astype(np.float64) * spec.scale + spec.minimum
            if spec.dtype == "int32":
                values = np.floor(values + 0.5)  # JS Math.round
            return values.astype(np.float32).reshape(self._infos[name].shape)
        return q.astype(np.float32).reshape(self._infos[name].shape)


# --- shards -------------------------------------------------------------------------------


class _BadPayload(Exception):
    """A wrapped shard's base64 does not decode; `_read` names the tensor that needed it."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(reason)
        self.path, self.reason = path, reason


def _find_shard(named: Path) -> Path | None:
    for suffix in _SHARD_SUFFIXES:
        candidate = named.with_name(named.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def _open_shard(path: Path) -> _Shard:
    """A raw shard, or a JS-wrapped one whose base64 payload is located once, here."""
    if path.suffix.lower() not in _JS_SUFFIXES:
        return _Shard(path, path.stat().st_size)
    with path.open("rb") as fh:
        head = fh.read(_HEAD_BYTES).decode("latin-1")  # one character per byte: offsets agree
        # the first exported string; `module.exports=d()` in a UMD header is code, passed over
        quoted = (
            m.end() for m in _JS_EXPORT.finditer(head) if head.startswith(("'", '"'), m.end())
        )
        start = next(quoted, -1) + 1
        if start == 0:
            raise StriateError(
                'no base64 shard in this JS module (looked for `exports = "..."` or '
                '`export default "..."` in its first 64 KiB)',
                path=path,
                hint="the manifest names it as a shard: the file is damaged or of another kind",
            )
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            stop = mm.find(head[start - 1].encode(), start)  # base64 has no quotes: it closes
            tail = mm[max(stop - 2, start) : stop] if stop >= 0 else b""
    if stop < 0:
        raise StriateError("the base64 string never closes: the file is truncated", path=path)
    digits = stop - start - (len(tail) - len(tail.rstrip(b"=")))  # padding off
    size = 3 * (digits // 4) + max(digits % 4 - 1, 0)  # k digits past the last quad: k - 1 bytes
    return _Shard(path, size, (start, stop))


def _shard_at(shards: tuple[_Shard, ...], offset: int) -> Path:
    """The file holding byte `offset` of a group's stream."""
    for shard in shards:
        if offset < shard.size:
            return shard.path
        offset -= shard.size
    return shards[-1].path


def _read_stream(shards: tuple[_Shard, ...], start: int, end: int) -> bytes:
    """Bytes [start, end) of a group's shards read back to back; short where they run out."""
    parts = []
    pos = 0  # where the current shard starts in the stream
    for shard in shards:
        if start < pos + shard.size and end > pos:
            parts.append(shard.read(max(start - pos, 0), min(end, pos + shard.size) - pos))
        pos += shard.size
    return b"".join(parts)


def _decode_base64(text: bytes) -> bytes:
    """Whole quads of base64 (an unpadded tail is fine); ValueError says what is wrong."""
    if len(text) % 4 == 1:
        raise ValueError(f"a stray character ends it ({len(text)} characters)")
    padded = text + b"=" * (-len(text) % 4)
    raw = base64.b64decode(padded, validate=True)  # binascii.Error is a ValueError
    if len(raw) != 3 * len(padded) // 4 - padded[-2:].count(b"="):
        raise ValueError("padding inside it")  # Python < 3.11 decodes past inner padding
    return raw


def _module_literal(text: str) -> Any:
    """The first literal after an `exports =` / `export default` that holds a TF.js model."""
    for match in _JS_EXPORT.finditer(text):
        try:
            value = literal_at(text, match.end())
            if isinstance(value, str):  # JSON.parse('...') or a JSON string
                value = json.loads(value)
        except ValueError:
            continue  # code, not data: `module.exports=a()`
        if isinstance(value, dict) and "weightsManifest" in value:
            return value
    return None
