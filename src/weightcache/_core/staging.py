"""The staging area: a private directory inside the store where one populate writes its files.

A source never writes into a published entry. It writes here, through these methods, which
hash every byte as it is written and record a :class:`FileRecord` per file. Only once every
file is in and checked does the cache rename the staging directory into place.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from .._transport.fsutil import open_regular, remove_tree, safe_relpath
from .._transport.hashing import Digests, HashingWriter, hash_file
from .._transport.ranged import RangedWriter
from .._transport.resume import Journal, claim, discard_all
from ..errors import IntegrityError, SourceChangedError, SourceError, StoreFullError, UnsafePathError
from ..manifest import FileRecord
from ..progress import ProgressCallback, ProgressEvent, emit
from .constants import CHUNK_BYTES

logger = logging.getLogger(__name__)

# A name the store's filesystem cannot hold: too long, or a file where a directory must be (or back).
_NAME_ERRNOS = {errno.ENAMETOOLONG, errno.EEXIST, errno.ENOTDIR, errno.EISDIR}


@dataclass(frozen=True)
class KnownFile:
    """A file of a published entry that a populate may take instead of fetching it again.

    ``check`` files are rehashed against the SHA-256 the source gives before they are taken
    (the files of an imported entry being checked against its source); the others are taken
    as they are, by hardlink where the store allows.
    """

    path: Path
    record: FileRecord
    check: bool = False


@contextlib.contextmanager
def _name_errors(relpath: str) -> Iterator[None]:
    """Turn a file name the store's filesystem refuses into one clear :class:`UnsafePathError`."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise UnsafePathError(
                f"file name {relpath!r} is too long for the store's filesystem; rename it in the source"
            ) from exc
        if exc.errno in _NAME_ERRNOS:
            raise UnsafePathError(
                f"the source gives both a file and a directory named {relpath.split('/')[0]!r} "
                f"(at {relpath!r}); a directory tree cannot hold both, so rename one"
            ) from exc
        raise


