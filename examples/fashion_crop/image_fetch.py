"""Fetch the image a client names by URL, without letting the URL reach the container's own network.

``POST /crop`` of the seed interface accepts ``imageUrl``: the server fetches it. Unchecked, that
lets anyone make the container request ``http://169.254.169.254/``, ``http://localhost:PORT/`` or
a private address (server-side request forgery). :func:`fetch_image` accepts ``http``/``https``
only, refuses a host that resolves to any loopback, private, link-local or otherwise non-public
address, and caps the size and the total time. The address is checked when each connection is
opened, and the connection goes to the address that was checked (a second DNS answer cannot
swap it), for the first request and for every redirect. Proxies from the environment are not
used: a proxy would make the connection on our behalf, unchecked.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
REDIRECTS = (301, 302, 303, 307, 308)


class ImageFetchError(Exception):
    """The image at the URL cannot or may not be fetched; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class FetchLimits:
    """How much and how long one fetch may take, and how many redirects it follows."""

    max_bytes: int = 20 * 1024 * 1024
    seconds: float = 15.0
    max_redirects: int = 3


def public_address(address: IPAddress) -> bool:
    """Whether ``address`` is on the public internet (not loopback, private, link-local, reserved...)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def fetch_image(
    url: str, limits: FetchLimits | None = None, *, allowed: Callable[[IPAddress], bool] = public_address
) -> bytes:
    """The bytes at ``url`` (``http``/``https``, following redirects), or :class:`ImageFetchError`.

    ``allowed`` decides which addresses may be connected to (tests widen it to reach a local server).
    """
    limits = limits or FetchLimits()
    deadline = time.monotonic() + limits.seconds
    with httpcore.ConnectionPool(network_backend=_CheckedBackend(allowed), max_connections=2) as pool:
        for _ in range(limits.max_redirects + 1):
            _check_url(url)
            location = _get(pool, url, limits, deadline)
            if isinstance(location, bytes):
                return location
            url = urljoin(url, location)
    raise ImageFetchError(400, f"imageUrl redirected more than {limits.max_redirects} times")


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImageFetchError(400, "imageUrl must be an http:// or https:// URL")


def _get(pool: httpcore.ConnectionPool, url: str, limits: FetchLimits, deadline: float) -> bytes | str:
    """The body of ``url``, or the location it redirects to."""
    try:
        with pool.stream("GET", url, extensions={"timeout": _timeouts(deadline)}) as response:
            headers = {name.decode().lower(): value.decode("latin-1") for name, value in response.headers}
            if response.status in REDIRECTS and "location" in headers:
                return headers["location"]
            if response.status != 200:
                raise ImageFetchError(400, f"fetching imageUrl answered HTTP {response.status}")
            if int(headers.get("content-length") or 0) > limits.max_bytes:
                raise _too_big(limits)
            return _read(response.iter_stream(), limits, deadline)
    except httpcore.TimeoutException:
        raise ImageFetchError(408, f"fetching imageUrl took over {limits.seconds:g} s") from None
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
        raise ImageFetchError(400, f"could not fetch imageUrl: {exc or type(exc).__name__}") from None


def _read(chunks: Iterable[bytes], limits: FetchLimits, deadline: float) -> bytes:
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > limits.max_bytes:
            raise _too_big(limits)
        if time.monotonic() > deadline:
            raise ImageFetchError(408, f"fetching imageUrl took over {limits.seconds:g} s")
    return bytes(body)


def _timeouts(deadline: float) -> dict[str, float]:
    left = max(deadline - time.monotonic(), 0.001)
    return {"connect": left, "read": left, "write": left, "pool": left}


def _too_big(limits: FetchLimits) -> ImageFetchError:
    return ImageFetchError(413, f"the image at imageUrl is over the limit of {limits.max_bytes:,} bytes")


class _CheckedBackend(httpcore.SyncBackend):
    """Connects only to addresses ``allowed`` accepts, and to exactly the address it checked."""

    def __init__(self, allowed: Callable[[IPAddress], bool]) -> None:
        self.allowed = allowed

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = _resolve(host, port)
        refused = [address for address in addresses if not self.allowed(address)]
        if refused:
            raise ImageFetchError(
                400, f"imageUrl's host {host} is not a public address ({refused[0]}); give a public URL"
            )
        return super().connect_tcp(str(addresses[0]), port, timeout, local_address, socket_options)


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise ImageFetchError(400, f"imageUrl's host {host} cannot be resolved") from None
    # Scope ids ("fe80::1%eth0") are not part of the address; drop them before parsing.
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
