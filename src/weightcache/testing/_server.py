"""The plumbing the test servers share: a threaded HTTP/1.1 server on 127.0.0.1 in a background thread."""

from __future__ import annotations

import sys
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class ServedRequest:
    """One request a test server received."""

    method: str
    path: str
    query: str
    headers: dict[str, str]


class QuietHandler(BaseHTTPRequestHandler):
    """A keep-alive request handler that does not print a line per request."""

    protocol_version = "HTTP/1.1"
    # http.server writes the headers and the body as two sends; with Nagle on, the body waits for
    # the client's delayed ACK of the headers (~40 ms per keep-alive response on Linux), as servers
    # such as uvicorn and nginx (tcp_nodelay on) avoid. socketserver.StreamRequestHandler.setup()
    # sets TCP_NODELAY when this is true.
    disable_nagle_algorithm = True

    @property
    def owner(self) -> Any:
        """The test server object this handler serves for."""
        return self.server.owner  # type: ignore[attr-defined]

    def served_request(self) -> ServedRequest:
        """This request, as recorded by the servers."""
        parts = urlsplit(self.path)
        return ServedRequest(
            method=self.command,
            path=parts.path,
            query=parts.query,
            headers={name.lower(): value for name, value in self.headers.items()},
        )

    def send_simple(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        """Send a complete small response."""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay silent: tests read the recorded requests instead."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when a client hangs up (tests do that on purpose); report anything else."""
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class BackgroundServer:
    """Serves ``handler`` on 127.0.0.1 (a free port) from a daemon thread until :meth:`close`."""

    def __init__(self, handler: type[QuietHandler], owner: object) -> None:
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._httpd.owner = owner  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits up to one poll
            name="weightcache-test-server",
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def close(self) -> None:
        """Stop serving and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


class ServerContext(ABC):
    """Context-manager behaviour for the test servers (``with FileServer() as server: ...``)."""

    @abstractmethod
    def close(self) -> None:
        """Stop serving."""

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
