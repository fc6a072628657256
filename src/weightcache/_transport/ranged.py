"""A file written in byte ranges, in any order and from many threads, hashed in order while it fills.

Parallel range downloads write a file out of order, so it cannot be hashed in one pass as it is
written. Hashing it afterwards costs a second full read after the last byte arrives. Instead, a
follower thread hashes the file's contiguous written prefix by reading it back (from the page
cache, where it just landed) while the other ranges are still arriving: the digests are ready
moments after the download ends, and memory stays at one chunk whatever the file's size.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from .._core.constants import RESUME_CHECKPOINT_BYTES
from ..errors import SizeMismatchError
from .hashing import Digests, StreamHasher
from .resume import Journal, Spans

#: The follower's read buffer: one per file being written, and many files download at once.
_FOLLOW_BYTES = 2 * 1024 * 1024


class _Spans:
    """Disjoint, merged ``[start, end)`` byte intervals written so far."""

    def __init__(self) -> None:
        self._spans: list[tuple[int, int]] = []

    def add(self, start: int, end: int) -> None:
        """Record ``[start, end)``; raise if it overlaps bytes already written."""
        index = bisect.bisect_left(self._spans, (start, end))
        if (index > 0 and self._spans[index - 1][1] > start) or (
            index < len(self._spans) and self._spans[index][0] < end
        ):
            raise ValueError(f"bytes {start}-{end} overlap a range already written")
        if index < len(self._spans) and self._spans[index][0] == end:
            end = self._spans.pop(index)[1]
        if index > 0 and self._spans[index - 1][1] == start:
            index -= 1
            start = self._spans.pop(index)[0]
        self._spans.insert(index, (start, end))

    def prefix(self) -> int:
        """How many bytes from offset 0 are written without a gap."""
        return self._spans[0][1] if self._spans and self._spans[0][0] == 0 else 0

    def total(self) -> int:
        """How many bytes are written."""
        return sum(end - start for start, end in self._spans)

    def spans(self) -> Spans:
        """The written intervals, in order."""
        return list(self._spans)


class RangedWriter:
    """A new file of ``size`` bytes, filled by :meth:`write_at` from any thread, each byte once.

    :meth:`close` waits for the follower hash to finish, fsyncs and returns the digests; leaving
    a ``with`` block on an exception stops the follower and closes the file instead.

    With a ``journal``, the ranges written are recorded there every few MiB (after an fdatasync),
    and ``resume`` names ranges a killed writer already put in the existing file: they count as
    written (:meth:`missing` lists the rest) and are hashed like the others, from byte 0.
    """

    def __init__(
        self,
        path: Path,
        size: int,
        *,
        sha256: bool,
        on_write: Callable[[int], None] | None = None,
        journal: Journal | None = None,
        resume: Spans | None = None,
    ) -> None:
        self.path = path
        self.size = size
        self._on_write = on_write
        #: Where the written ranges are recorded for a resume, if anywhere.
        self.journal = journal
        truncate = 0 if resume else os.O_TRUNC
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT | truncate | os.O_CLOEXEC, 0o644)
        os.ftruncate(self._fd, size)
        self._hasher = StreamHasher(sha256=sha256)
        self._spans = _Spans()
        for start, end in resume or []:
            self._spans.add(start, end)
        self._checkpoint_lock = threading.Lock()
        self._checkpointed = self._spans.total()
        # Small files record often (a kill loses at most this much of each file in flight).
        self._checkpoint_every = min(RESUME_CHECKPOINT_BYTES, max(256 * 1024, size // 64))
        self._changed = threading.Condition()
        #: The prefix length the follower waits for: one buffer past what it hashed, so it wakes
        #: once per buffer rather than once per network read.
        self._wake_at = min(_FOLLOW_BYTES, size)
        self._stopped = False
        self._failure: BaseException | None = None
        self._follower = threading.Thread(target=self._follow, name="weightcache-hash", daemon=True)
        self._follower.start()

    def write_at(self, offset: int, chunk: bytes | memoryview) -> None:
        """Write ``chunk`` at ``offset`` (thread-safe)."""
        view = memoryview(chunk)
        end = offset + len(view)
        if offset < 0 or end > self.size:
            raise ValueError(f"bytes {offset}-{end} fall outside a file of {self.size} bytes")
        assert self._fd is not None, "write after close"
        position = offset
        while view:
            written = os.pwrite(self._fd, view, position)
            view, position = view[written:], position + written
        with self._changed:
            self._spans.add(offset, end)
            if self._spans.prefix() >= self._wake_at:
                self._changed.notify_all()
        if self.journal is not None:
            self._checkpoint()
        if self._on_write is not None:
            self._on_write(end - offset)

    def resumed_bytes(self) -> int:
        """Bytes written so far (at the start: the bytes a killed writer left)."""
        with self._changed:
            return self._spans.total()

    def _checkpoint(self) -> None:
        """Record the written ranges in the journal once enough new bytes arrived.

        One thread records at a time; the others go on writing, unless they ran two intervals
        ahead of the journal: then they wait, so a kill never loses much more than that.
        """
        assert self.journal is not None
        with self._changed:
            behind = self._spans.total() - self._checkpointed
        if behind < self._checkpoint_every:
            return
        if not self._checkpoint_lock.acquire(blocking=behind >= 2 * self._checkpoint_every):
            return
        try:
            with self._changed:
                written, spans = self._spans.total(), self._spans.spans()
            fd = self._fd
            if written - self._checkpointed < self._checkpoint_every or fd is None:
                return
            os.fdatasync(fd)  # every byte the journal will claim is on disk first
            self.journal.save(spans)
            self._checkpointed = written
        finally:
            self._checkpoint_lock.release()

    def close(self) -> Digests:
        """Wait until every byte is written and hashed, flush the file to disk, and return its digests."""
        with self._changed:
            written = self._spans.prefix()
        if written < self.size:
            self._stop()
            raise SizeMismatchError(
                f"{self.path.name} is incomplete ({written:,} of {self.size:,} bytes); "
                "nothing was published; retry"
            )
        self._follower.join()
        fd, self._fd = self._fd, None
        assert fd is not None, "close twice"
        try:
            if self._failure is not None:
                raise self._failure
            os.fsync(fd)
            if self.journal is not None:  # a kill from here on does not fetch this file again
                self.journal.save([(0, self.size)] if self.size else [])
        finally:
            os.close(fd)
        return self._hasher.digests()

    def _follow(self) -> None:
        fd = self._fd
        assert fd is not None
        buffer = bytearray(min(_FOLLOW_BYTES, max(self.size, 1)))
        view = memoryview(buffer)
        hashed = 0
        try:
            while hashed < self.size:
                with self._changed:
                    self._wake_at = min(hashed + len(view), self.size)
                    while not self._stopped and self._spans.prefix() < self._wake_at:
                        self._changed.wait()
                    if self._stopped:
                        return
                    ready = self._spans.prefix()
                while hashed < ready:
                    count = os.preadv(fd, [view[: min(len(view), ready - hashed)]], hashed)
                    if count == 0:
                        raise OSError(f"{self.path} ended at {hashed} bytes while being hashed")
                    self._hasher.update(view[:count])
                    hashed += count
        except BaseException as exc:  # handed to close(), which runs in the caller's thread
            self._failure = exc

    def abandon(self) -> None:
        """Stop hashing and close the file without checking it (another part failed)."""
        self._stop()

    def _stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        self._follower.join()
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> RangedWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self._stop()
