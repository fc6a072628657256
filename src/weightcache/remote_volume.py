"""A Modal Volume seen from outside Modal (a laptop, CI): list, verify, push and pull entries.

Only the calls ``modal.Volume`` offers outside a container are used: ``listdir``,
``read_file``, ``batch_upload`` and ``remove_file``. The store's layout sits at the Volume's
root, as :class:`~weightcache.providers.modal_volume.ModalVolumeStore` writes it when the
Volume is mounted at the store's path. What is read is the Volume's committed state: a
container that started earlier, or has not committed, may see something else.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from pydantic import BaseModel

from .cache import WeightCache
from .constants import IO_THREADS, MAX_MANIFEST_BYTES
from .entry import Entry
from .errors import EntryNotFoundError, IntegrityError, ManifestError, StoreError, WeightCacheError
from .hashing import StreamHasher
from .layout import StoreLayout
from .manifest import FileRecord, Manifest, parse_manifest
from .parallel import run_parallel
from .progress import ProgressCallback
from .refs import all_refs
from .transfer import ManifestSource
from .verify import Problem, VerifyReport

#: The store's layout as the Volume names paths (relative to its root, no leading slash).
_LAYOUT = StoreLayout(Path("/"))
_FILE, _DIRECTORY = 1, 2  # modal.volume.FileEntryType.FILE and .DIRECTORY


class RemoteVolume(Protocol):
    """What is used of a ``modal.Volume`` outside a container (``FakeModalVolume`` has it too)."""

    def listdir(self, path: str, *, recursive: bool = False) -> list[Any]:
        """Entries (``path``, ``type``, ``size``) under ``path``."""

    def read_file(self, path: str) -> Iterator[bytes]:
        """The content of a file, in chunks."""

    def batch_upload(self, force: bool = False) -> AbstractContextManager[Any]:
        """A batch of ``put_file`` uploads applied together."""

    def remove_file(self, path: str, recursive: bool = False) -> None:
        """Remove a file or a directory."""


def open_volume(name: str, *, create: bool = False) -> RemoteVolume:
    """The Modal Volume called ``name``; nothing is sent to Modal until it is used.

    The only place weightcache opens a Volume by name (tests point it at a fake).
    """
    import modal

    return modal.Volume.from_name(name, create_if_missing=create)  # type: ignore[no-any-return]


@contextlib.contextmanager
def modal_errors(name: str) -> Iterator[None]:
    """Turn Modal's exceptions into one-sentence :class:`StoreError` naming the Volume."""
    try:
        yield
    except WeightCacheError:
        raise
    except Exception as exc:
        from modal.exception import AuthError, Error, NotFoundError

        if isinstance(exc, AuthError):
            reason = str(exc).split(". ")[0].rstrip(".")
            raise StoreError(
                f"Modal refused access to Volume {name!r} ({reason}); run `modal token new` "
                "or set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET"
            ) from exc
        if isinstance(exc, NotFoundError):
            raise StoreError(
                f"Modal Volume {name!r} was not found; check its name and MODAL_ENVIRONMENT, "
                f"or push to it first (`weightcache push SOURCE --modal-volume {name}` creates it)"
            ) from exc
        if isinstance(exc, Error):
            raise StoreError(
                f"Modal Volume {name!r} could not be used ({type(exc).__name__}: {exc})"
            ) from exc
        raise


class PushReport(BaseModel):
    """What ``push`` did."""

    key: str
    volume: str
    files: int
    bytes: int
    already_present: bool
    refs: list[str]


