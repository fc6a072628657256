"""The two plug points: a :class:`Source` (where bytes come from), a :class:`Store` (where they are kept)."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from pathlib import Path
from typing import ClassVar, Protocol

from ..errors import StoreNotWritableError
from ..fsutil import not_writable_error, store_write_errors
from ..layout import StoreLayout
from ..staging import Staging


class Source(ABC):
    """Where the bytes of an entry come from.

    A source names *what* is wanted (:attr:`uri`), finds out which exact version that is
    (:meth:`resolve`), and writes that version's files into a :class:`Staging` area
    (:meth:`fetch`). It never writes into the store itself.
    """

    #: URI scheme handled by this source (``dir``, ``hf``, ``https``...).
    scheme: ClassVar[str]

    #: Remote sources are offline-first: once an entry exists, the version a URI resolved to
    #: is remembered in the store and a warm ``ensure()`` asks the source nothing.
    offline_first: ClassVar[bool] = False

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
    def resolve(self) -> str:
        """Ask the source which version the request names now (may touch disk or network)."""

    @abstractmethod
    def fetch(self, version: str, staging: Staging) -> None:
        """Write every file of ``version`` into ``staging`` (through its methods, which hash)."""

    def source_info(self) -> dict[str, str]:
        """Extra facts worth recording in the manifest (never secrets)."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


class PopulateLock(Protocol):
    """What a store's populate lock gives its holder."""

    def check(self) -> None:
        """Raise if the lock was lost while held (another process took over a stale lease)."""


class Store(ABC):
    """Where entries are kept: a directory on a mounted filesystem, and how its writers coordinate.

    Subclasses for replicated filesystems (a Modal Volume) override :meth:`refresh` and
    :meth:`persist` to pull and push other writers' changes, and :meth:`populate_lock` to
    coordinate across machines.
    """

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
        """The file whose shared locks mark entry ``key`` in use (see :mod:`weightcache.inuse`)."""
        return self.layout.locks_dir / f"{key}.use"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()!r})"
