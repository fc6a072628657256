"""Backup and restore without Modal: one entry as a streamed tar archive.

An archive holds ``<key>/manifest.json`` first, then ``<key>/files/...``, so extracting it
by hand gives an entry directory. Export reads each file once, hashing it as it is
written, and fails rather than archive a file that differs from its manifest. Import reads
the archive as a stream (a file or a pipe) and publishes only if every file matches the
manifest inside it: that proves the archive is intact, not who wrote it.
"""

from __future__ import annotations

import io
import tarfile
from typing import IO

from .cache import WeightCache
from .constants import CHUNK_BYTES, MAX_MANIFEST_BYTES
from .entry import Entry
from .errors import ChecksumMismatchError, IntegrityError, ManifestError
from .hashing import StreamHasher
from .manifest import parse_manifest
from .progress import ProgressCallback
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


def import_archive(
    cache: WeightCache, stream: IO[bytes], *, name: str, progress: ProgressCallback | None = None
) -> Entry:
    """Publish the entry in the tar archive read from ``stream`` (``name`` is shown in errors).

    A store that already holds the entry reports a hit and reads no further.
    """
    origin = f"archive {name}"
    try:
        return _import(cache, stream, origin, progress)
    except tarfile.TarError as exc:
        reason = str(exc).splitlines()[0].rstrip(":")  # tarfile lists every method it tried, one per line
        raise IntegrityError(f"{origin} is not a readable tar archive ({reason}); nothing imported") from exc


def _import(cache: WeightCache, stream: IO[bytes], origin: str, progress: ProgressCallback | None) -> Entry:
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
        source = ManifestSource(manifest, lambda: _entry_files(tar, manifest.key, origin), origin=origin)
        return cache.ensure(source, progress=progress)


def _entry_files(tar: tarfile.TarFile, key: str, origin: str) -> FileStream:
    prefix = f"{key}/files/"
    while (member := tar.next()) is not None:
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
