"""The viewer's web app (Starlette): one page, its script, and a small JSON + binary-tile API.

Every request names a tensor by the name the checkpoint gives it and is answered from that
model's tensors only: nothing in a request is ever used as a file path. Names travel as query
parameters and come back inside JSON; the page puts them into the document as text, never as
markup. Responses carry a Content-Security-Policy that allows this origin's own script and
nothing else, and only Host headers naming this machine are answered (no DNS rebinding).

    GET /                        the page
    GET /static/{viewer.js|viewer_paint.js|viewer.css}
    GET /api/model               sources, tensors (name, shape, dtype, role, layer, n_findings),
                                 the strongest finding (the page opens on it; null without a run)
    GET /api/tensor?name=&src=   picture facts: size, zoom levels, colour limit, statistics,
                                 axis layout, findings placed on the picture
    GET /api/tile?name=&src=&level=&ty=&tx=   float32 little-endian cells, shape in X-Tile-Shape
    GET /api/line?name=&src=&axis=row|col&i=  one display row or column as a curve
    GET /api/findings            every finding of the scan, placed on its tensor's picture
    GET /api/residual            the residual dimensions that stand out

`src` is `a` (the model), `b` (the one given with --compare) or `diff` (a - b); for a diff
run (`striate view DIR` of `striate diff`), `b` is B in A's coordinates and `diff` is b - a.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from striate.errors import StriateError
from striate.viewer.specimen import (
    LRU,
    TILE_CACHE,
    Specimen,
    cut_line,
    cut_tile,
    levels,
    nbytes,
    picture_facts,
    pyramid,
)

SOURCES = ("a", "b", "diff")
MAX_URL = 8192  # bytes of path + query; tensor names are far shorter
STATIC = {"viewer.js": "text/javascript", "viewer_paint.js": "text/javascript",
          "viewer.css": "text/css"}  # fmt: skip
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


class BadRequest(Exception):
    """A request the viewer cannot answer: 400 with the message."""


class Viewer:
    """Model A, optionally model B, and the tiles cut from them (and from A - B, or from B - A
    for a diff run: `b_minus_a`)."""

    def __init__(self, a: Specimen, b: Specimen | None = None, *, b_minus_a: bool = False) -> None:
        self.a, self.b, self.b_minus_a = a, b, b_minus_a
        self._diffs = LRU(a.cache_bytes // 2, size=nbytes)
        self._diff_facts = LRU(256)
        self.tiles = LRU(TILE_CACHE)

    def _pair(self, name: str) -> Specimen:
        if self.b is None:
            raise BadRequest("no second model: start the viewer with --compare MODEL")
        if name not in self.b.entries:
            raise BadRequest(f"tensor {name!r} is not in {self.b.label}")
        sa, sb = self.a.entry(name).shape, self.b.entry(name).shape
        if sa != sb:
            raise BadRequest(f"tensor {name!r} has shape {sa} in A and {sb} in B")
        return self.b

    def pyramid(self, name: str, src: str) -> list[np.ndarray]:
        if src == "a":
            return self.a.pyramid(name)
        b = self._pair(name)
        if src == "b":
            return b.pyramid(name)

        def diff() -> list[np.ndarray]:
            first, second = self.a.pyramid(name)[0], b.pyramid(name)[0]
            d = second - first if self.b_minus_a else first - second
            return pyramid(d, levels(self.a.view(name)))

        p: list[np.ndarray] = self._diffs.get(name, diff)
        return p

    def describe(self, name: str, src: str) -> dict[str, Any]:
        if src == "a":
            return self.a.describe(name)
        b = self._pair(name)
        if src == "b":
            return b.describe(name)
        facts = self._diff_facts.get(
            name, lambda: picture_facts(self.pyramid(name, "diff"), self.a.view(name))
        )
        return {**self.a.describe(name), **facts, "findings": []}

    def tile(self, name: str, src: str, level: int, ty: int, tx: int) -> tuple[bytes, str]:
        view = self.a.view(name)
        if not 0 <= level < levels(view):
            raise BadRequest(f"zoom level {level} is outside 0..{levels(view) - 1}")

        def cut() -> tuple[bytes, str]:
            t = cut_tile(self.pyramid(name, src), level, ty, tx)
            return t.astype("<f4").tobytes(), f"{t.shape[0]},{t.shape[1]}"

        result: tuple[bytes, str] = self.tiles.get((name, src, level, ty, tx), cut)
        return result


def create_app(
    a: Specimen, b: Specimen | None = None, *, hosts: list[str] | None = None,
    b_minus_a: bool = False,
) -> Any:  # fmt: skip
    """The ASGI app serving model `a` (compared with `b` if given; the difference shown is
    A - B, or B - A with `b_minus_a`, as for a diff run)."""
    viewer = Viewer(a, b, b_minus_a=b_minus_a)

    async def page(request: Request) -> Response:
        return Response(_static("index.html"), media_type="text/html; charset=utf-8")

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return JSONResponse({"error": "not found"}, status_code=404)
        return Response(_static(name), media_type=STATIC[name])

    def model(request: Request) -> Response:
        return JSONResponse(
            {
                "a": a.label,
                "b": None if b is None else b.label,
                "scanned": a.run is not None or b_minus_a,
                "difference": "B − A" if b_minus_a else "A − B",
                "diff_run": b_minus_a,
                "family": a.anatomy.family,
                "tensors": a.tensor_list(),
                "strongest": a.strongest_finding(),
            }
        )

    def tensor(request: Request) -> Response:
        q = _query(request, viewer)
        return JSONResponse(viewer.describe(q["name"], q["src"]))

    def tile(request: Request) -> Response:
        q = _query(request, viewer)
        level, ty, tx = (_int(request, k) for k in ("level", "ty", "tx"))
        body, shape = viewer.tile(q["name"], q["src"], level, ty, tx)
        return Response(
            body, media_type="application/octet-stream", headers={"X-Tile-Shape": shape}
        )

    def line(request: Request) -> Response:
        q = _query(request, viewer)
        axis = request.query_params.get("axis", "row")
        if axis not in ("row", "col"):
            raise BadRequest("axis must be row or col")
        m = viewer.pyramid(q["name"], q["src"])[0]
        i = _int(request, "i")
        if not 0 <= i < m.shape[0 if axis == "row" else 1]:
            raise BadRequest(f"{axis} {i} is outside the picture")
        return JSONResponse(cut_line(m, axis, i))

    def findings(request: Request) -> Response:
        return JSONResponse(a.all_findings())

    def residual(request: Request) -> Response:
        return JSONResponse(a.residual_dims())

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    routes = [
        Route("/", page), Route("/favicon.ico", no_icon), Route("/static/{name}", static),
        Route("/api/model", model),
        Route("/api/tensor", tensor), Route("/api/tile", tile), Route("/api/line", line),
        Route("/api/findings", findings), Route("/api/residual", residual),
    ]  # fmt: skip
    allowed = hosts or ["127.0.0.1", "localhost", "[::1]"]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=allowed)],
        exception_handlers={
            BadRequest: _error(400),
            KeyError: _error(404),
            StriateError: _error(422),
        },
    )
    app.state.viewer = viewer  # for tests and scripts: the caches
    return SecurityHeaders(app)


class SecurityHeaders:
    """Adds the CSP and the other security headers to every response; refuses request bodies.

    The viewer only reads: a request with a body (or another method than GET/HEAD) is refused
    before anything reads it, and so is an address over MAX_URL bytes; uvicorn bounds headers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        if scope["type"] == "http" and not _bodiless_get(scope):
            refuse = JSONResponse({"error": "the viewer only answers GET"}, status_code=405)
            await refuse(scope, receive, send_with_headers)
            return
        if scope["type"] == "http" and len(scope["query_string"]) + len(scope["path"]) > MAX_URL:
            too_long = JSONResponse({"error": "address too long"}, status_code=414)
            await too_long(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


def _bodiless_get(scope: Scope) -> bool:
    headers = dict(scope["headers"])
    return (
        scope["method"] in ("GET", "HEAD")
        and headers.get(b"content-length", b"0").strip() in (b"", b"0")
        and b"transfer-encoding" not in headers
    )


def _error(status: int) -> Any:
    async def handler(request: Request, exc: Exception) -> Response:
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        return JSONResponse({"error": str(text)}, status_code=status)

    return handler


def _query(request: Request, viewer: Viewer) -> dict[str, str]:
    name = request.query_params.get("name")
    src = request.query_params.get("src", "a")
    if not name:
        raise BadRequest("name is required")
    if src not in SOURCES:
        raise BadRequest(f"src must be one of {', '.join(SOURCES)}")
    viewer.a.entry(name)  # 404 for a name the model does not have
    return {"name": name, "src": src}


def _int(request: Request, key: str) -> int:
    text = request.query_params.get(key, "")
    if not text.lstrip("-").isdigit() or len(text) > 12:
        raise BadRequest(f"{key} must be an integer")
    return int(text)


def _static(name: str) -> bytes:
    return (resources.files("striate.viewer") / "static" / name).read_bytes()
