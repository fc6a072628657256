"""An entry's files as byte-range parts, all fetched at once under one connection budget.

A CDN caps each connection, so one stream per file leaves the link idle: every file whose
server accepts ranges is cut into parts, the parts of all files go to one pool of
``connections`` threads (one connection each, kept alive between parts), and a file is
opened by its first part and hashed, checked and recorded by its last. Parts are sized from
the whole populate (:func:`part_bytes_for`), so a large file gets many and a small one is a
single request on a connection already open. Parts are queued file by file and in order, so
each file's follower hash (see :mod:`weightcache._transport.ranged`) advances while the others arrive.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from .._core.constants import HTTP_MAX_PART_BYTES, HTTP_MIN_PART_BYTES
from .._core.staging import Staging
from ..errors import ChecksumMismatchError
from .parallel import run_parallel
from .ranged import RangedWriter
from .resume import Journal, peek

if TYPE_CHECKING:
    from .download import HTTPDownloader, Probe

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileJob:
    """One file to fetch: where from, what to call it in messages and in the entry, and what is promised."""

    url: str
    label: str
    name: str
    probe: Probe
    sha256: str | None
    #: Sent with this file's requests only, besides the downloader's own (a Hub token for the Hub).
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ranged(self) -> bool:
        """Whether the server takes byte ranges of this (non-empty) file."""
        return self.probe.ranges and bool(self.probe.size)

    def version(self) -> str | None:
        """What names these exact bytes, for resuming a killed download; ``None``: not resumable.

        A pinned hash is checked over the whole file before it is recorded, so resumed bytes are
        safe whatever the server says; otherwise only a strong ETag or a Last-Modified (which the
        range requests send back as ``If-Range``) tells that the bytes on disk are this version.
        """
        if self.sha256:
            return f"sha256 {self.sha256}"
        if self.probe.etag and not self.probe.etag.startswith("W/"):
            return f"etag {self.probe.etag}"
        if self.probe.last_modified:
            return f"modified {self.probe.last_modified}"
        return None

    def if_range(self) -> str | None:
        """The ``If-Range`` value for this file's range requests (unpinned files only)."""
        if self.sha256:
            return None
        if self.probe.etag and not self.probe.etag.startswith("W/"):
            return self.probe.etag
        return self.probe.last_modified


def part_bytes_for(total: int, connections: int) -> int:
    """The part size for ``total`` bytes over ``connections``: about two parts each, within the bounds."""
    target = -(-total // (2 * max(1, connections)))
    return max(HTTP_MIN_PART_BYTES, min(HTTP_MAX_PART_BYTES, target))


def split(gaps: list[tuple[int, int]], part_bytes: int) -> list[tuple[int, int]]:
    """``gaps`` cut into parts of ``part_bytes`` (the last of each gap shorter)."""
    return [
        (position, min(position + part_bytes, end))
        for start, end in gaps
        for position in range(start, end, part_bytes)
    ]


class _OpenFile:
    """One file's writer: opened by its first part to start, finished by its last to end."""

    def __init__(self, downloader: HTTPDownloader, staging: Staging, job: FileJob, parts: int) -> None:
        self.downloader, self.staging, self.job = downloader, staging, job
        self._left = parts
        self._writer: RangedWriter | None = None
        self._resumed = False
        self._lock = threading.Lock()

    def writer(self) -> RangedWriter:
        with self._lock:
            if self._writer is None:
                self._writer = self._open()
                self._resumed = self._writer.resumed_bytes() > 0
            return self._writer

    def part_done(self, part_bytes: int) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if not last:
            return
        try:
            self.staging.close_ranges(self.writer(), sha256=self.job.sha256)
        except ChecksumMismatchError:
            if not self._resumed:
                raise
            # The bytes a killed populate left may be what failed (a server that served a
            # flipped byte then, fixed now): fetch the whole file once more before giving up.
            logger.warning("%s failed its check after resuming; fetching all of it again", self.job.name)
            self._writer = writer = self._open()
            for start, end in split([(0, writer.size)], part_bytes):
                self.downloader.fetch_range(self.job, writer, start, end)
            self.staging.close_ranges(writer, sha256=self.job.sha256)

    def _open(self) -> RangedWriter:
        size = self.job.probe.size or 0
        return self.staging.open_ranges(
            self.job.name, size=size, sha256=self.job.sha256, version=self.job.version()
        )

    def abandon(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.abandon()


def fetch_files(
    downloader: HTTPDownloader,
    jobs: list[FileJob],
    staging: Staging,
    *,
    connections: int,
    part_bytes: int | None = None,
) -> None:
    """Fetch every file of ``jobs`` into ``staging`` on at most ``connections`` connections at once.

    Ranges a killed populate left on disk for the same version are not fetched again
    (see :mod:`weightcache._transport.resume`). ``part_bytes`` fixes the part size instead of sizing it.
    """
    plans: list[tuple[FileJob, list[tuple[int, int]]]] = []
    for job in jobs:
        if job.ranged:
            size = job.probe.size or 0
            version = job.version()
            journal = Journal(staging.directory, job.name, size=size, version=version or "")
            done = peek(staging.directory, journal) if version else []
            plans.append((job, _gaps(done, size)))
    missing = sum(end - start for _, gaps in plans for start, end in gaps)
    part = part_bytes or part_bytes_for(missing, connections)
    tasks: list[Callable[[], None]] = [
        partial(downloader.fetch_whole, job, staging) for job in jobs if not job.ranged
    ]
    opened = []
    for job, gaps in plans:
        parts = split(gaps, part)
        file = _OpenFile(downloader, staging, job, max(1, len(parts)))
        opened.append(file)
        if not parts:  # every byte resumed: only the hash check is left
            tasks.append(partial(file.part_done, part))
        for start, end in parts:
            tasks.append(partial(_fetch_part, file, start, end, part))
    try:
        run_parallel(tasks, threads=connections)
    except BaseException:
        for file in opened:
            file.abandon()
        raise


def _fetch_part(file: _OpenFile, start: int, end: int, part_bytes: int) -> None:
    file.downloader.fetch_range(file.job, file.writer(), start, end)
    file.part_done(part_bytes)


def _gaps(done: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    gaps, position = [], 0
    for start, end in [*sorted(done), (size, size)]:
        if start > position:
            gaps.append((position, start))
        position = max(position, end)
    return gaps
