"""A local HTTP file server with faults on demand, to test downloads without the internet.

::

    from weightcache.testing import FileServer

    with FileServer() as server:
        url = server.add("/ckpt/sam2.pt", data)        # serves bytes (or a file) at that path
        server.drop("/ckpt/sam2.pt", after=1_000_000)  # the next GET is cut after 1 MB of body
        server.fail("/ckpt/sam2.pt", status=503)       # the next GET gets a 503
        server.corrupt("/ckpt/sam2.pt", offset=10)     # byte 10 is always served flipped
        server.trickle("/ckpt/sam2.pt", interval=0.01) # the next GET sends one byte per interval
        server.add("/dl?key=models/a.bin", data)       # a path with a query serves that exact query
        server.ranges = False                          # ignore Range headers, like some servers
        server.count("/ckpt/sam2.pt")                  # requests received for that path
        server.gather(8)                               # hold bodies until 8 are being sent at once
        server.peak_in_flight                          # most bodies (over a byte) sent at once

``If-Range`` is honoured: a validator other than the file's ETag or Last-Modified gets the whole
file (200) instead of the range. One-shot faults (``fail``, ``hang``, ``drop``, ``trickle``) apply
to GET requests, oldest first, one per request (a ``drop`` waits for a response whose body is
longer than its cut, a ``trickle`` for one longer than a byte, so a one-byte probe is served
normally); ``times`` makes one last several requests. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import email.utils
import hashlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ._server import BackgroundServer, QuietHandler, ServedRequest, ServerContext

_SEND_BYTES = 64 * 1024


@dataclass
class _Resource:
    body: bytes | Path
    size: int
    etag: str | None
    last_modified: str | None

    def read(self, offset: int, count: int) -> bytes:
        """``count`` bytes of the body from ``offset``."""
        if isinstance(self.body, bytes):
            return self.body[offset : offset + count]
        with open(self.body, "rb") as handle:
            handle.seek(offset)
            return handle.read(count)


@dataclass
class _Fault:
    kind: str  # "fail", "hang", "drop" or "trickle"
    times: int
    status: int = 503
    retry_after: int | None = None
    seconds: float = 0.0
    after: int = 0


class _FileHandler(QuietHandler):
    def do_GET(self) -> None:
        """Answer a GET (http.server's hook)."""
        self.owner.handle(self)

    def do_HEAD(self) -> None:
        """Answer a HEAD (http.server's hook)."""
        self.owner.handle(self)


class FileServer(ServerContext):
    """Serves files over HTTP on 127.0.0.1, counting requests and injecting faults on demand.

    ``ranges`` (default ``True``) honours single ``Range`` requests; ``throttle`` caps each
    connection at that many bytes per second.
    """

    def __init__(self, *, ranges: bool = True, throttle: int | None = None) -> None:
        self.ranges = ranges
        self.throttle = throttle
        #: Every request received, in order.
        self.requests: list[ServedRequest] = []
        self._resources: dict[str, _Resource] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._corrupt: dict[str, set[int]] = {}
        self._redirects: dict[str, tuple[str, int]] = {}
        self._required: dict[str, tuple[str | None, dict[str, str]]] = {}
        self._lock = threading.Lock()
        #: Bodies longer than a byte being sent now, and the most ever sent at once.
        self.in_flight = 0
        self.peak_in_flight = 0
        self._gather: tuple[int, float] | None = None
        self._sending = threading.Condition(self._lock)
        self._server = BackgroundServer(_FileHandler, self)

    @property
    def url(self) -> str:
        """The server's base URL, ``http://127.0.0.1:PORT``."""
        return self._server.url

    def url_for(self, path: str) -> str:
        """The full URL of ``path``."""
        return self.url + path

    # --- content --------------------------------------------------------------------------

    def add(
        self, path: str, body: bytes | Path, *, etag: bool | str = True, last_modified: bool = True
    ) -> str:
        """Serve ``body`` (bytes, or a file streamed from disk) at ``path``; return its URL.

        ``etag``: ``True`` derives one from the content, a string sets it, ``False`` sends none.
        Adding a path again replaces its content and clears its faults.
        """
        size = len(body) if isinstance(body, bytes) else body.stat().st_size
        if etag is True:
            digest = hashlib.sha1(
                body if isinstance(body, bytes) else f"{body}{body.stat().st_mtime_ns}".encode()
            )
            etag = f'"{digest.hexdigest()[:20]}"'
        modified = email.utils.formatdate(time.time(), usegmt=True) if last_modified else None
        with self._lock:
            self._resources[path] = _Resource(body, size, etag or None, modified)
            self._faults.pop(path, None)
            self._corrupt.pop(path, None)
        return self.url_for(path)

    def serves(self, path: str) -> bool:
        """Whether ``path`` has content."""
        with self._lock:
            return path in self._resources

    def remove(self, path: str) -> None:
        """Stop serving ``path`` (it answers 404)."""
        with self._lock:
            self._resources.pop(path, None)

    # --- faults and rules -----------------------------------------------------------------

    def fail(self, path: str, status: int = 503, *, times: int = 1, retry_after: int | None = None) -> None:
        """Answer the next ``times`` GETs of ``path`` with ``status`` (and ``Retry-After`` if given)."""
        self._add_fault(path, _Fault("fail", times, status=status, retry_after=retry_after))

    def hang(self, path: str, seconds: float, *, times: int = 1) -> None:
        """Wait ``seconds`` before answering the next ``times`` GETs of ``path`` (to trip client timeouts)."""
        self._add_fault(path, _Fault("hang", times, seconds=seconds))

    def drop(self, path: str, after: int, *, times: int = 1) -> None:
        """Cut the connection after ``after`` bytes of body in the next ``times`` GETs of ``path``."""
        self._add_fault(path, _Fault("drop", times, after=after))

    def trickle(self, path: str, interval: float, *, times: int = 1) -> None:
        """Send the next ``times`` bodies of ``path`` (longer than a byte) one byte per ``interval``."""
        self._add_fault(path, _Fault("trickle", times, seconds=interval))

    def gather(self, count: int, *, timeout: float = 2.0) -> None:
        """Hold every body longer than a byte until ``count`` are being sent at once (or ``timeout`` s pass).

        Shows that a client fetches in parallel without depending on timing: a client that asks
        one request at a time gets each body only after the timeout.
        """
        with self._lock:
            self._gather = (count, timeout)

    def corrupt(self, path: str, offset: int = 0) -> None:
        """Serve the byte at ``offset`` of ``path`` flipped, in every response from now on."""
        with self._lock:
            self._corrupt.setdefault(path, set()).add(offset)

    def redirect(self, path: str, to: str, *, status: int = 302) -> None:
        """Redirect requests for ``path`` to ``to`` (a path on this server or a full URL)."""
        with self._lock:
            self._redirects[path] = (to, status)

    def protect(
        self, path: str, *, authorization: str | None = None, query: dict[str, str] | None = None
    ) -> None:
        """Require this exact ``Authorization`` header and/or these query parameters for ``path``.

        Missing credentials get a 401, wrong ones a 403.
        """
        with self._lock:
            self._required[path] = (authorization, dict(query or {}))

    def count(self, path: str | None = None, method: str | None = None) -> int:
        """How many requests were received (for ``path`` and ``method`` when given)."""
        with self._lock:
            return sum(
                1
                for request in self.requests
                if (path is None or request.path == path) and (method is None or request.method == method)
            )

    # --- serving --------------------------------------------------------------------------

    def handle(self, handler: QuietHandler) -> None:
        """Record and answer one request."""
        request = handler.served_request()
        with self._lock:
            self.requests.append(request)
            exact = f"{request.path}?{request.query}"
            path = exact if request.query and exact in self._resources else request.path
        self.respond(handler, path, request.query)

    def respond(
        self, handler: QuietHandler, path: str, query: str = "", headers: dict[str, str] | None = None
    ) -> None:
        """Answer ``handler``'s request with ``path``'s content, rules and faults, adding ``headers``."""
        with self._lock:
            redirect = self._redirects.get(path)
            resource = self._resources.get(path)
            fault = (
                self._take_fault(path, lambda item: item.kind in ("fail", "hang"))
                if handler.command == "GET"
                else None
            )
        if redirect is not None:
            target, status = redirect
            handler.send_simple(status, {"Location": target if "://" in target else self.url_for(target)})
            return
        if resource is None:
            handler.send_simple(404, body=b"not found")
            return
        denied = self._denied(path, handler, query)
        if denied:
            handler.send_simple(denied, body=b"credentials required")
            return
        if fault is not None and fault.kind == "fail":
            retry = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            handler.send_simple(fault.status, retry, b"injected failure")
            return
        if fault is not None and fault.kind == "hang":
            time.sleep(fault.seconds)
        try:
            self._send(handler, path, resource, dict(headers or {}))
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True  # the client went away (it read only the headers)

    def _take_fault(self, path: str, applies: Callable[[_Fault], bool]) -> _Fault | None:
        """Consume the oldest pending fault of ``path`` that ``applies`` (call with the lock held)."""
        pending = self._faults.get(path, [])
        fault = next((item for item in pending if applies(item)), None)
        if fault is not None:
            fault.times -= 1
            if fault.times <= 0:
                pending.remove(fault)
        return fault

    def _add_fault(self, path: str, fault: _Fault) -> None:
        with self._lock:
            self._faults.setdefault(path, []).append(fault)

    def _denied(self, path: str, handler: QuietHandler, query: str) -> int:
        with self._lock:
            rule = self._required.get(path)
        if rule is None:
            return 0
        authorization, required_query = rule
        given = dict(pair.partition("=")[::2] for pair in query.split("&") if pair)
        sent = handler.headers.get("Authorization")
        if (authorization and sent is None) or any(name not in given for name in required_query):
            return 401
        if (authorization and sent != authorization) or any(given[k] != v for k, v in required_query.items()):
            return 403
        return 0

    def _send(self, handler: QuietHandler, path: str, resource: _Resource, headers: dict[str, str]) -> None:
        start, end, status = 0, resource.size, 200
        if resource.etag:
            headers["ETag"] = resource.etag
        if resource.last_modified:
            headers["Last-Modified"] = resource.last_modified
        if self.ranges:
            headers["Accept-Ranges"] = "bytes"
            try:
                wanted = _parse_range(handler.headers.get("Range"), resource.size)
                if_range = handler.headers.get("If-Range")
                if if_range is not None and if_range not in (resource.etag, resource.last_modified):
                    wanted = None  # the client's copy is of another version: send the whole file
            except _RangeNotSatisfiable:
                handler.send_simple(416, {"Content-Range": f"bytes */{resource.size}"})
                return
            if wanted is not None:
                start, end, status = *wanted, 206
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{resource.size}"
        handler.send_response(status)
        for name, value in {**headers, "Content-Length": str(end - start)}.items():
            handler.send_header(name, value)
        handler.end_headers()
        if handler.command == "HEAD":
            return
        self._send_body(handler, path, resource, start, end)

    def _send_body(self, handler: QuietHandler, path: str, resource: _Resource, start: int, end: int) -> None:
        with self._lock:
            flipped = set(self._corrupt.get(path, ()))
            drop = self._take_fault(path, lambda item: item.kind == "drop" and item.after < end - start)
            trickle = self._take_fault(path, lambda item: item.kind == "trickle" and end - start > 1)
        if end - start <= 1:
            self._send_range(handler, resource, start, end, flipped, drop, trickle)
            return
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            self._sending.notify_all()
            if self._gather is not None:
                count, timeout = self._gather
                self._sending.wait_for(lambda: self.in_flight >= count, timeout)
                self._gather = None  # gathered once (or never will be): stop holding
        try:
            self._send_range(handler, resource, start, end, flipped, drop, trickle)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _send_range(
        self,
        handler: QuietHandler,
        resource: _Resource,
        start: int,
        end: int,
        flipped: set[int],
        drop: _Fault | None,
        trickle: _Fault | None,
    ) -> None:
        stop = end if drop is None else start + drop.after
        step = _SEND_BYTES if trickle is None else 1
        offset = start
        while offset < stop:
            if trickle is not None:
                handler.wfile.flush()
                time.sleep(trickle.seconds)
            chunk = bytearray(resource.read(offset, min(step, stop - offset)))
            for position in flipped:
                if offset <= position < offset + len(chunk):
                    chunk[position - offset] ^= 0xFF
            handler.wfile.write(chunk)
            offset += len(chunk)
            if self.throttle:
                time.sleep(len(chunk) / self.throttle)
        if stop < end:
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Stop serving."""
        self._server.close()


class _RangeNotSatisfiable(Exception):
    """The Range header asks for bytes the file does not have."""


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The ``[start, end)`` a single-range ``Range`` header asks for, or ``None`` to send the whole
    file (no header, or several ranges, which a server may ignore)."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[len("bytes=") :].strip().partition("-")
    if not first and last.isdigit() and int(last) > 0:
        return max(0, size - int(last)), size
    if not first.isdigit() or (last and not last.isdigit()) or int(first) >= size:
        raise _RangeNotSatisfiable
    end = min(size, int(last) + 1) if last else size
    if end <= int(first):
        raise _RangeNotSatisfiable
    return int(first), end
