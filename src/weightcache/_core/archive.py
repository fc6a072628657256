"""Backup and restore without Modal: one entry as a streamed tar archive.

An archive holds ``<key>/manifest.json`` first, then ``<key>/files/...``, so extracting it
by hand gives an entry directory. Export reads each file once, hashing it as it is
written, and fails rather than archive a file that differs from its manifest. Import reads
the archive as a stream (a file or a pipe) and publishes only if every file matches the
manifest inside it: that proves the archive is intact, not who wrote it. So an imported
entry is marked as imported (with its origin) and, unless imported with ``trust=True``, a
plain ``ensure`` of its source checks its files against the source's own hashes before
serving them (see :func:`weightcache._core.populate.reusable_files`).
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import lzma
import os
import stat
import tarfile
import zlib
from collections.abc import Iterator
from typing import IO

from .._transport.fsutil import unique_suffix
from .._transport.hashing import StreamHasher
from ..cache import WeightCache
from ..entry import Entry
from ..errors import (
    ArchiveError,
    ArchiveFormatError,
    ChecksumMismatchError,
    IntegrityError,
    InvalidArgumentError,
    ManifestError,
    SourceNotFoundError,
)
from ..manifest import parse_manifest
from ..progress import ProgressCallback
from .constants import CHUNK_BYTES, MAX_MANIFEST_BYTES
from .transfer import FileStream, ManifestSource
from .verify import stat_problems


def export_entry(cache: WeightCache, key: str, out: IO[bytes]) -> Entry:
    """Write entry ``key`` of ``cache`` to ``out`` as a tar archive (``out`` may be a pipe)."""
    entry = cache.get(key)
    problems = stat_problems(entry.path, entry.manifest)
    if problems:
        raise IntegrityError(
            f"entry {key} is damaged ({problems[0].path}: {problems[0].detail}); "
            "repair it with `weightcache ensure SOURCE --repair` before exporting"
        )
    mtime = entry.manifest.created_at.timestamp()
    with tarfile.TarFile(
        fileobj=_PositionedWriter(out), mode="w", format=tarfile.PAX_FORMAT, copybufsize=CHUNK_BYTES
    ) as tar:
        manifest_json = entry.manifest.to_json()
        tar.addfile(_member(f"{key}/manifest.json", len(manifest_json), mtime), io.BytesIO(manifest_json))
        for record in entry.manifest.files:
            with open(entry.path / record.path, "rb") as handle:
                reader = _HashingReader(handle)
                tar.addfile(_member(f"{key}/files/{record.path}", record.size, mtime), reader)
            if reader.hasher.digests().blake3 != record.blake3:
                raise ChecksumMismatchError(
                    f"{record.path} in entry {key} differs from its manifest, so the archive is unusable; "
                    "repair the entry with `weightcache ensure SOURCE --repair` and export again"
                )
    return entry


def export_to_path(cache: WeightCache, key: str, path: str) -> Entry:
    """Write entry ``key`` as a tar archive to the file at ``path``; return the entry.

    A regular file (or a new one) is written beside ``path`` and renamed over it, so a failed
    export leaves no half archive. A FIFO or character device (``/dev/stdout``, ``/dev/null``) is
    written through, never replaced; a symlink, directory or block device is refused.
    """
    if not path:
        raise InvalidArgumentError("the archive path is empty; give a file name, or - for stdout")
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise _write_error(path, exc) from exc
    if info is not None and not stat.S_ISREG(info.st_mode):
        return _export_through(cache, key, path, info)
    partial = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{unique_suffix()}.partial")
    try:
        with open(partial, "xb") as handle:
            entry = export_entry(cache, key, handle)
        os.replace(partial, path)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    finally:
        with contextlib.suppress(OSError):  # gone after the rename, or never made (a read-only filesystem)
            os.unlink(partial)
    return entry


def _export_through(cache: WeightCache, key: str, path: str, info: os.stat_result) -> Entry:
    if not (stat.S_ISFIFO(info.st_mode) or stat.S_ISCHR(info.st_mode)):
        kinds = {stat.S_IFLNK: "symlink", stat.S_IFDIR: "directory"}
        kind = kinds.get(stat.S_IFMT(info.st_mode), "device")
        raise ArchiveError(f"{path} is a {kind}, not a file; give the path of a file to write the archive to")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC)
        with open(fd, "wb") as handle:
            if stat.S_IFMT(os.fstat(fd).st_mode) != stat.S_IFMT(info.st_mode):
                raise ArchiveError(f"{path} was replaced while it was being opened; nothing written")
            return export_entry(cache, key, handle)
    except OSError as exc:
        raise _write_error(path, exc) from exc


def _write_error(path: str, exc: OSError) -> ArchiveError:
    if exc.errno == errno.ENAMETOOLONG:
        return ArchiveError(f"the archive path {path} is too long for its filesystem; choose a shorter one")
    return ArchiveError(f"could not write the archive {path} ({exc.strerror or exc}); choose a writable path")


@contextlib.contextmanager
def open_archive(path: str) -> Iterator[IO[bytes]]:
    """Open the archive at ``path`` for :func:`import_archive` (a file, or a pipe such as ``/dev/stdin``)."""
    try:
        handle = open(path, "rb")  # noqa: SIM115  (closed below)
    except FileNotFoundError:
        raise SourceNotFoundError(f"archive {path} does not exist; check the path") from None
    except IsADirectoryError:
        raise ArchiveError(f"{path} is a directory; give the archive file that export wrote") from None
    except OSError as exc:
        raise ArchiveError(f"could not read the archive {path} ({exc.strerror or exc})") from exc
    with handle:
        yield handle


def import_archive(
    cache: WeightCache,
    stream: IO[bytes],
    *,
    name: str,
    trust: bool = False,
    progress: ProgressCallback | None = None,
) -> Entry:
    """Publish the entry in the tar archive read from ``stream`` (``name`` is shown in errors).

    The entry is marked as imported from ``name``. Without ``trust``, a later plain ``ensure``
    of its source checks its files against that source's own hashes before serving it; with
    ``trust``, the archive is taken as the source's own bytes. A store that already holds the
    entry reports a hit and reads no further.
    """
    origin = f"archive {name}"
    try:
        return _import(cache, stream, origin, trust, progress)
    except tarfile.TarError as exc:
        reason = str(exc).splitlines()[0].rstrip(":")  # tarfile lists every method it tried, one per line
        raise ArchiveFormatError(
            f"{origin} is not a readable tar archive ({reason}); nothing imported"
        ) from exc
    except (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile) as exc:
        raise ArchiveFormatError(
            f"{origin} is truncated or its compression is damaged ({exc}); nothing imported"
        ) from exc


def _import(
    cache: WeightCache, stream: IO[bytes], origin: str, trust: bool, progress: ProgressCallback | None
) -> Entry:
    # A file is read in place; a pipe needs tarfile's stream mode, which copies (about 2x slower).
    mode = "r:*" if stream.seekable() else "r|*"
    with tarfile.open(fileobj=stream, mode=mode, bufsize=CHUNK_BYTES) as tar:
        first = tar.next()
        if first is None or not first.isfile() or not first.name.endswith("/manifest.json"):
            raise ManifestError(f"{origin} does not start with a weightcache manifest; use one from export")
        if first.size > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{origin} has a {first.size:,}-byte manifest, too large to be one")
        handle = tar.extractfile(first)
        assert handle is not None  # a regular file always has content
        manifest = parse_manifest(handle.read(), where=f"in {origin}")
        if first.name != f"{manifest.key}/manifest.json":
            raise ManifestError(f"{origin} keeps its manifest at {first.name!r}, not under its key")
        source = ManifestSource(
            manifest,
            lambda: _entry_files(tar, manifest.key, origin),
            origin=origin,
            imported=True,
            trusted=trust,
        )
        return cache.ensure(source, progress=progress)


def _entry_files(tar: tarfile.TarFile, key: str, origin: str) -> FileStream:
    prefix = f"{key}/files/"
    while (member := tar.next()) is not None:
        tar.members.clear()  # tarfile keeps every member it read: forget them, so memory stays bounded
        if member.isdir():
            continue
        if not member.isfile() or not member.name.startswith(prefix):
            raise IntegrityError(
                f"{origin} holds {member.name!r}, which is not a file of entry {key}; nothing was published"
            )
        handle = tar.extractfile(member)
        assert handle is not None  # a regular file always has content
        yield member.name[len(prefix) :], iter(lambda handle=handle: handle.read(CHUNK_BYTES), b"")


def _member(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o644
    return info


class _PositionedWriter:
    """Gives a pipe the ``tell()`` tarfile's plain (unbuffered) writer needs."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._position = 0

    def write(self, data: bytes) -> int:
        self._raw.write(data)
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position


class _HashingReader:
    """Reads a file for tarfile while hashing what passes through."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.hasher = StreamHasher()

    def read(self, size: int) -> bytes:
        data = self._raw.read(size)
        self.hasher.update(data)
        return data
