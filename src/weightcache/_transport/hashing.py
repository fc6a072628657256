"""Streaming hashing: content is hashed in the same pass that writes it, in bounded memory.

BLAKE3 is the cache's own content hash (about 3.5x faster than SHA-256 per core, and
cryptographic). SHA-256 is computed as well when a source vouches for a SHA-256 (the Hub's
LFS listing, a URL's ``#sha256=``), so the download can be checked against the source.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import blake3

from .._core.constants import CHUNK_BYTES
from ..errors import ChecksumMismatchError, SizeMismatchError


@dataclass(frozen=True)
class Digests:
    """Size and hashes of a stream of bytes."""

    size: int
    blake3: str
    sha256: str | None = None

    def check(self, name: str, *, size: int | None = None, sha256: str | None = None) -> None:
        """Raise if this content differs from the size or SHA-256 it was promised to have."""
        if size is not None and self.size != size:
            raise SizeMismatchError(
                f"{name} has {self.size:,} bytes but its source promised {size:,}; "
                "the transfer was cut short or the source changed, so nothing was published; retry"
            )
        if sha256 is not None and self.sha256 != sha256.lower():
            raise ChecksumMismatchError(
                f"{name} has sha256 {self.sha256} but its source promised {sha256.lower()}; "
                "the bytes are corrupt, so nothing was published; retry, or check the expected hash"
            )


# blake3's AUTO mode hashes on a process-wide Rayon pool whose threads do not survive fork(): a
# forked child (multiprocessing, a preloading server) that hashes with it waits for them forever.
_blake3_threads = blake3.blake3.AUTO


def _hash_on_one_thread_after_fork() -> None:
    global _blake3_threads
    _blake3_threads = 1


os.register_at_fork(after_in_child=_hash_on_one_thread_after_fork)


def blake3_threads(concurrent: int, cpus: int) -> int:
    """BLAKE3 threads for one of ``concurrent`` files hashed at once on ``cpus`` CPUs.

    Alone, a file gets BLAKE3's own pool. Beside others, threads already outnumber the CPUs, and
    BLAKE3's pool on top only adds contention: 4 files at once on 2 CPUs hashed 1.01-1.5x faster
    (median 1.15x over 8 rounds) with one thread each than with BLAKE3's pool each.
    """
    if concurrent <= 1:
        return blake3.blake3.AUTO
    return max(1, cpus // concurrent)


class StreamHasher:
    """Accumulates BLAKE3 (and optionally SHA-256) over chunks fed in order.

    ``threads`` caps BLAKE3's threads for this stream (default: BLAKE3's own pool).
    """

    def __init__(self, *, sha256: bool = False, threads: int | None = None) -> None:
        max_threads = _blake3_threads if threads is None or _blake3_threads == 1 else threads
        self._blake3 = blake3.blake3(max_threads=max_threads)
        self._sha256 = hashlib.sha256() if sha256 else None
        self.size = 0

    def update(self, chunk: bytes | memoryview) -> None:
        """Add the next chunk of content."""
        self._blake3.update(chunk)
        if self._sha256 is not None:
            self._sha256.update(chunk)
        self.size += len(chunk)

    def digests(self) -> Digests:
        """The size and hashes of everything fed so far."""
        return Digests(
            size=self.size,
            blake3=self._blake3.hexdigest(),
            sha256=self._sha256.hexdigest() if self._sha256 is not None else None,
        )


class HashingWriter:
    """Writes a new file while hashing it; :meth:`close` fsyncs and returns the digests.

    Use as a context manager: leaving the block with an exception closes the file
    without returning digests, and the caller's staging directory is discarded.
    """

    def __init__(self, path: Path, *, sha256: bool = False) -> None:
        self.path = path
        self._hasher = StreamHasher(sha256=sha256)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._hasher.size

    def write(self, chunk: bytes | memoryview) -> None:
        """Hash and append ``chunk``."""
        assert self._fd is not None, "write after close"
        self._hasher.update(chunk)
        view = memoryview(chunk)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def close(self) -> Digests:
        """Flush the file to disk, close it and return its digests."""
        assert self._fd is not None, "close twice"
        try:
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = None
        return self._hasher.digests()

    def __enter__(self) -> HashingWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


_SMALLEST_BUFFER = 64 * 1024


def iter_file_chunks(path: Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[memoryview]:
    """Yield a file's content as successive memoryviews of one reused buffer.

    Each view is valid only until the next one is yielded: consume it before advancing. The
    buffer is no larger than the file needs: zeroing 8 MiB per file dominated copying and
    hashing models made of thousands of small files.
    """
    with open(path, "rb", buffering=0) as handle:
        buffer = bytearray(min(chunk_bytes, max(os.fstat(handle.fileno()).st_size, _SMALLEST_BUFFER)))
        view = memoryview(buffer)
        while True:
            count = handle.readinto(buffer)
            if not count:
                return
            yield view[:count]


def hash_file(path: Path, *, sha256: bool = False) -> Digests:
    """Hash a file by streaming it (memory stays at one chunk whatever the file's size).

    Files hashed at the same time from several threads share the CPUs (see :func:`blake3_threads`).
    """
    global _hashing
    with _hashing_lock:
        _hashing += 1
        threads = blake3_threads(_hashing, _usable_cpus())
    try:
        hasher = StreamHasher(sha256=sha256, threads=threads)
        for chunk in iter_file_chunks(path):
            hasher.update(chunk)
        return hasher.digests()
    finally:
        with _hashing_lock:
            _hashing -= 1


_hashing = 0  # hash_file calls running now, in any thread
_hashing_lock = threading.Lock()


@functools.cache
def _usable_cpus() -> int:
    from .cpus import usable_cpus  # here, not at the top: a warm hit imports hashing, never hashes

    return usable_cpus()