class VolumeEntries:
    """The weightcache entries on the Modal Volume ``volume`` (called ``name`` in messages)."""

    def __init__(self, volume: RemoteVolume, name: str) -> None:
        self._volume = volume
        self.name = name

    def entry_keys(self) -> list[str]:
        """Keys of every entry directory, complete or not."""
        if "entries" not in {item.path for item in self._volume.listdir("/")}:
            return []
        listing = self._volume.listdir(_path(_LAYOUT.entries_dir))
        return sorted(PurePosixPath(item.path).name for item in listing if item.type == _DIRECTORY)

    def read_manifest(self, key: str) -> Manifest:
        """The manifest of entry ``key``; :class:`FileNotFoundError` or :class:`ManifestError` if unusable."""
        where = f"{_path(_LAYOUT.manifest_path(key))} on Modal Volume {self.name!r}"
        data = bytearray()
        for chunk in self._volume.read_file(_path(_LAYOUT.manifest_path(key))):
            data += chunk
            if len(data) > MAX_MANIFEST_BYTES:
                raise ManifestError(f"manifest {where} is larger than {MAX_MANIFEST_BYTES:,} bytes")
        manifest = parse_manifest(bytes(data), where=where)
        if manifest.key != key:
            raise ManifestError(f"manifest {where} names key {manifest.key!r}, not {key!r}")
        return manifest

    def list(self) -> list[Entry]:
        """Every valid entry, grouped by source, newest first (as ``WeightCache.list``)."""
        manifests = []
        for key in self.entry_keys():
            with contextlib.suppress(FileNotFoundError, ManifestError):
                manifests.append(self.read_manifest(key))
        manifests.sort(key=lambda manifest: (manifest.source, -manifest.created_at.timestamp()))
        return [
            Entry(key=m.key, path=Path(_path(_LAYOUT.files_dir(m.key))), manifest=m, hit=True)
            for m in manifests
        ]

    def verify(self, key: str, *, deep: bool) -> VerifyReport:
        """Check entry ``key``: manifest and sizes from a listing; ``deep`` downloads and rehashes."""
        started = time.perf_counter()
        try:
            manifest = self.read_manifest(key)
        except (FileNotFoundError, ManifestError) as exc:
            detail = str(exc) if isinstance(exc, ManifestError) else "manifest.json is missing"
            return _report(key, deep, started, None, [Problem(path=None, kind="manifest", detail=detail)])
        problems = self._listing_problems(manifest)
        if deep:
            damaged = {problem.path for problem in problems}
            tasks = [partial(self._hash_problems, key, r) for r in manifest.files if r.path not in damaged]
            problems += [problem for found in run_parallel(tasks, threads=IO_THREADS) for problem in found]
        return _report(key, deep, started, manifest, problems)

    def verify_all(self, *, deep: bool) -> list[VerifyReport]:
        """Check every entry directory, including ones whose manifest is missing or broken."""
        return [self.verify(key, deep=deep) for key in self.entry_keys()]

    def pull(self, cache: WeightCache, key: str, *, progress: ProgressCallback | None = None) -> Entry:
        """Copy entry ``key`` into ``cache``'s store, every file checked against its manifest."""
        try:
            manifest = self.read_manifest(key)
        except FileNotFoundError:
            raise EntryNotFoundError(
                f"no entry {key} on Modal Volume {self.name!r}; "
                f"see `weightcache ls --modal-volume {self.name}`"
            ) from None
        origin = f"Modal Volume {self.name!r}"
        files = lambda: ((r.path, self._read(key, r)) for r in manifest.files)  # noqa: E731
        return cache.ensure(ManifestSource(manifest, files, origin=origin), progress=progress)

    def push(self, layout: StoreLayout, entry: Entry) -> PushReport:
        """Upload a local entry (files, then its refs and manifest) unless the Volume holds it intact.

        Refs that point at the entry go along, so containers resolve its source offline.
        """
        refs = [ref for ref in all_refs(layout) if ref.key == entry.key]
        report = PushReport(
            key=entry.key,
            volume=self.name,
            files=len(entry.manifest.files),
            bytes=entry.total_bytes,
            already_present=False,
            refs=[ref.uri for ref in refs],
        )
        keys = self.entry_keys()
        if entry.key in keys:
            with contextlib.suppress(FileNotFoundError, ManifestError):
                if not self._listing_problems(self.read_manifest(entry.key)):
                    return report.model_copy(update={"already_present": True})
            self._volume.remove_file(_path(_LAYOUT.entry_dir(entry.key)), recursive=True)
        with self._volume.batch_upload(force=True) as batch:
            for record in entry.manifest.files:
                batch.put_file(entry.path / record.path, _file_path(entry.key, record))
        # A second batch, so the manifest lands only once every file has.
        with self._volume.batch_upload(force=True) as batch:
            for ref in refs:
                batch.put_file(layout.ref_path(ref.uri), _path(_LAYOUT.ref_path(ref.uri)))
            batch.put_file(layout.manifest_path(entry.key), _path(_LAYOUT.manifest_path(entry.key)))
        return report

    def _listing_problems(self, manifest: Manifest) -> list[Problem]:
        listing = self._volume.listdir(_path(_LAYOUT.entry_dir(manifest.key)), recursive=True)
        found = {item.path: item for item in listing}
        problems = []
        for record in manifest.files:
            item = found.get(_file_path(manifest.key, record))
            if item is None:
                problems.append(Problem(path=record.path, kind="missing", detail="file is missing"))
            elif item.type != _FILE:
                problems.append(Problem(path=record.path, kind="not-a-file", detail="not a regular file"))
            elif item.size != record.size:
                detail = f"{item.size:,} bytes, expected {record.size:,}"
                problems.append(Problem(path=record.path, kind="size", detail=detail))
        return problems

    def _hash_problems(self, key: str, record: FileRecord) -> list[Problem]:
        hasher = StreamHasher(sha256=record.sha256 is not None)
        for chunk in self._read(key, record):
            hasher.update(chunk)
        digests = hasher.digests()
        problems = []
        if digests.blake3 != record.blake3:
            detail = "content differs from the manifest (blake3)"
            problems.append(Problem(path=record.path, kind="blake3", detail=detail))
        if record.sha256 is not None and digests.sha256 != record.sha256:
            detail = "content differs from the source's sha256"
            problems.append(Problem(path=record.path, kind="sha256", detail=detail))
        return problems

    def _read(self, key: str, record: FileRecord) -> Iterable[bytes]:
        path = _file_path(key, record)
        try:
            yield from self._volume.read_file(path)
        except FileNotFoundError:
            raise IntegrityError(
                f"Modal Volume {self.name!r} lacks {path}, which its manifest lists; "
                "nothing was copied, so check the entry with `weightcache verify --modal-volume`"
            ) from None


def _path(path: Path) -> str:
    return path.as_posix().lstrip("/")


def _file_path(key: str, record: FileRecord) -> str:
    return f"{_path(_LAYOUT.files_dir(key))}/{record.path}"


def _report(
    key: str, deep: bool, started: float, manifest: Manifest | None, problems: list[Problem]
) -> VerifyReport:
    return VerifyReport(
        key=key,
        ok=not problems,
        deep=deep,
        files_checked=len(manifest.files) if manifest else 0,
        bytes_checked=manifest.total_bytes if manifest and deep else 0,
        seconds=round(time.perf_counter() - started, 4),
        problems=problems,
    )
