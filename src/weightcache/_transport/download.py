"""HTTP downloads into a staging area: parallel byte ranges, resume after drops, retries with backoff.

Built on httpx2, the HTTP client huggingface_hub already depends on (a sync client with connection
pools, redirects and timeouts), so weightcache brings no HTTP client of its own. Every message
names a URL by its *label*, a redacted form the caller provides: never the URL itself.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from types import TracebackType
from typing import TypeVar

import httpx2

from .._core.constants import (
    HTTP_BACKOFF_MAX_SECONDS,
    HTTP_BACKOFF_SECONDS,
    HTTP_RETRIES,
    HTTP_STALL_BYTES,
    HTTP_STALL_SECONDS,
    HTTP_TIMEOUT_SECONDS,
    http_connections,
)
from .._core.staging import Staging
from ..errors import (
    InvalidSourceError,
    SourceAuthError,
    SourceChangedError,
    SourceError,
    SourceNotFoundError,
    SourceUnreachableError,
)
from .http_parts import FileJob, fetch_files
from .ranged import RangedWriter
from .redaction import install_log_redaction

logger = logging.getLogger(__name__)
install_log_redaction()  # httpx2 logs each request's full URL, query tokens included

T = TypeVar("T")

#: Bytes handed to the writer at a time (one buffer per connection).
_READ_BYTES = 1024 * 1024

#: Longest server-requested wait (Retry-After) honoured before a retry.
_MAX_RETRY_AFTER_SECONDS = 60.0

#: A number in an HTTP header: ASCII digits only (``str.isdigit`` also accepts ``"²"`` and ``"٣"``).
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Probe:
    """What the first, one-byte request told about a URL."""

    size: int | None
    ranges: bool
    etag: str | None
    last_modified: str | None

    @property
    def validator(self) -> str:
        """What identifies this version of the file: its ETag, else its size and Last-Modified."""
        if self.etag:
            return f"etag {self.etag}"
        return f"size {self.size} modified {self.last_modified}"


class _Retry(Exception):
    """A failure worth retrying: a 5xx, a 408 or 429, or a response that ended early."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class _Stalled(_Retry):
    """A response trickled: the bytes it did deliver do not count as progress."""


def _watched(chunks: Iterator[bytes], stall_seconds: float) -> Iterator[bytes]:
    """``chunks``, raising :class:`_Stalled` when a window of ``stall_seconds`` brings under HTTP_STALL_BYTES.

    A read timeout trips only when *no* byte comes; a server sending one byte a second never trips it.
    """
    window_start, window_bytes = time.monotonic(), 0
    for chunk in chunks:
        window_bytes += len(chunk)
        yield chunk
        now = time.monotonic()
        if window_bytes >= HTTP_STALL_BYTES:
            window_start, window_bytes = now, 0
        elif now - window_start >= stall_seconds:
            raise _Stalled(f"stalled: under {HTTP_STALL_BYTES // 1024} KiB in {stall_seconds:g} s")


