"""Serve the studio on 127.0.0.1: on a given port, or on a free one the OS picks."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import InvalidOptionError
from .app import create_app
from .session import Studio

__all__ = ["StudioServer", "serve"]

HOST = "127.0.0.1"


def _bind(port: int) -> socket.socket:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidOptionError(f"port must be 0 (any free port) to 65535, got {port!r}.")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise InvalidOptionError(
            f"Cannot listen on {HOST}:{port} ({exc.strerror}): pick another --port, or 0 for "
            "any free one."
        ) from None
    return sock


class StudioServer:
    """A uvicorn server for one :class:`Studio`, bound before it starts (so the port is known).

    :meth:`run` serves in this thread until stopped; :meth:`start` serves on a background thread
    (for tests and notebooks) and :meth:`stop` ends it.
    """

    def __init__(self, studio: Studio, *, port: int = 0, baseline: bool = True) -> None:
        import uvicorn

        self.socket = _bind(port)
        self.port = self.socket.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}/"
        self.app = create_app(studio, baseline=baseline, port=self.port)
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        self._server.run(sockets=[self.socket])

    def start(self, timeout: float = 30.0) -> StudioServer:
        self._thread = threading.Thread(target=self.run, name="studio-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._server.started:
                return self
            time.sleep(0.05)
        raise RuntimeError(f"The studio server did not start within {timeout:.0f} s.")

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.app.state.jobs.close()
        self.socket.close()

    def __enter__(self) -> StudioServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(studio: Studio, *, port: int = 0, announce: Callable[[str], Any] = print) -> None:
    """Serve ``studio`` until interrupted, announcing its address first."""
    server = StudioServer(studio, port=port)
    announce(f"zenml-quant studio: {server.url} (Ctrl+C stops it)")
    try:
        server.run()
    finally:
        server.app.state.jobs.close()
        server.socket.close()
