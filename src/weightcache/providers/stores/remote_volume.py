"""A Modal Volume seen from outside Modal (a laptop, CI): a read-only :class:`Store`, push and pull.

:class:`RemoteVolumeStore` implements the store's read primitives over the Volume, so
``WeightCache(RemoteVolumeStore(...))`` lists, verifies and reports status exactly as over a
local directory. Only the calls ``modal.Volume`` offers outside a container are used:
``listdir``, ``read_file``, ``batch_upload`` and ``remove_file``. The store's layout sits at the Volume's
root, as :class:`~weightcache.providers.stores.modal_volume.ModalVolumeStore` writes it when the
Volume is mounted at the store's path. What is read is the Volume's committed state: a
container that started earlier, or has not committed, may see something else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn, Protocol

from pydantic import BaseModel, ValidationError

from ..._core.constants import MAX_MANIFEST_BYTES
from ..._core.refs import Ref
from ..._core.transfer import ManifestSource
from ..._core.verify import verify_entry
from ...cache import WeightCache
from ...entry import Entry
from ...errors import (
    EntryNotFoundError,
    IntegrityError,
    ManifestError,
    StoreError,
    StoreNotWritableError,
    WeightCacheError,
)
from ...manifest import Manifest, parse_manifest
from ...progress import ProgressCallback
from ..base import FileStat, PopulateLock, Store

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


class RemoteVolumeStore(Store):
    """The weightcache store at the root of Modal Volume ``volume`` (called ``name`` in messages), read-only.

    Reads are of the Volume's committed state, fresh on every call, so :meth:`refresh` has
    nothing to do. Writing goes through :func:`push`; populating and removing belong to the
    containers that mount the Volume (:class:`~weightcache.providers.stores.modal_volume.ModalVolumeStore`),
    which hold the leases a laptop cannot take, so those raise :class:`StoreNotWritableError`.
    """

    mounted = False  # files are read over Modal's API: gc and link run in a container that mounts it

    def __init__(self, volume: RemoteVolume, name: str) -> None:
        super().__init__("/")  # paths of the layout, relative to the Volume's root: see _path
        self.volume = volume
        self.name = name

    def describe(self) -> str:
        """``Modal Volume 'name'``."""
        return f"Modal Volume {self.name!r}"

    def entry_keys(self) -> list[str]:
        """Every name under ``entries/`` on the Volume, sorted."""
        return sorted(PurePosixPath(item.path).name for item in self._listdir(self.layout.entries_dir))

    def is_entry_dir(self, key: str) -> bool:
        """Whether ``entries/<key>`` is a directory on the Volume."""
        entry = _path(self.layout.entry_dir(key))
        return any(
            item.path == entry and item.type == _DIRECTORY for item in self._listdir(self.layout.entries_dir)
        )

    def read_manifest(self, key: str) -> Manifest:
        """Entry ``key``'s manifest; :class:`FileNotFoundError` or :class:`ManifestError` if unusable."""
        where = f"{_path(self.layout.manifest_path(key))} on {self.describe()}"
        manifest = parse_manifest(self._read_small(self.layout.manifest_path(key), where), where=where)
        if manifest.key != key:
            raise ManifestError(f"manifest {where} names key {manifest.key!r}, not {key!r}")
        return manifest

    def load_manifest(self, key: str) -> Manifest | None:
        """Entry ``key``'s manifest if it is present and valid, else ``None``."""
        try:
            return self.read_manifest(key)
        except (FileNotFoundError, ManifestError):
            return None

    def files_path(self, key: str) -> Path:
        """Where the entry's files are, relative to the Volume's root (``entries/<key>/files``)."""
        return Path(_path(self.layout.files_dir(key)))

    def stat_files(self, key: str, paths: Sequence[str]) -> dict[str, FileStat | None]:
        """Sizes from one recursive listing of the entry's directory."""
        listing = {item.path: item for item in self._listdir(self.layout.entry_dir(key), recursive=True)}
        files_dir = _path(self.layout.files_dir(key))
        found: dict[str, FileStat | None] = {}
        for path in paths:
            item = listing.get(f"{files_dir}/{path}")
            found[path] = None if item is None else FileStat(size=item.size, is_file=item.type == _FILE)
        return found

    def open_file(self, key: str, path: str) -> Iterable[bytes]:
        """The file's committed content, streamed from Modal."""
        location = f"{_path(self.layout.files_dir(key))}/{path}"
        try:
            yield from self.volume.read_file(location)
        except FileNotFoundError:
            raise IntegrityError(
                f"{self.describe()} lacks {location}, which its manifest lists; "
                f"check the entry with `weightcache verify --modal-volume {self.name}`"
            ) from None

    def read_ref(self, uri: str) -> Ref | None:
        """The ref recorded on the Volume for ``uri``, or ``None``."""
        with contextlib.suppress(FileNotFoundError, ManifestError, ValidationError, ValueError):
            ref = Ref.model_validate_json(self._read_small(self.layout.ref_path(uri), uri))
            if ref.uri == uri:
                return ref
        return None

    def all_refs(self) -> list[Ref]:
        """Every readable ref on the Volume."""
        refs = []
        for item in self._listdir(self.layout.refs_dir):
            if item.type == _FILE and item.path.endswith(".json"):
                with contextlib.suppress(FileNotFoundError, ManifestError, ValidationError, ValueError):
                    refs.append(Ref.model_validate_json(self._read_small(Path("/", item.path), item.path)))
        return refs

    def write_ref(self, uri: str, version: str, key: str) -> NoReturn:
        """Refused: refs reach the Volume with :func:`push`."""
        self._refuse("record a ref")

    def prepare_for_writes(self) -> NoReturn:
        """Refused: entries reach the Volume with :func:`push`, or from a container that mounts it."""
        self._refuse("populate an entry")

    def populate_lock(self, key: str, *, timeout: float | None) -> AbstractContextManager[PopulateLock]:
        """Refused: the populate lease is held by containers that mount the Volume."""
        self._refuse("lock an entry")

    def use_lock_path(self, key: str) -> NoReturn:
        """Refused: entries are used (and held in use) by the containers that mount the Volume."""
        self._refuse("use an entry")

    def _refuse(self, action: str) -> NoReturn:
        raise StoreNotWritableError(
            f"cannot {action} on {self.describe()} from outside Modal; push entries with "
            f"`weightcache push SOURCE --modal-volume {self.name}`, or use ModalVolumeStore in a container"
        )

    def _listdir(self, directory: Path, *, recursive: bool = False) -> list[Any]:
        """What ``directory`` holds on the Volume; nothing if it is missing."""
        from modal.exception import NotFoundError

        try:
            return self.volume.listdir(_path(directory), recursive=recursive)
        except (NotFoundError, FileNotFoundError):
            return []

    def _read_small(self, path: Path, where: str) -> bytes:
        """A manifest or ref, refusing one past :data:`MAX_MANIFEST_BYTES` (a Volume is not trusted)."""
        data = bytearray()
        for chunk in self.volume.read_file(_path(path)):
            data += chunk
            if len(data) > MAX_MANIFEST_BYTES:
                raise ManifestError(f"{where} is larger than {MAX_MANIFEST_BYTES:,} bytes")
        return bytes(data)