class Staging:
    """Where a source puts the files of one populate; thread-safe for parallel fetches."""

    def __init__(
        self,
        directory: Path,
        *,
        store_name: str,
        progress: ProgressCallback | None = None,
        known_files: Callable[[], dict[str, KnownFile]] | None = None,
    ) -> None:
        self.directory = directory
        self.files_dir = directory / "files"
        self._known_files = known_files
        self._known: dict[str, KnownFile] | None = None
        #: Bytes the source announced through :meth:`plan` (0 until then).
        self.planned_bytes = 0
        self._store_name = store_name
        self._progress = progress
        self._records: dict[str, FileRecord] = {}
        self._lock = threading.Lock()

    # --- what sources call ------------------------------------------------------------

    def plan(self, sizes: dict[str, int | None]) -> None:
        """Announce the files about to be fetched (relative path to size, when known).

        Fails early with :class:`StoreFullError` when the store's filesystem cannot hold them.
        """
        known = [size for size in sizes.values() if size is not None]
        self.planned_bytes = sum(known)
        free = shutil.disk_usage(self.directory).free
        if self.planned_bytes > free:
            raise StoreFullError(
                f"store {self._store_name} has {free:,} bytes free but this entry needs "
                f"{self.planned_bytes:,}; free space there (weightcache gc) or choose a larger store"
            )
        total = self.planned_bytes if len(known) == len(sizes) else None
        emit(self._progress, ProgressEvent("plan", total_bytes=total, files=len(sizes)))

    def path_for(self, name: str) -> Path:
        """The staging path for a file named ``name`` (validated), with its parent created.

        Whatever is written there is new: a killed populate's record of ranges for that name is
        dropped, so that it can never describe these bytes.
        """
        relpath = safe_relpath(name)
        self._forget_ranges(relpath)
        return self._target(relpath)

    def _target(self, relpath: str) -> Path:
        path = self.files_dir / relpath
        with _name_errors(relpath):
            path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write_stream(
        self,
        name: str,
        chunks: Iterable[bytes | memoryview],
        *,
        size: int | None = None,
        sha256: str | None = None,
    ) -> FileRecord:
        """Write a file from a stream of chunks, hashing as it goes, and check it.

        ``size`` and ``sha256`` are what the source promised; a difference raises and the
        file is not recorded.
        """
        relpath = safe_relpath(name)
        target = self.path_for(relpath)
        with _name_errors(relpath):
            writer = HashingWriter(target, sha256=sha256 is not None)
        with writer:
            for chunk in chunks:
                writer.write(chunk)
                self.report_bytes(relpath, len(chunk), file_size=size)
            digests = writer.close()
        return self._record(relpath, digests, size=size, sha256=sha256)

    @contextlib.contextmanager
    def write_ranges(self, name: str, *, size: int, sha256: str | None = None) -> Iterator[RangedWriter]:
        """Write file ``name`` of ``size`` bytes in byte ranges, from many threads, in any order.

        Yields a :class:`~weightcache._transport.ranged.RangedWriter`; it hashes the file while it fills.
        When the block ends the file is checked against ``sha256`` and recorded, as with
        :meth:`write_stream`; an exception in the block discards it.
        """
        with self.open_ranges(name, size=size, sha256=sha256) as writer:
            yield writer
            self.close_ranges(writer, sha256=sha256)

    def open_ranges(
        self, name: str, *, size: int, sha256: str | None = None, version: str | None = None
    ) -> RangedWriter:
        """Open file ``name`` for :meth:`write_ranges`'s writes without a ``with`` block.

        With ``version`` (what names these exact bytes: ``sha256 HEX``, an ETag...), the writer
        journals its progress, and resumes from what a killed populate of the same entry left
        for the same version (those ranges count as written). Finish
        with :meth:`close_ranges`, or leave the writer's ``with`` block on an exception.
        """
        relpath = safe_relpath(name)
        if version is None:
            target, journal, resume = self.path_for(relpath), None, None
        else:
            target = self._target(relpath)
            journal = Journal(self.directory, relpath, size=size, version=version)
            resume = claim(self.directory, journal, target)
        on_write = partial(self.report_bytes, relpath, file_size=size)
        with _name_errors(relpath):
            writer = RangedWriter(
                target, size, sha256=sha256 is not None, on_write=on_write, journal=journal, resume=resume
            )
        if resume:
            self.report_bytes(relpath, writer.resumed_bytes(), file_size=size)
        return writer

    def close_ranges(self, writer: RangedWriter, *, sha256: str | None = None) -> FileRecord:
        """Finish a file from :meth:`open_ranges`: wait for its hash, check it against ``sha256``, record it.

        A file that fails its check leaves no journal, so no later populate resumes from its bytes.
        """
        relpath = safe_relpath(str(writer.path.relative_to(self.files_dir)))
        try:
            return self._record(relpath, writer.close(), size=writer.size, sha256=sha256)
        except Exception:
            if writer.journal is not None:
                writer.journal.discard()
            raise

    def _forget_ranges(self, relpath: str) -> None:
        """Drop a killed populate's journal for ``relpath``: the file is written afresh, unjournaled."""
        Journal(self.directory, relpath, size=0, version="").discard()

    def discard_resume_data(self) -> None:
        """Remove the download journals and a killed populate's leftovers: nothing of them is published."""
        discard_all(self.directory)

    @contextlib.contextmanager
    def scratch_dir(self) -> Iterator[Path]:
        """A private directory on the store's filesystem for a downloader's own temporary files.

        For third-party downloaders that keep metadata next to what they download: move the
        finished files to :meth:`path_for` and :meth:`adopt` them. The directory and whatever is
        left in it are removed when the block ends; nothing in it is ever published.
        """
        scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=self.directory))
        try:
            yield scratch
        finally:
            remove_tree(scratch)

    def report_bytes(self, name: str, nbytes: int, *, file_size: int | None = None) -> None:
        """Report that ``nbytes`` more of ``name`` arrived, for a downloader writing at :meth:`path_for`."""
        emit(self._progress, ProgressEvent("advance", path=name, nbytes=nbytes, file_size=file_size))

    def copy_file(self, src: Path, name: str, *, size: int | None = None) -> FileRecord:
        """Copy a local file into staging in one pass (read, hash, write).

        ``src`` must still be a regular file: one replaced by a FIFO or a device since the
        source listed it raises :class:`SourceChangedError` at once instead of blocking.
        """
        return self.write_stream(name, _regular_file_chunks(src), size=size)

    def adopt(self, name: str, *, size: int | None = None, sha256: str | None = None) -> FileRecord:
        """Record a file a third-party downloader already wrote at :meth:`path_for` ``(name)``.

        The file is hashed by reading it back (usually from the page cache) and checked
        against what the source promised.
        """
        relpath = safe_relpath(name)
        path = self.files_dir / relpath
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
        digests = hash_file(path, sha256=sha256 is not None)
        emit(self._progress, ProgressEvent("advance", path=relpath, nbytes=0, file_size=digests.size))
        return self._record(relpath, digests, size=size, sha256=sha256)

    def try_reuse(self, name: str, *, sha256: str, size: int) -> FileRecord | None:
        """Take file ``name`` from an earlier entry of the same source if one holds this exact content.

        Sources call this before downloading a file whose SHA-256 they know (incremental updates:
        a new revision re-downloads only what changed). Hardlinks where the store allows, else
        copies. Returns the record, or ``None`` when no earlier entry has the content (or the
        file there is no longer a regular file of that size: then the source fetches it).
        """
        with self._lock:
            if self._known is None:
                self._known = self._known_files() if self._known_files is not None else {}
            found = self._known.get(sha256.lower())
        if found is None or found.record.size != size or not _regular_of_size(found.path, size):
            return None
        relpath = safe_relpath(name)
        target = self.path_for(relpath)
        if found.check:
            return self._copy_checked(found.path, relpath, size=size, sha256=sha256)
        try:
            os.link(found.path, target, follow_symlinks=False)
        except FileNotFoundError:
            return None  # removed since it was listed: fetch it
        except OSError:
            return self._copy_checked(found.path, relpath, size=size, sha256=sha256)
        if not _regular_of_size(target, size):  # replaced between the check and the link
            target.unlink()
            return None
        record = found.record.model_copy(update={"path": relpath})
        emit(
            self._progress,
            ProgressEvent("advance", path=record.path, nbytes=record.size, file_size=record.size),
        )
        emit(self._progress, ProgressEvent("file_done", path=record.path, file_size=record.size))
        return self._add(record)

    def _copy_checked(self, existing: Path, relpath: str, *, size: int, sha256: str) -> FileRecord | None:
        """Copy ``existing`` in, checked against ``sha256``; ``None`` (fetch it) if it differs or is gone."""
        try:
            return self.write_stream(relpath, _regular_file_chunks(existing), size=size, sha256=sha256)
        except (IntegrityError, SourceChangedError, FileNotFoundError) as exc:
            logger.info("not reusing %s for %s (%s); fetching it", existing, relpath, exc)
            (self.files_dir / relpath).unlink(missing_ok=True)
            return None

    # --- what the cache reads -----------------------------------------------------------

    def records(self) -> list[FileRecord]:
        """Every file recorded so far, sorted by path."""
        with self._lock:
            return sorted(self._records.values(), key=lambda record: record.path)

    def _record(self, relpath: str, digests: Digests, *, size: int | None, sha256: str | None) -> FileRecord:
        digests.check(relpath, size=size, sha256=sha256)
        record = FileRecord(path=relpath, size=digests.size, blake3=digests.blake3, sha256=digests.sha256)
        emit(self._progress, ProgressEvent("file_done", path=relpath, file_size=digests.size))
        return self._add(record)

    def _add(self, record: FileRecord) -> FileRecord:
        with self._lock:
            if record.path in self._records:
                raise SourceError(f"the source gave two files named {record.path!r}; rename one of them")
            self._records[record.path] = record
        return record


def _regular_of_size(path: Path, size: int) -> bool:
    """Whether ``path`` itself (no symlink followed) is a regular file of ``size`` bytes."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size == size


def _regular_file_chunks(path: Path) -> Iterator[memoryview]:
    """Regular file ``path`` as views of one reused buffer (as :func:`~.hashing.iter_file_chunks`).

    Raises :class:`SourceChangedError` if ``path`` is no longer a regular file (a FIFO would block).
    """
    fd = open_regular(path)
    if fd is None:
        raise SourceChangedError(f"{path} is no longer a regular file; run again once the source is stable")
    with open(fd, "rb", buffering=0) as handle:
        buffer = bytearray(min(CHUNK_BYTES, max(os.fstat(fd).st_size, 64 * 1024)))
        view = memoryview(buffer)
        while count := handle.readinto(buffer):
            yield view[:count]
