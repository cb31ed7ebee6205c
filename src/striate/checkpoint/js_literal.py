"""One JavaScript literal read as data, never run: what TF.js models wrapped as JS modules hold.

`literal_at(text, pos)` reads the object, array, string, number, boolean or null that starts at
`pos` (after spaces and comments), with as much JavaScript as minifiers and serializers write for
data: bare or quoted keys, single quotes, `.5`, hex, `!0`/`!1`, trailing commas, comments.
Anything else (a call, a variable) raises ValueError.

>>> literal_at("x = {a: !0, 'b': [.5, 0x10, 'c',]}", 4)
{'a': True, 'b': [0.5, 16, 'c']}
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["literal_at"]


def literal_at(text: str, pos: int) -> Any:
    """The literal that starts at `pos` of `text` (see the module docstring)."""
    return _JSLiteral(text, pos).value()


_JS_SPACE = re.compile(r"(?:\s+|//[^\n]*|/\*.*?\*/)*", re.DOTALL)
_JS_TOKEN = re.compile(
    r"""(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
      | (?P<number>-?(?:Infinity|0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))
      | (?P<bang>![01])
      | (?P<word>[A-Za-z_$][\w$]*)
      | (?P<punct>[{}\[\]:,])""",
    re.VERBOSE | re.DOTALL,
)
_JS_WORDS: dict[str, Any] = {"true": True, "false": False, "null": None, "NaN": math.nan}
_JS_ESCAPE = re.compile(
    r"\\(?:x([0-9a-fA-F]{2})|u\{([0-9a-fA-F]{1,6})\}|u([0-9a-fA-F]{4})|(\r\n|.))", re.DOTALL
)
_JS_CHAR_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}
_JS_LINE_BREAKS = {"\n", "\r", "\r\n", "\u2028", "\u2029"}  # escaped, they continue the line
_MAX_DEPTH = 200


class _JSLiteral:
    """One JS literal read as data: objects, arrays, strings, numbers, booleans, null.

    As much JavaScript as minifiers and serializers write for data: bare or quoted keys, single
    quotes, `.5`, hex, `!0`/`!1` for true/false, trailing commas, comments. Anything else (a call,
    a variable) raises ValueError.
    """

    def __init__(self, text: str, pos: int) -> None:
        self.text = text
        self.pos = pos

    def value(self, depth: int = 0) -> Any:
        kind, token = self._next()
        if depth > _MAX_DEPTH:
            raise ValueError(f"nested deeper than {_MAX_DEPTH} at {self.pos}")
        if token == "{":
            return self._object(depth + 1)
        if token == "[":
            return self._array(depth + 1)
        if kind == "string":
            return _js_string(token)
        if kind == "number":
            return _js_number(token)
        if kind == "bang":
            return token == "!0"
        if kind == "word" and token in _JS_WORDS:
            return _JS_WORDS[token]
        raise ValueError(f"not data: {token!r} at {self.pos}")

    def _object(self, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        kind, token = self._next()
        while token != "}":
            if kind not in ("string", "word", "number"):
                raise ValueError(f"expected a key, found {token!r} at {self.pos}")
            key = _js_string(token) if kind == "string" else token
            if self._next()[1] != ":":
                raise ValueError(f"expected ':' after key {key!r} at {self.pos}")
            out[key] = self.value(depth)
            kind, token = self._next()
            if token == ",":
                kind, token = self._next()
            elif token != "}":
                raise ValueError(f"expected ',' or '}}', found {token!r} at {self.pos}")
        return out

    def _array(self, depth: int) -> list[Any]:
        out: list[Any] = []
        while True:
            mark = self.pos
            if self._next()[1] == "]":
                return out
            self.pos = mark
            out.append(self.value(depth))
            token = self._next()[1]
            if token == "]":
                return out
            if token != ",":
                raise ValueError(f"expected ',' or ']', found {token!r} at {self.pos}")

    def _next(self) -> tuple[str, str]:
        space = _JS_SPACE.match(self.text, self.pos)
        self.pos = space.end() if space else self.pos
        match = _JS_TOKEN.match(self.text, self.pos)
        if match is None or match.lastgroup is None:
            raise ValueError(f"unexpected {self.text[self.pos : self.pos + 20]!r} at {self.pos}")
        self.pos = match.end()
        return match.lastgroup, match.group()


def _js_string(token: str) -> str:
    body = token[1:-1]
    if "\\" not in body:
        return body
    text = _JS_ESCAPE.sub(_js_unescape, body)
    # a pair of \uD83D\uDE00-style escapes is one character (Python's json writes them)
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _js_unescape(m: re.Match[str]) -> str:
    code = m.group(1) or m.group(2) or m.group(3)
    if code:
        return chr(int(code, 16))
    char = m.group(4)
    return "" if char in _JS_LINE_BREAKS else _JS_CHAR_ESCAPES.get(char, char)


def _js_number(token: str) -> int | float:
    digits = token.lstrip("-")
    if digits[:2] in ("0x", "0X"):
        return int(token, 16)
    if digits.isdigit():
        return int(token)
    return float(token)