class HTTPDownloader:
    """Fetches URLs into a :class:`Staging` over one connection pool; use as a context manager.

    ``connections`` (default :func:`~weightcache._core.constants.http_connections`) bounds the
    connections open at once, across all files; ``part_bytes`` fixes the size of byte-range
    parts instead of sizing them from the download (see :mod:`weightcache._transport.http_parts`).
    """

    def __init__(
        self,
        *,
        headers: Mapping[str, str] | None = None,
        connections: int | None = None,
        part_bytes: int | None = None,
        timeout: float = HTTP_TIMEOUT_SECONDS,
        stall_timeout: float = HTTP_STALL_SECONDS,
        retries: int = HTTP_RETRIES,
    ) -> None:
        self.stall_timeout = stall_timeout
        self.connections = max(1, connections or http_connections())
        self.part_bytes = max(1, part_bytes) if part_bytes else None
        self.retries = retries
        self._client = httpx2.Client(
            # Compressed bodies would break size checks and byte ranges.
            headers={**(headers or {}), "Accept-Encoding": "identity"},
            follow_redirects=True,
            timeout=timeout,
            limits=httpx2.Limits(
                max_connections=self.connections, max_keepalive_connections=self.connections
            ),
        )

    def probe(self, url: str, label: str, *, headers: Mapping[str, str] | None = None) -> Probe:
        """Ask for the first byte: learn the size, the version validators and whether ranges work."""

        def attempt() -> Probe:
            asked = {**(headers or {}), "Range": "bytes=0-0"}
            with self._client.stream("GET", url, headers=asked) as response:
                if response.status_code != 416:  # an empty file cannot serve byte 0
                    check_status(response, label)
                return _probe_from(response)

        return self._retrying(label, attempt)

    def download_all(self, jobs: list[FileJob], staging: Staging) -> None:
        """Fetch every file of ``jobs`` into ``staging`` at once, in byte ranges where the server allows."""
        fetch_files(self, jobs, staging, connections=self.connections, part_bytes=self.part_bytes)

    def fetch_range(self, job: FileJob, writer: RangedWriter, start: int, end: int) -> None:
        """Fetch bytes ``[start, end)`` of ``job``'s file into ``writer``, resuming after drops."""
        position = start
        headers = {**job.headers, "Range": f"bytes={start}-{end - 1}"}
        if_range = job.if_range()
        if if_range:  # the server sends the whole (new) file instead if it changed: caught below
            headers["If-Range"] = if_range

        def attempt() -> None:
            nonlocal position
            headers["Range"] = f"bytes={position}-{end - 1}"
            with self._client.stream("GET", job.url, headers=headers) as response:
                check_status(response, job.label)
                _check_range_response(response, job.label, position, job.probe.etag, if_range)
                for chunk in self._chunks(response):
                    piece = chunk[: end - position]
                    writer.write_at(position, piece)
                    position += len(piece)
                    if position == end:
                        break
            if position < end:
                raise _Retry("the response ended early")

        self._retrying(job.label, attempt, progress=lambda: position)

    def fetch_whole(self, job: FileJob, staging: Staging) -> None:
        """Fetch ``job``'s file in one GET, for servers without ranges; a retry starts it again."""
        self._retrying(job.label, lambda: self._stream_whole(job, staging))

    def _stream_whole(self, job: FileJob, staging: Staging) -> None:
        url, label, name, probe, sha256 = job.url, job.label, job.name, job.probe, job.sha256
        with self._client.stream("GET", url, headers=dict(job.headers)) as response:
            check_status(response, label)
            _check_same_etag(response, label, probe.etag)
            if probe.size is None:  # no length announced: hash in the stream
                staging.write_stream(name, self._chunks(response, _READ_BYTES), sha256=sha256)
                return
            # A known size lets the follower thread hash while this one receives.
            with staging.write_ranges(name, size=probe.size, sha256=sha256) as writer:
                position = 0
                for chunk in self._chunks(response):
                    if position + len(chunk) > probe.size:
                        raise SourceChangedError(f"{label} grew on the server during the download; run again")
                    writer.write_at(position, chunk)
                    position += len(chunk)

    def _chunks(self, response: httpx2.Response, size: int | None = None) -> Iterator[bytes]:
        return _watched(response.iter_bytes(size), self.stall_timeout)

    def _retrying(self, label: str, attempt: Callable[[], T], progress: Callable[[], int] = lambda: 0) -> T:
        """Run ``attempt``, retrying transient failures with backoff; progress made resets the count."""
        failures = 0
        while True:
            before = progress()
            try:
                return attempt()
            except (httpx2.UnsupportedProtocol, httpx2.InvalidURL) as exc:
                raise InvalidSourceError(
                    f"{label} cannot be fetched over HTTP ({type(exc).__name__}); check the URL"
                ) from None
            except httpx2.TooManyRedirects:
                raise SourceError(f"{label} redirects too many times; check the URL") from None
            except (httpx2.TransportError, _Retry) as exc:
                progressed = progress() > before and not isinstance(exc, _Stalled)
                failures = 1 if progressed else failures + 1
                reason = _reason(exc)
                if failures > self.retries:
                    raise SourceUnreachableError(
                        f"fetching {label} failed {failures} times in a row ({reason}); "
                        "check the network or the server and retry"
                    ) from None
                delay = _backoff(failures, exc.delay if isinstance(exc, _Retry) else None)
                logger.info("retrying %s in %.2fs (%s)", label, delay, reason)
                time.sleep(delay)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> HTTPDownloader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def check_status(response: httpx2.Response, label: str) -> None:
    """Raise the weightcache error for a failed response (:class:`_Retry` for transient ones)."""
    code = response.status_code
    if code < 400:
        return
    if code in (408, 429) or code >= 500:
        raise _Retry(f"HTTP {code}", delay=_retry_after(response.headers.get("retry-after")))
    if code in (401, 403):
        raise SourceAuthError(
            f"{label} refused access (HTTP {code}); pass credentials with headers=, in the URL, or check them"
        )
    if code in (404, 410):
        raise SourceNotFoundError(f"{label} was not found on the server (HTTP {code}); check the URL")
    raise SourceError(f"{label} answered HTTP {code}; check the URL")


