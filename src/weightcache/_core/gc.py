"""Garbage collection: old versions beyond ``keep`` per source, incomplete entries, abandoned staging.

gc removes only what it can prove is the store's: an entry directory with a valid manifest, or,
in a directory that carries the store marker (see :meth:`StoreLayout.is_marked`), an entry
directory named like a key without one and a staging or trash leftover named ``<key>.<token>``.
It never follows a symlinked ``entries/``, ``.weightcache``, staging or trash directory out of
the store: it refuses to run instead.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from .._hf_cache.view import drop_views
from .._transport.fsutil import remove_tree, tree_size, unique_suffix
from ..errors import InvalidArgumentError, LockTimeoutError
from ..manifest import Manifest, newer_schema
from ..providers.base import Store
from .inuse import exclusive
from .layout import StoreLayout, check_contained, is_valid_key
from .populate import leftover_key, leftovers
from .refs import drop_refs_to

logger = logging.getLogger(__name__)

RemovalReason = Literal["old-version", "incomplete", "leftover"]


class Removal(BaseModel):
    """One thing gc removed (or would remove, in a dry run)."""

    key: str
    reason: RemovalReason
    bytes: int
    source: str | None = None
    version: str | None = None


class GcReport(BaseModel):
    """What a gc run removed, or would remove when ``dry_run``."""

    dry_run: bool
    keep: int
    removed: list[Removal]
    skipped_busy: list[str]
    freed_bytes: int


def collect_garbage(store: Store, *, keep: int, dry_run: bool) -> GcReport:
    """Keep the ``keep`` newest entries of each source (and any a ref points to); remove the rest.

    Also removes entry directories without a valid manifest (but not those a newer weightcache
    wrote) and staging or trash left by killed processes. An entry being populated or in use
    by another process right now is skipped (reported busy), not waited for.
    """
    if keep < 1:
        raise InvalidArgumentError(
            "gc keeps at least one version per source (--keep 1 or more); use rm to remove one"
        )
    store.require_mounted("gc")
    layout = store.layout
    check_contained(layout, "gc")
    candidates, by_source = _scan_entries(store, adopt=not dry_run)
    referenced = {ref.key for ref in store.all_refs()}
    for manifests in by_source.values():
        manifests.sort(key=lambda manifest: manifest.created_at, reverse=True)
        for manifest in manifests[keep:]:
            if manifest.key not in referenced:
                removal = Removal(
                    key=manifest.key,
                    reason="old-version",
                    bytes=manifest.total_bytes,
                    source=manifest.source,
                    version=manifest.version,
                )
                candidates.append((removal, layout.entry_dir(manifest.key)))

    removed, busy = [], []
    for removal, path in candidates:
        if dry_run or _remove_unlocked(store, removal.key, path, removal.reason):
            removed.append(removal)
        else:
            busy.append(removal.key)
    return GcReport(
        dry_run=dry_run,
        keep=keep,
        removed=removed,
        skipped_busy=busy,
        freed_bytes=sum(item.bytes for item in removed),
    )


def _scan_entries(
    store: Store, *, adopt: bool
) -> tuple[list[tuple[Removal, Path]], dict[str, list[Manifest]]]:
    """Incomplete entries and leftovers that are provably the store's, and the valid entries by source.

    ``adopt`` marks a store from before the marker (see :func:`is_store`); a dry run writes nothing.
    """
    layout = store.layout
    found = [(layout.entry_dir(key), store.load_manifest(key)) for key in store.entry_keys()]
    by_source: dict[str, list[Manifest]] = defaultdict(list)
    for _entry_dir, manifest in found:
        if manifest is not None:
            by_source[manifest.source].append(manifest)
    if not is_store(layout, bool(by_source), mark=adopt):
        return [], by_source
    candidates = [
        (Removal(key=entry_dir.name, reason="incomplete", bytes=tree_size(entry_dir)), entry_dir)
        for entry_dir, manifest in found
        if manifest is None and _collectable_incomplete(layout, entry_dir)
    ]
    candidates += [
        (Removal(key=leftover_key(path), reason="leftover", bytes=tree_size(path)), path)
        for path in leftovers(layout)
    ]
    return candidates, by_source


def is_store(layout: StoreLayout, has_entries: bool, *, mark: bool = True) -> bool:
    """Whether ``layout.root`` is provably a weightcache store, so its leftovers are gc's to remove.

    The store marker proves it. A store written before the marker existed proves it with its
    ``.weightcache`` directory and at least one valid entry (``has_entries``); it is marked now
    (unless ``mark`` is false).
    """
    if layout.is_marked():
        return True
    if not (has_entries and layout.meta_dir.is_dir()):
        logger.info("%s has no store marker: gc removes only entries with a manifest", layout.root)
        return False
    if mark:
        with contextlib.suppress(OSError):  # a read-only store still proves itself; it just stays unmarked
            layout.mark()
    return True


def _collectable_incomplete(layout: StoreLayout, entry_dir: Path) -> bool:
    # Named like a key, a real directory, and not a newer release's entry: an interrupted or damaged entry.
    return (
        is_valid_key(entry_dir.name)
        and entry_dir.is_dir()
        and not entry_dir.is_symlink()
        and newer_schema(layout, entry_dir.name) is None
    )


def remove_entry_dir(store: Store, key: str, path: Path, *, force: bool = False) -> bool:
    """Make ``path`` vanish at once (rename to trash), forget refs to ``key``, then delete it.

    The caller holds ``key``'s populate lock. An entry another process holds in use (see
    :mod:`weightcache._core.inuse`) is left alone and ``False`` returned, unless ``force``: then a
    process with its files open keeps reading them (POSIX keeps unlinked files alive), but
    symlinks into the entry dangle.
    """
    layout = store.layout
    check_contained(layout, "removing an entry")
    layout.trash_dir.mkdir(parents=True, exist_ok=True)
    aside = layout.trash_dir / f"{key}.{unique_suffix()}"
    use_file = store.use_lock_path(key)
    with exclusive(use_file) as unused:
        if not (unused or force):
            return False
        with contextlib.suppress(FileNotFoundError):
            path.rename(aside)
        drop_refs_to(layout, key)
        drop_views(layout, key)  # an HF cache view must not outlive its entry
        use_file.unlink(missing_ok=True)
    remove_tree(aside)
    return True


def _completed_meanwhile(store: Store, key: str, reason: RemovalReason) -> bool:
    # A repair may have published a valid entry between the scan and taking the lock.
    return reason == "incomplete" and store.load_manifest(key) is not None


def _remove_unlocked(store: Store, key: str, path: Path, reason: RemovalReason) -> bool:
    """Remove ``path`` unless its entry is being populated or used right now; say whether it was."""
    try:
        with store.populate_lock(key, timeout=0):
            if path.parent != store.layout.entries_dir:
                remove_tree(path)
                return True
            return not _completed_meanwhile(store, key, reason) and remove_entry_dir(store, key, path)
    except LockTimeoutError:
        return False
