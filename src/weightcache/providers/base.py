"""The two plug points: a :class:`Source` (where bytes come from), a :class:`Store` (where they are kept)."""

from __future__ import annotations

import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar, Protocol

from .._core.layout import StoreLayout
from .._core.refs import Ref, all_refs, read_ref, write_ref
from .._core.staging import Staging
from .._transport.fsutil import not_writable_error, store_write_errors
from .._transport.hashing import iter_file_chunks
from ..errors import InvalidSourceError, StoreNotWritableError
from ..manifest import Manifest, load_manifest, read_manifest


@dataclass(frozen=True)
class Plan:
    """What :meth:`Source.resolve` found: all that :meth:`Source.fetch` needs, and nothing kept elsewhere.

    ``version`` is the exact version the entry will hold. ``info`` is recorded in the manifest's
    ``source_info`` (never secrets). ``detail`` belongs to the source and the cache never reads
    it: what resolving learned that fetching can use, such as the HTTP validators a URL source
    probed, so that a cold ``ensure()`` does not ask twice.
    """

    version: str
    info: Mapping[str, str] = field(default_factory=dict)
    detail: object = None

    def __post_init__(self) -> None:
        # A read-only copy: a plan is a value, not a channel between resolve() and fetch().
        object.__setattr__(self, "info", MappingProxyType(dict(self.info)))


class Source(ABC):
    """Where the bytes of an entry come from.

    A source names *what* is wanted (:attr:`uri`), finds out which exact version that is
    (:meth:`resolve`, which returns a :class:`Plan`), and writes what the plan names into a
    :class:`Staging` area (:meth:`fetch`). It keeps no state between the two, and never writes
    into the store itself. A source that a URI can name implements :meth:`from_uri`, and
    registers its scheme (see :mod:`weightcache._core.registry`).
    """

    #: URI scheme handled by this source (``dir``, ``hf``, ``https``...).
    scheme: ClassVar[str]

    #: Remote sources are offline-first: once an entry exists, the version a URI resolved to
    #: is remembered in the store and a warm ``ensure()`` asks the source nothing.
    offline_first: ClassVar[bool] = False

    @classmethod
    def from_uri(cls, uri: str) -> Source:
        """Build the source a ``scheme://...`` URI names (what the registry calls)."""
        raise InvalidSourceError(f"{cls.__name__} cannot be named by a URI such as {uri!r}; pass the object")

    @property
    @abstractmethod
    def uri(self) -> str:
        """The canonical URI of what was asked for; never contains a secret."""

    @property
    def identity(self) -> str:
        """What the entry is keyed by, together with the version (the URI unless a source says otherwise)."""
        return self.uri

    @property
    @abstractmethod
    def slug(self) -> str:
        """A short human-readable name that prefixes entry keys."""

    def pinned_version(self) -> str | None:
        """The version, when the request itself fixes it (a commit sha, a content hash)."""
        return None

    @abstractmethod
    def resolve(self) -> Plan:
        """Ask the source which version the request names now (may touch disk or network)."""

    def plan(self, version: str) -> Plan:
        """The plan for a version already known (pinned, or remembered by the store), asking nothing."""
        return Plan(version)

    @abstractmethod
    def fetch(self, plan: Plan, staging: Staging) -> Mapping[str, str] | None:
        """Write every file of ``plan.version`` into ``staging`` (through its methods, which hash).

        Returns facts learned while fetching (never secrets), recorded in the manifest's
        ``source_info`` beside ``plan.info``; or ``None``.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


class PopulateLock(Protocol):
    """What a store's populate lock gives its holder."""

    def check(self) -> None:
        """Raise if the lock was lost while held (another process took over a stale lease)."""


@dataclass(frozen=True)
class FileStat:
    """What a store tells of one path: its size and whether it is a regular file."""

    size: int
    is_file: bool