def _probe_from(response: httpx2.Response) -> Probe:
    etag = response.headers.get("etag")
    last_modified = response.headers.get("last-modified")
    if response.headers.get("content-encoding", "identity") != "identity":
        return Probe(size=None, ranges=False, etag=etag, last_modified=last_modified)
    content_range = response.headers.get("content-range", "")
    total = content_range.rpartition("/")[2].strip()
    if response.status_code in (206, 416) and _DIGITS.fullmatch(total):
        return Probe(
            size=int(total), ranges=response.status_code == 206, etag=etag, last_modified=last_modified
        )
    length = response.headers.get("content-length", "").strip()
    size = int(length) if _DIGITS.fullmatch(length) and response.status_code == 200 else None
    return Probe(size=size, ranges=False, etag=etag, last_modified=last_modified)


def _check_range_response(
    response: httpx2.Response, label: str, start: int, etag: str | None, if_range: str | None
) -> None:
    content_range = response.headers.get("content-range", "")
    if response.status_code == 200 and if_range:
        raise SourceChangedError(
            f"{label} changed on the server during the download (If-Range did not match); "
            "run again to fetch the new version"
        )
    if response.status_code != 206 or not content_range.startswith(f"bytes {start}-"):
        raise SourceError(f"{label} stopped honouring byte ranges during the download; retry")
    _check_same_etag(response, label, etag)


def _check_same_etag(response: httpx2.Response, label: str, etag: str | None) -> None:
    served = response.headers.get("etag")
    if etag and served and served.removeprefix("W/") != etag.removeprefix("W/"):
        raise SourceChangedError(
            f"{label} changed on the server during the download (its ETag changed); "
            "run again to fetch the new version"
        )


def _retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (it is a number of seconds or an HTTP date)."""
    if not value:
        return None
    if _DIGITS.fullmatch(value.strip()):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _backoff(failures: int, retry_after: float | None) -> float:
    delay = min(HTTP_BACKOFF_MAX_SECONDS, HTTP_BACKOFF_SECONDS * 2 ** (failures - 1))
    delay *= random.uniform(0.5, 1.0)  # jitter: many containers retrying at once should not stay in step
    if retry_after is not None:
        delay = max(delay, min(retry_after, _MAX_RETRY_AFTER_SECONDS))
    return delay


def _reason(exc: Exception) -> str:
    if isinstance(exc, _Retry):
        return exc.reason
    if isinstance(exc, httpx2.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx2.ConnectError):
        return "could not connect"
    if isinstance(exc, (httpx2.RemoteProtocolError, httpx2.ReadError)):
        return "the connection dropped"
    return type(exc).__name__
