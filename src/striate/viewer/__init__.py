"""`striate view`: a local web app to zoom into any tensor down to single weights.

    >>> from striate.viewer import ViewerServer, open_viewer   # doctest: +SKIP
    >>> with ViewerServer(open_viewer("runs/minilm")) as url:  # doctest: +SKIP
    ...     print(url)                                          # http://127.0.0.1:PORT/

The app is in `app.py`, what it shows in `specimen.py` (a diff run's A, B and B - A in
`diff_run.py`), the page in `static/`.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from striate.errors import StriateError
from striate.store import read_manifest
from striate.viewer.app import create_app
from striate.viewer.diff_run import open_diff_run
from striate.viewer.specimen import Specimen

LOOPBACK = "127.0.0.1"

__all__ = ["LOOPBACK", "Specimen", "ViewerServer", "create_app", "is_loopback", "open_viewer"]


def open_viewer(
    target: str | Path, compare: str | Path | None = None, *, host: str = LOOPBACK
) -> Any:
    """The viewer app for `target` (a scan's run directory or a model), compared with `compare`;
    a diff's run directory shows its A, B and B - A (`viewer.diff_run`)."""
    hosts = None if is_loopback(host) else ["*"]
    path = Path(str(target)).expanduser()
    if (path / "manifest.json").is_file() and read_manifest(path).get("kind") == "diff":
        if compare is not None:
            raise StriateError("a diff run already holds its B: drop --compare", path=path)
        a, b = open_diff_run(path)
        return create_app(a, b, hosts=hosts, b_minus_a=True)
    return create_app(Specimen(target), None if compare is None else Specimen(compare),
                      hosts=hosts)  # fmt: skip


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ViewerServer:
    """Serve an app with uvicorn on `host:port` (0: a free port) in a background thread.

    `with ViewerServer(app) as url:` starts it and stops it; `run()` serves in the foreground.
    """

    def __init__(self, app: Any, host: str = LOOPBACK, port: int = 0) -> None:
        import uvicorn

        self.sock = _bind(host, port)
        self.port = int(self.sock.getsockname()[1])
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/"
        config = uvicorn.Config(
            app,
            http="h11",
            log_level="warning",
            limit_concurrency=1024,
            h11_max_incomplete_event_size=16384,  # request line and headers: 16 KiB at most
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        self.server.run(sockets=[self.sock])

    def __enter__(self) -> str:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                raise StriateError("the viewer's server stopped while starting")
            self._thread.join(0.02)
        return self.url

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.sock.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StriateError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            hint="pass --port 0 for a free port" if port else None,
        ) from exc
    sock.listen(128)
    return sock