class Store(ABC):
    """Where entries are kept: a directory on a mounted filesystem, and how its writers coordinate.

    Subclasses for replicated filesystems (a Modal Volume) override :meth:`refresh` and
    :meth:`persist` to pull and push other writers' changes, and :meth:`populate_lock` to
    coordinate across machines. A store whose files are not a mounted directory (a Volume seen
    from a laptop) overrides the read primitives below; verify, list, status and outdated use
    only those, so they run unchanged over it.
    """

    #: Whether the layout's paths are files this machine can open (a mounted directory). gc and
    #: link need that: gc removes only under the populate lock, link points at the files.
    mounted: ClassVar[bool] = True

    def __init__(self, root: str | os.PathLike[str]) -> None:
        path = Path(root).expanduser().absolute()
        if path.exists() and not path.is_dir():
            raise StoreNotWritableError(f"store path {path} is a file, not a directory; choose a directory")
        self.layout = StoreLayout(path)

    @property
    def root(self) -> Path:
        """The store's directory."""
        return self.layout.root

    def describe(self) -> str:
        """How the store is named in messages."""
        return str(self.root)

    def refresh(self) -> None:
        """See entries other writers published since this process last looked (no-op by default)."""

    def persist(self) -> None:
        """Make what this process published visible to other writers (no-op by default)."""

    # --- read primitives: POSIX reads of ``layout`` here, overridden by stores that are not mounted ---

    def entry_keys(self) -> list[str]:
        """Every name under ``entries/``, sorted: entries, incomplete ones and stray files alike."""
        entries_dir = self.layout.entries_dir
        return sorted(path.name for path in entries_dir.iterdir()) if entries_dir.is_dir() else []

    def is_entry_dir(self, key: str) -> bool:
        """Whether ``entries/<key>`` is a directory (else a stray file, or nothing)."""
        return self.layout.entry_dir(key).is_dir()

    def read_manifest(self, key: str) -> Manifest:
        """Entry ``key``'s manifest; ``OSError`` (``FileNotFoundError``) or ``ManifestError`` if unusable."""
        return read_manifest(self.layout.manifest_path(key))

    def load_manifest(self, key: str) -> Manifest | None:
        """Entry ``key``'s manifest if it is present, valid and names ``key``; else ``None``."""
        return load_manifest(self.layout, key)

    def manifests(self) -> Iterator[Manifest]:
        """The manifest of every valid entry, in key order."""
        for key in self.entry_keys():
            manifest = self.load_manifest(key)
            if manifest is not None:
                yield manifest

    def files_path(self, key: str) -> Path:
        """Where entry ``key``'s files are, as an :class:`~weightcache.entry.Entry` shows them."""
        return self.layout.files_dir(key)

    def stat_files(self, key: str, paths: Sequence[str]) -> dict[str, FileStat | None]:
        """Size and kind of each of entry ``key``'s ``paths`` (``None``: missing), in one batch."""
        base = os.fspath(self.layout.files_dir(key)) + os.sep
        found: dict[str, FileStat | None] = {}
        for path in paths:
            try:
                info = os.stat(base + path)
            except OSError:
                found[path] = None
                continue
            found[path] = FileStat(size=info.st_size, is_file=stat.S_ISREG(info.st_mode))
        return found

    def open_file(self, key: str, path: str) -> Iterable[bytes | memoryview]:
        """The content of entry ``key``'s file ``path``, in chunks (each valid until the next)."""
        return iter_file_chunks(self.layout.files_dir(key) / path)

    def read_ref(self, uri: str) -> Ref | None:
        """The version ``uri`` resolved to last, and the entry holding it; ``None`` if none is recorded."""
        return read_ref(self.layout, uri)

    def write_ref(self, uri: str, version: str, key: str) -> None:
        """Record that ``uri`` now resolves to ``version``, held by entry ``key``."""
        write_ref(self.layout, uri, version, key)

    def all_refs(self) -> list[Ref]:
        """Every readable ref in the store."""
        return all_refs(self.layout)

    # --- writing ------------------------------------------------------------------------------

    def prepare_for_writes(self) -> None:
        """Create the store's directories, or raise :class:`StoreNotWritableError`."""
        with store_write_errors(self.describe()):
            for directory in (self.layout.entries_dir, self.layout.staging_dir, self.layout.trash_dir):
                directory.mkdir(parents=True, exist_ok=True)
        if not os.access(self.layout.meta_dir, os.W_OK):
            raise not_writable_error(self.describe(), "read-only")

    @abstractmethod
    def populate_lock(self, key: str, *, timeout: float | None) -> AbstractContextManager[PopulateLock]:
        """A lock held while populating entry ``key``, so concurrent callers fetch once."""

    def use_lock_path(self, key: str) -> Path:
        """The file whose shared locks mark entry ``key`` in use (see :mod:`weightcache._core.inuse`)."""
        return self.layout.locks_dir / f"{key}.use"

    def require_mounted(self, action: str) -> None:
        """Raise :class:`StoreNotWritableError` if ``action`` needs a mounted store and this one is not."""
        if not self.mounted:
            raise StoreNotWritableError(
                f"{action} needs the store's files on this machine, and {self.describe()} is seen remotely; "
                "run it where the store is mounted"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()!r})"