def pull(
    remote: RemoteVolumeStore, cache: WeightCache, key: str, *, progress: ProgressCallback | None = None
) -> Entry:
    """Copy entry ``key`` from the Volume into ``cache``'s store, every file checked against its manifest."""
    try:
        manifest = remote.read_manifest(key)
    except FileNotFoundError:
        raise EntryNotFoundError(
            f"no entry {key} on {remote.describe()}; see `weightcache ls --modal-volume {remote.name}`"
        ) from None
    files = lambda: ((r.path, remote.open_file(key, r.path)) for r in manifest.files)  # noqa: E731
    return cache.ensure(ManifestSource(manifest, files, origin=remote.describe()), progress=progress)


def push(remote: RemoteVolumeStore, local: Store, entry: Entry) -> PushReport:
    """Upload a ``local`` entry (files, then its refs and manifest) unless the Volume holds it intact.

    Refs that point at the entry go along, so containers resolve its source offline.
    """
    refs = [ref for ref in local.all_refs() if ref.key == entry.key]
    report = PushReport(
        key=entry.key,
        volume=remote.name,
        files=len(entry.manifest.files),
        bytes=entry.total_bytes,
        already_present=False,
        refs=[ref.uri for ref in refs],
    )
    if entry.key in remote.entry_keys():
        if verify_entry(remote, entry.key, deep=False).ok:
            return report.model_copy(update={"already_present": True})
        remote.volume.remove_file(_path(remote.layout.entry_dir(entry.key)), recursive=True)
    volume_layout, layout = remote.layout, local.layout
    with remote.volume.batch_upload(force=True) as batch:
        for record in entry.manifest.files:
            batch.put_file(
                entry.path / record.path, f"{_path(volume_layout.files_dir(entry.key))}/{record.path}"
            )
    # A second batch, so the manifest lands only once every file has.
    with remote.volume.batch_upload(force=True) as batch:
        for ref in refs:
            batch.put_file(layout.ref_path(ref.uri), _path(volume_layout.ref_path(ref.uri)))
        batch.put_file(layout.manifest_path(entry.key), _path(volume_layout.manifest_path(entry.key)))
    return report


def _path(path: Path) -> str:
    """A layout path as the Volume names it: relative to its root, no leading slash."""
    return path.as_posix().lstrip("/")
