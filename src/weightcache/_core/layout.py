"""Where things live inside a store, and how entries are named.

::

    <root>/
      entries/<key>/manifest.json     the commit marker, written last
      entries/<key>/files/...         the cached files (Entry.path)
      .weightcache/staging/<key>.<token>/   populates in progress (or abandoned)
      .weightcache/trash/<key>.<token>/     replaced entries being deleted
      .weightcache/refs/<hash>.json         which version a source URI last resolved to
      .weightcache/locks/<key>.lock         populate leases
      .weightcache/locks/<key>.use          in-use holds (see inuse.py)
      .weightcache/store.json               the store marker: this directory is a weightcache store
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import blake3

from ..errors import UnsafeStoreError

MANIFEST_NAME = "manifest.json"
FILES_DIR_NAME = "files"
STORE_META_NAME = ".weightcache"  # the store's own bookkeeping directory, beside entries/

_SLUG_CHARS = re.compile(r"[^a-z0-9._-]+")
_KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,100}$")
_LEFTOVER_TOKEN = re.compile(r"^[0-9]+-[0-9a-f]+$")  # what fsutil.unique_suffix makes
STORE_MARKER = b'{"weightcache_store": 1}\n'


def slugify(text: str, max_length: int = 60) -> str:
    """A lowercase, filesystem-safe rendering of ``text`` for readable entry keys."""
    slug = _SLUG_CHARS.sub("-", text.lower()).strip("-.")
    return slug[:max_length].rstrip("-.") or "source"


def short_hash(text: str, length: int = 16) -> str:
    """A stable short hex digest of ``text``."""
    return blake3.blake3(text.encode()).hexdigest()[:length]


def entry_key(slug: str, identity: str, version: str) -> str:
    """The key of the entry holding ``version`` of the source ``identity``.

    Readable (``<slug>-<hash>``), and distinct for every (identity, version) pair.
    """
    return f"{slugify(slug)}-{short_hash(identity + chr(10) + version, 12)}"


def is_valid_key(key: str) -> bool:
    """Whether ``key`` has the shape of an entry key (a single safe path component)."""
    return bool(_KEY_PATTERN.match(key))


def is_leftover_name(name: str) -> bool:
    """Whether ``name`` has the shape weightcache gives staging and trash directories: ``<key>.<token>``."""
    key, _, token = name.rpartition(".")
    return is_valid_key(key) and bool(_LEFTOVER_TOKEN.match(token))


def check_contained(layout: StoreLayout, action: str) -> None:
    """Raise :class:`UnsafeStoreError` if one of the store's own directories is a symlink out of it."""
    escaping = layout.escaping_dirs()
    if escaping:
        raise UnsafeStoreError(
            f"{escaping[0]} is a symlink (to {escaping[0].resolve()}), so {action} could delete outside "
            f"store {layout.root}; symlink the whole store directory instead of the folders inside it"
        )


@dataclass(frozen=True)
class StoreLayout:
    """The paths of a store rooted at ``root``."""

    root: Path

    @cached_property
    def entries_dir(self) -> Path:
        """Directory holding one sub-directory per entry."""
        return self.root / "entries"

    @cached_property
    def meta_dir(self) -> Path:
        """weightcache's own bookkeeping (staging, trash, refs, locks)."""
        return self.root / STORE_META_NAME

    @cached_property
    def staging_dir(self) -> Path:
        """Populates in progress write here."""
        return self.meta_dir / "staging"

    @cached_property
    def trash_dir(self) -> Path:
        """Entries being replaced or removed are moved here first."""
        return self.meta_dir / "trash"

    @cached_property
    def refs_dir(self) -> Path:
        """Which version each source URI last resolved to."""
        return self.meta_dir / "refs"

    @cached_property
    def locks_dir(self) -> Path:
        """Populate leases."""
        return self.meta_dir / "locks"

    def entry_dir(self, key: str) -> Path:
        """The directory of the entry ``key``."""
        return self.entries_dir / key

    def manifest_path(self, key: str) -> Path:
        """The manifest of the entry ``key``."""
        return self.entries_dir / f"{key}/{MANIFEST_NAME}"

    def files_dir(self, key: str) -> Path:
        """The cached files of the entry ``key``."""
        return self.entries_dir / f"{key}/{FILES_DIR_NAME}"

    def ref_path(self, uri: str) -> Path:
        """Where the ref of source ``uri`` is kept."""
        return self.refs_dir / f"{short_hash(uri)}.json"

    @cached_property
    def marker_path(self) -> Path:
        """The store marker, written on the first populate: proof that the directory is a store."""
        return self.meta_dir / "store.json"

    def is_marked(self) -> bool:
        """Whether the store marker is present (a regular file, not a link planted there)."""
        try:
            regular = stat.S_ISREG(os.lstat(self.marker_path).st_mode)
            return regular and self.marker_path.read_bytes() == STORE_MARKER
        except OSError:
            return False

    def mark(self) -> None:
        """Write the store marker if it is missing (the caller is about to write to the store)."""
        if not self.is_marked():
            self.meta_dir.mkdir(parents=True, exist_ok=True)
            self.marker_path.write_bytes(STORE_MARKER)

    def escaping_dirs(self) -> list[Path]:
        """The store's own directories that are symlinks, so lead out of it (gc and rm never follow them)."""
        return [
            path
            for path in (self.entries_dir, self.meta_dir, self.staging_dir, self.trash_dir)
            if path.is_symlink()
        ]
