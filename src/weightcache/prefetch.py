"""Read weight files into the page cache ahead of use, in parallel, optionally in the background.

Container start spends seconds importing torch and building the model before the first weight
byte is read. Starting :func:`prefetch_in_background` first overlaps that time with the reads,
so the loader later copies from memory instead of waiting on the disk or the network::

    handle = prefetch_in_background(entry)      # returns at once
    import torch, transformers                  # the reads run meanwhile
    report = handle.wait()                      # PrefetchReport(files, bytes, seconds, ...)

Each file is cut into :data:`CHUNK_BYTES` ranges read by many threads (network volumes serve
many concurrent reads faster than one stream). A range is read with ``sendfile`` into
``/dev/null``: the kernel fills the page cache and copies nothing to the process, which costs a
quarter of the CPU of ``preadv`` (measured here) and leaves the cores to the imports it overlaps.
Where a filesystem cannot do that, ranges are ``preadv``-ed into one reused buffer per thread, so
memory stays at ``threads x CHUNK_BYTES`` at most. ``posix_fadvise(WILLNEED)`` is issued per file
first, which lets a local disk start its own readahead; it costs nothing where ignored.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ._core.constants import CHUNK_BYTES
from ._core.targets import Targets, flatten_targets, missing_file_error, unique_paths
from ._transport.cpus import READ_BUDGET
from ._transport.fsutil import open_regular
from .entry import Entry
from .errors import LoadError

__all__ = ["PrefetchHandle", "PrefetchReport", "Targets", "prefetch", "prefetch_in_background"]


@dataclass(frozen=True)
class PrefetchReport:
    """What a prefetch read: ``bytes`` from ``files`` files in ``seconds``; ``cancelled`` if stopped early."""

    files: int
    bytes: int
    seconds: float
    threads: int
    cancelled: bool = False

    @property
    def gb_per_s(self) -> float:
        """Read throughput in GB/s (10^9 bytes per second)."""
        return self.bytes / self.seconds / 1e9 if self.seconds > 0 else 0.0


def prefetch(targets: Targets, *, threads: int | None = None) -> PrefetchReport:
    """Read every file of ``targets`` (entries, files, directories recursively) so it sits in the page cache.

    ``threads`` ``None`` reads with the process's reader threads (4 per usable CPU, at most 16)
    less those a running ``load_safetensors`` holds (but at least half of them).

    Raises :class:`WeightFileNotFoundError` for a path that does not exist (before reading
    anything) and :class:`LoadError` when a read fails.
    """
    return _Prefetch(targets, threads).run()


def prefetch_in_background(targets: Targets, *, threads: int | None = None) -> PrefetchHandle:
    """Start :func:`prefetch` in a daemon thread and return at once; ``handle.wait()`` gives its report."""
    return PrefetchHandle(_Prefetch(targets, threads))


class PrefetchHandle:
    """A prefetch running in the background: poll it, wait for it, or cancel it.

    The thread is a daemon, so a process that exits without waiting is not held up by it.
    """

    def __init__(self, job: _Prefetch) -> None:
        self._job = job
        self._report: PrefetchReport | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="weightcache-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._report = self._job.run()
        except BaseException as exc:  # handed to wait(), which re-raises it in the caller's thread
            self._error = exc

    @property
    def bytes_read(self) -> int:
        """Bytes read so far."""
        return self._job.bytes_read

    @property
    def total_bytes(self) -> int | None:
        """Bytes to read in all, once the files have been listed (``None`` before)."""
        return self._job.total_bytes

    def done(self) -> bool:
        """Whether the prefetch has finished (read everything, failed, or been cancelled)."""
        return not self._thread.is_alive()

    def cancel(self) -> None:
        """Stop reading after the chunks in flight; ``wait()`` then reports what was read."""
        self._job.cancelled.set()

    def wait(self, timeout: float | None = None) -> PrefetchReport:
        """Block until the prefetch ends and return its report, re-raising its error if it failed.

        Raises :class:`TimeoutError` if it is still running after ``timeout`` seconds.
        """
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"prefetch still running after {timeout}s ({self.bytes_read:,} bytes read)")
        if self._error is not None:
            raise self._error
        assert self._report is not None
        return self._report


class _Prefetch:
    """One prefetch: list the files, then read their chunks on a thread pool through a bounded queue."""

    def __init__(self, targets: Targets, threads: int | None) -> None:
        self.targets = flatten_targets(targets)
        self.requested_threads = threads
        self.threads = 1  # set when the run takes its threads from the budget
        self.cancelled = threading.Event()
        self.bytes_read = 0
        self.total_bytes: int | None = None
        self._failures: list[BaseException] = []
        self._lock = threading.Lock()
        self._buffers = threading.local()
        self._sink: int | None = None

    def run(self) -> PrefetchReport:
        with READ_BUDGET.take(self.requested_threads) as self.threads:
            return self._run()

    def _run(self) -> PrefetchReport:
        # At most two chunks per thread are queued, so memory and open descriptors stay bounded.
        self._slots = threading.BoundedSemaphore(2 * self.threads)
        started = time.perf_counter()
        sized = [(path, _size_of(path)) for path in list_files(self.targets)]
        self.total_bytes = sum(size for _path, size in sized)
        open_files: list[tuple[int, list[Future[None]]]] = []
        self._sink = sink = _open_sink()
        try:
            with ThreadPoolExecutor(self.threads, thread_name_prefix="weightcache-prefetch") as pool:
                for path, size in sized:
                    if self._stopping():
                        break
                    _close_finished(open_files)
                    descriptor = _open_for_prefetch(path)
                    open_files.append((descriptor, self._submit_file(pool, path, descriptor, size)))
        finally:
            for descriptor, _futures in open_files:
                os.close(descriptor)
            if sink is not None:
                os.close(sink)
        if self._failures:
            raise self._failures[0]
        return PrefetchReport(
            files=len(sized),
            bytes=self.bytes_read,
            seconds=time.perf_counter() - started,
            threads=self.threads,
            cancelled=self.cancelled.is_set(),
        )

    def _stopping(self) -> bool:
        return self.cancelled.is_set() or bool(self._failures)

    def _submit_file(
        self, pool: ThreadPoolExecutor, path: Path, descriptor: int, size: int
    ) -> list[Future[None]]:
        futures: list[Future[None]] = []
        for offset in range(0, size, CHUNK_BYTES):
            self._slots.acquire()
            if self._stopping():
                self._slots.release()
                break
            future = pool.submit(self._read_chunk, path, descriptor, offset, min(CHUNK_BYTES, size - offset))
            future.add_done_callback(self._chunk_done)
            futures.append(future)
        return futures

    def _chunk_done(self, future: Future[None]) -> None:
        self._slots.release()
        if future.exception() is not None:
            self._failures.append(future.exception())  # type: ignore[arg-type]

    def _read_chunk(self, path: Path, descriptor: int, offset: int, length: int) -> None:
        done = 0
        try:
            while done < length and not self.cancelled.is_set():
                count = self._read_some(descriptor, offset + done, length - done)
                if count == 0:  # the file shrank since it was listed: nothing more to read
                    break
                done += count
        except OSError as exc:
            raise LoadError(
                f"reading {path} failed ({exc.strerror}); check that its volume is mounted"
            ) from exc
        finally:
            with self._lock:
                self.bytes_read += done

    def _read_some(self, descriptor: int, offset: int, length: int) -> int:
        if self._sink is not None:
            try:
                return os.sendfile(self._sink, descriptor, offset, length)
            except OSError as exc:
                if exc.errno not in _NO_SPLICE:
                    raise
                self._sink = None  # this filesystem cannot splice: read through a buffer from now on
        buffer = getattr(self._buffers, "view", None)
        if buffer is None:
            buffer = self._buffers.view = memoryview(bytearray(CHUNK_BYTES))
        return os.preadv(descriptor, [buffer[:length]], offset)


# What sendfile says when the source filesystem cannot splice its pages.
_NO_SPLICE = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP}


def _open_sink() -> int | None:
    """``/dev/null`` opened for ``sendfile``, or ``None`` where it cannot be (reads then use a buffer)."""
    if not hasattr(os, "sendfile"):
        return None
    try:
        return os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return None


def list_files(targets: list[Entry | Path]) -> list[Path]:
    """Every file to prefetch: an entry's manifest files, a file, or the files under a directory."""
    files: list[Path] = []
    for target in targets:
        if isinstance(target, Entry):
            files.extend(target.files)
        elif target.is_dir():
            files.extend(_walk(target))
        elif target.exists():
            files.append(target)
        else:
            raise missing_file_error(target)
    return unique_paths(files)


def _walk(directory: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if path.is_file():  # follows symlinks, so a directory of links into an entry counts
                yield path


def _size_of(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        raise missing_file_error(path) from None


def _open_for_prefetch(path: Path) -> int:
    try:
        descriptor = open_regular(path)  # never blocks: a FIFO would hang a plain open()
    except FileNotFoundError:
        raise missing_file_error(path) from None
    if descriptor is None:
        raise LoadError(f"{path} is not a regular file (a FIFO or a device); prefetch reads only files")
    if hasattr(os, "posix_fadvise"):
        # Starts a local disk's own readahead of the whole file; where it is ignored, nothing is lost.
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_WILLNEED)
    return descriptor


def _close_finished(open_files: list[tuple[int, list[Future[None]]]]) -> None:
    still_open = []
    for descriptor, futures in open_files:
        if all(future.done() for future in futures):
            os.close(descriptor)
        else:
            still_open.append((descriptor, futures))
    open_files[:] = still_open
