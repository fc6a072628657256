"""The miss path: fetch into staging, check, publish. The caller holds the entry's populate lock."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

from .._transport.fsutil import fsync_dir, fsync_tree_dirs, remove_tree, store_write_errors, unique_suffix
from .._transport.resume import salvage
from ..entry import IMPORT_TRUSTED, IMPORTED_FROM
from ..errors import EmptySourceError
from ..manifest import Manifest, load_manifest, write_manifest
from ..progress import ProgressCallback
from ..providers.base import Plan, PopulateLock, Source, Store
from .layout import FILES_DIR_NAME, MANIFEST_NAME, StoreLayout, is_leftover_name
from .staging import KnownFile, Staging

#: Published files are read-only: a write through a symlink or hardlink into the store fails
#: instead of silently corrupting the cache (``copy`` link mode still gives writable copies).
READ_ONLY = 0o444

logger = logging.getLogger(__name__)


def populate(
    store: Store,
    source: Source,
    plan: Plan,
    key: str,
    lock: PopulateLock,
    *,
    progress: ProgressCallback | None = None,
    reuse: bool = True,
) -> Manifest:
    """Fetch what ``plan`` names of ``source`` and publish it as entry ``key``; return its manifest.

    ``reuse`` lets the source take unchanged files from earlier entries (see
    :meth:`Staging.try_reuse`) without rehashing them; a repair must not, since the damage it
    repairs may be in those very files (hardlinked entries share them). The entry being
    replaced is never a donor, except an imported entry not yet trusted: its files are taken
    only after rehashing them against the SHA-256 the source gives (see :func:`reusable_files`).

    Nothing is visible under ``entries/`` until every file is written, hashed, checked and
    fsynced and the manifest written beside them; one rename then publishes the entry. On any
    error the staging directory is removed and earlier entries are untouched. A populate that
    was killed leaves its staging directory: this one takes it over, and its downloads resume
    from the bytes on disk (see :mod:`weightcache._transport.resume`).
    """
    layout = store.layout
    with store_write_errors(store.describe()):
        layout.mark()
    staging_dir = layout.staging_dir / f"{key}.{unique_suffix()}"
    reclaim_abandoned(layout, key, resume_into=staging_dir)
    staging = Staging(
        staging_dir,
        store_name=store.describe(),
        progress=progress,
        known_files=(lambda: reusable_files(layout, source.identity, key)) if reuse else None,
    )
    started = time.perf_counter()
    logger.info("populating %s from %s (version %s)", key, source.uri, plan.version)
    try:
        with store_write_errors(store.describe(), needed_bytes=lambda: staging.planned_bytes):
            staging.files_dir.mkdir(parents=True, exist_ok=True)
            fetched = source.fetch(plan, staging)
            staging.discard_resume_data()
            records = staging.records()
            if not records:
                raise EmptySourceError(f"{source.uri} gave no files; nothing to cache")
            manifest = Manifest.build(
                key=key,
                source=source.identity,
                version=plan.version,
                files=records,
                populate_seconds=time.perf_counter() - started,
                source_info={**plan.info, **(fetched or {})},
            )
            lock.check()
            publish(layout, staging.directory, manifest)
    finally:
        remove_tree(staging.directory)
    logger.info(
        "published %s: %d files, %d bytes in %.1fs",
        key,
        len(records),
        manifest.total_bytes,
        manifest.populate_seconds,
    )
    return manifest


def publish(layout: StoreLayout, staged: Path, manifest: Manifest) -> None:
    """Write the manifest into a complete staging directory, then rename it into place as ``entries/<key>``.

    The rename is the commit: the entry appears with its manifest, all at once, so no failure
    (a full disk, a kill) can leave a directory under ``entries/`` that lacks one.
    """
    for record in manifest.files:
        os.chmod(staged / FILES_DIR_NAME / record.path, READ_ONLY)
    write_manifest(staged / MANIFEST_NAME, manifest)
    fsync_tree_dirs(staged / FILES_DIR_NAME)
    entry_dir = layout.entry_dir(manifest.key)
    layout.entries_dir.mkdir(parents=True, exist_ok=True)
    replaced = None
    if os.path.lexists(entry_dir):
        replaced = layout.trash_dir / f"{manifest.key}.{unique_suffix()}"
        os.rename(entry_dir, replaced)
    os.rename(staged, entry_dir)
    fsync_dir(layout.entries_dir)
    if replaced is not None:
        remove_tree(replaced)


def reusable_files(layout: StoreLayout, identity: str, key: str) -> dict[str, KnownFile]:
    """Files with a SHA-256 in the published entries of source ``identity``, for a populate of ``key``.

    The entry ``key`` itself (the one being repaired or replaced) is left out: its files may be
    the very damage being repaired. An imported entry not yet trusted is the exception: its
    files are offered for checking (rehashed against the source's SHA-256 before use), which is
    how it is verified against its source instead of being downloaded again.
    """
    found: dict[str, KnownFile] = {}
    if not layout.entries_dir.is_dir():
        return found
    for entry_dir in layout.entries_dir.iterdir():
        manifest = load_manifest(layout, entry_dir.name)
        if manifest is None or manifest.source != identity:
            continue
        untrusted = untrusted_import(manifest)
        if manifest.key == key and not untrusted:
            continue
        for record in manifest.files:
            if record.sha256 is not None and (record.sha256 not in found or found[record.sha256].check):
                path = layout.files_dir(manifest.key) / record.path  # a trusted donor is preferred
                found[record.sha256] = KnownFile(path, record, check=untrusted)
    return found


def untrusted_import(manifest: Manifest) -> bool:
    """Whether the entry was imported from an archive and the user did not vouch for it (``--trust``)."""
    return IMPORTED_FROM in manifest.source_info and manifest.source_info.get(IMPORT_TRUSTED) != "yes"


def reclaim_abandoned(layout: StoreLayout, key: str, *, resume_into: Path | None = None) -> None:
    """Remove staging and trash left for ``key`` by killed processes.

    Called with ``key``'s populate lock held: every populate of ``key`` holds that lock while
    its staging directory exists, so any staging directory found now is provably abandoned.
    With ``resume_into``, the newest one with download journals is renamed there instead, so
    that its partial downloads resume (:func:`weightcache._transport.resume.salvage`).
    """
    found = leftovers(layout, key)
    if resume_into is not None:
        salvage([path for path in found if path.parent == layout.staging_dir], resume_into)
    for leftover in leftovers(layout, key):
        if leftover == resume_into:
            continue
        logger.info("reclaiming abandoned %s", leftover)
        with contextlib.suppress(OSError):
            remove_tree(leftover)


def leftovers(layout: StoreLayout, key: str | None = None) -> list[Path]:
    """Staging and trash directories (of ``key``, or of every key), named ``<key>.<token>``."""
    found = []
    for parent in (layout.staging_dir, layout.trash_dir):
        if parent.is_dir() and not parent.is_symlink():
            found += [
                path
                for path in parent.iterdir()
                if is_leftover_name(path.name) and (key is None or leftover_key(path) == key)
            ]
    return found


def leftover_key(path: Path) -> str:
    """The entry key a staging or trash directory belongs to."""
    return path.name.rsplit(".", 1)[0]
