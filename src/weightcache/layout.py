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
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import blake3

MANIFEST_NAME = "manifest.json"
FILES_DIR_NAME = "files"

_SLUG_CHARS = re.compile(r"[^a-z0-9._-]+")
_KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,100}$")


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
        return self.root / ".weightcache"

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
