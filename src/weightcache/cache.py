"""``WeightCache``: the one object users hold. ``ensure()`` is the call every container start makes."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel

from ._core.constants import MANIFEST_SCHEMA_VERSION, default_store_root
from ._core.display import safe_display
from ._core.gc import GcReport, collect_garbage, remove_entry_dir
from ._core.inuse import hold, release
from ._core.layout import entry_key, is_valid_key
from ._core.linking import LinkMode, link_entry
from ._core.outdated import UpdateCheck, check_for_updates
from ._core.populate import populate, untrusted_import
from ._core.registry import SourceLike, parse_source
from ._core.transfer import ManifestSource
from ._core.verify import VerifyReport, file_problems, stat_problems, verify_entry
from ._hf_cache.view import lay_out_view
from .entry import Entry
from .errors import EntryInUseError, EntryNotFoundError, ManifestError, SourceUnreachableError
from .manifest import Manifest, newer_schema
from .progress import ProgressCallback
from .providers.base import Plan, Source, Store
from .providers.stores.local_store import LocalStore

logger = logging.getLogger(__name__)

VersionOrigin = Literal["pinned", "ref", "source"]


class SourceStatus(BaseModel):
    """What the store holds for a source, found without fetching anything.

    ``version``, ``version_from`` and ``key`` are ``None`` when the store remembers no version of the
    source and the source could not be asked (offline): then nothing usable is cached.
    """

    source: str
    version: str | None
    version_from: VersionOrigin | None
    key: str | None
    cached: bool
    path: str | None
    files: int
    bytes: int
    problems: list[str]


class WeightCache:
    """A cache of model weights in a store.

    ``WeightCache()`` uses a local store at ``$WEIGHTCACHE_HOME`` or ``~/.cache/weightcache``;
    pass a :class:`Store` (``LocalStore("/cache")``, ``ModalVolumeStore(...)``) or a path for
    another. ``lock_timeout`` bounds how long a call waits for another process populating
    the same entry (``None``: as long as that process is alive and holds its lease).
    """

    def __init__(
        self, store: Store | str | os.PathLike[str] | None = None, *, lock_timeout: float | None = None
    ):
        self.store = store if isinstance(store, Store) else LocalStore(store or default_store_root())
        self.lock_timeout = lock_timeout
        self._holding: dict[str, str] = {}  # source URI -> the key ensure() last returned for it
        self._holding_guard = threading.Lock()

    def __repr__(self) -> str:
        return f"WeightCache({self.store!r})"

    # --- the main call ----------------------------------------------------------------------

    def ensure(
        self,
        source: SourceLike,
        *,
        link_to: str | os.PathLike[str] | None = None,
        link_mode: LinkMode = "symlink",
        force: bool = False,
        repair: bool = False,
        refresh: bool = False,
        progress: ProgressCallback | None = None,
        hf_cache: str | os.PathLike[str] | None = None,
    ) -> Entry:
        """Return the entry for ``source``, populating the store on a miss.

        A hit costs a manifest read and a ``stat`` per file, with no network. A miss fetches
        once even when many processes ask at once. ``force`` re-fetches always; ``repair``
        rehashes a cached entry and re-fetches it if damaged; ``refresh`` asks a remote source
        for its latest version instead of using the one remembered in the store.
        ``link_to`` links the files into that directory (see :meth:`link`). ``hf_cache`` (hf://
        sources) lays the entry out there as huggingface_hub's cache would hold it, linked, so
        ``from_pretrained("org/name")`` with ``HF_HUB_CACHE`` there reads it (see :mod:`.hf_cache_view`).

        The entry is held in use until this process exits or calls :meth:`release` (or for the
        block of :meth:`use`): another process's ``gc`` or ``rm`` does not remove it meanwhile.
        A later ``ensure`` of the same source that returns another version releases the one it
        superseded, as does one that probed a stale remembered version.
        """
        src = parse_source(source)
        plan, origin = self._version(src, refresh=refresh)
        entry, seen = self._lookup(src, plan.version, deep=repair, force=force)
        if entry is None and origin == "ref":
            # The remembered version is not usable: a miss needs the source anyway, so ask it what is current.
            stale = self._key(src, plan.version)
            plan, origin = src.resolve(), "source"
            if self._key(src, plan.version) != stale:
                self.release(stale)
            entry, seen = self._lookup(src, plan.version, deep=repair, force=force)
        if entry is None:
            entry = self._populate(src, plan, seen=seen, reuse=not (force or repair), progress=progress)
        self._superseded(src.uri, entry.key)
        if origin == "source" and src.offline_first:
            self._remember(src, entry)
        if link_to is not None:
            self.link(entry, link_to, mode=link_mode)
        if hf_cache is not None:
            lay_out_view(self.store.layout, src, entry, hf_cache)
        return entry

    @contextlib.contextmanager
    def use(self, source: SourceLike, **options: object) -> Iterator[Entry]:
        """``with cache.use(source) as entry:``: ``ensure(source, **options)``, held for the block only.

        For long-lived code: once the block ends, other processes' ``gc`` and ``rm`` may remove
        the entry again (files still open stay readable; symlinks into it may dangle).
        """
        entry = self.ensure(source, **options)  # type: ignore[arg-type]
        try:
            yield entry
        finally:
            self.release(entry)

    # --- inspecting -------------------------------------------------------------------------

    def status(self, source: SourceLike) -> SourceStatus:
        """What is cached for ``source``: resolved as ``ensure`` would (offline-first), nothing fetched."""
        src = parse_source(source)
        try:
            plan, origin = self._version(src, refresh=False)
        except SourceUnreachableError:  # the store remembers no version, and the source cannot be asked
            return SourceStatus(
                source=src.uri,
                version=None,
                version_from=None,
                key=None,
                cached=False,
                path=None,
                files=0,
                bytes=0,
                problems=[],
            )
        version = plan.version
        key = self._key(src, version)
        manifest = self.store.load_manifest(key)
        problems = (
            []
            if manifest is None
            else [f"{problem.path}: {problem.detail}" for problem in file_problems(self.store, key, manifest)]
        )
        return SourceStatus(
            source=src.uri,
            version=version,
            version_from=origin,
            key=key,
            cached=manifest is not None and not problems,
            path=str(self.store.files_path(key)) if manifest else None,
            files=len(manifest.files) if manifest else 0,
            bytes=manifest.total_bytes if manifest else 0,
            problems=problems,
        )

    def get(self, key: str) -> Entry:
        """The entry with ``key``, or :class:`EntryNotFoundError`."""
        manifest = self.store.load_manifest(key) if is_valid_key(key) else None
        if manifest is None:
            raise EntryNotFoundError(
                f"no entry {key!r} in store {self.store.describe()}; see `weightcache ls`"
            )
        return self._entry(manifest, hit=True)

    def list(self) -> list[Entry]:
        """Every valid entry in the store, grouped by source, newest first within a source."""
        manifests = sorted(self.store.manifests(), key=lambda m: (m.source, -m.created_at.timestamp()))
        return [self._entry(manifest, hit=True) for manifest in manifests]

    def outdated(self) -> list[UpdateCheck]:
        """Ask the source of every cached branch or unpinned URL for its version now; see :mod:`.outdated`.

        Warm ``ensure()`` calls never ask; this does. Move an outdated one with ``ensure(..., refresh=True)``.
        """
        return check_for_updates(self.store)

    def verify(self, entry: Entry | str, *, deep: bool = False) -> VerifyReport:
        """Check one entry: stat every file; with ``deep``, rehash every file and compare."""
        return verify_entry(self.store, entry.key if isinstance(entry, Entry) else entry, deep=deep)

    def verify_all(self, *, deep: bool = False) -> list[VerifyReport]:
        """Check every entry directory, including ones whose manifest is missing or broken."""
        return [verify_entry(self.store, key, deep=deep) for key in self.store.entry_keys()]

    # --- changing ---------------------------------------------------------------------------

    def remove(self, entry: Entry | str, *, force: bool = False) -> None:
        """Remove an entry (waits for a populate of it to finish first).

        An entry another process got from ``ensure()`` and still holds is refused with
        :class:`EntryInUseError`, unless ``force``: then that process's open files stay readable
        but its symlinks into the entry dangle.
        """
        key = entry.key if isinstance(entry, Entry) else entry
        self.get(key)
        with self.store.populate_lock(key, timeout=self.lock_timeout):
            if not remove_entry_dir(self.store, key, self.store.layout.entry_dir(key), force=force):
                raise EntryInUseError(
                    f"entry {key} in store {self.store.describe()} is in use by another process; "
                    "stop that process first, or remove it anyway with force=True (--force)"
                )
        self.store.persist()

    def release(self, entry: Entry | str) -> None:
        """Stop holding an entry this process got from ``ensure()``: other processes may remove it again."""
        key = entry.key if isinstance(entry, Entry) else entry
        with self._holding_guard:
            for uri in [uri for uri, held in self._holding.items() if held == key]:
                del self._holding[uri]
        release(self.store.use_lock_path(key))

    def gc(self, *, keep: int = 1, dry_run: bool = False) -> GcReport:
        """Keep the ``keep`` newest versions of each source, remove the rest (``_core/gc.py``)."""
        report = collect_garbage(self.store, keep=keep, dry_run=dry_run)
        if report.removed and not dry_run:
            self.store.persist()
        return report

    def link(
        self,
        entry: Entry,
        dest: str | os.PathLike[str],
        *,
        mode: LinkMode = "symlink",
        whole: bool = False,
        overwrite: bool = False,
    ) -> os.PathLike[str]:
        """Link the entry's files into ``dest`` (see :func:`weightcache._core.linking.link_entry`)."""
        self.store.require_mounted("link")
        return link_entry(entry, dest, mode=mode, whole=whole, overwrite=overwrite)

    # --- internals --------------------------------------------------------------------------

    def _superseded(self, uri: str, key: str) -> None:
        """Record that ``uri`` now gives entry ``key``; release the entry it gave before, if another."""
        with self._holding_guard:
            previous = self._holding.get(uri)
            self._holding[uri] = key
            still_given = previous in self._holding.values()  # another URI names the same entry
        if previous is not None and not still_given:
            release(self.store.use_lock_path(previous))

    def _version(self, src: Source, *, refresh: bool) -> tuple[Plan, VersionOrigin]:
        """The plan for the version ``src`` names: pinned, else remembered (offline-first), else resolved."""
        pinned = src.pinned_version()
        if pinned is not None:
            return src.plan(pinned), "pinned"
        if src.offline_first and not refresh:
            ref = self.store.read_ref(src.uri)
            if ref is not None:
                return src.plan(ref.version), "ref"
        return src.resolve(), "source"

    def _key(self, src: Source, version: str) -> str:
        return entry_key(src.slug, src.identity, version)

    def _lookup(
        self, src: Source, version: str, *, deep: bool, force: bool
    ) -> tuple[Entry | None, Manifest | None]:
        """The usable entry for ``version`` if any (never with ``force``), and the manifest seen.

        The entry is held in use first (see :mod:`weightcache._core.inuse`), so once found it stays.
        """
        key = self._key(src, version)
        hold(self.store.use_lock_path(key))
        manifest = self.store.load_manifest(key)
        if force:
            return None, manifest
        if manifest is None:
            self.store.refresh()  # another machine may have published it
            manifest = self.store.load_manifest(key)
            if manifest is None:
                self._refuse_newer(key)
                return None, None
        if untrusted_import(manifest) and not isinstance(src, ManifestSource):
            logger.warning(
                "entry %s was imported from %s and not vouched for; checking its files against %s",
                key,
                manifest.source_info.get("imported_from"),
                src.uri,
            )
            return None, manifest
        report_problems = stat_problems(self.store.layout.files_dir(key), manifest)
        if not report_problems and deep:
            report_problems = verify_entry(self.store, key, deep=True).problems
        if report_problems:
            logger.warning(
                "entry %s is damaged (%s); fetching it again",
                key,
                "; ".join(safe_display(f"{p.path}: {p.detail}") for p in report_problems[:3]),
            )
            return None, manifest
        return self._entry(manifest, hit=True), manifest

    def _refuse_newer(self, key: str) -> None:
        schema = newer_schema(self.store.layout, key)
        if schema is not None:
            raise ManifestError(
                f"entry {key} in store {self.store.describe()} was written by a newer weightcache (manifest "
                f"schema {schema}, this release reads {MANIFEST_SCHEMA_VERSION}); upgrade weightcache"
            )

    def _populate(
        self,
        src: Source,
        plan: Plan,
        *,
        seen: Manifest | None,
        reuse: bool,
        progress: ProgressCallback | None,
    ) -> Entry:
        key = self._key(src, plan.version)
        self.store.prepare_for_writes()
        with self.store.populate_lock(key, timeout=self.lock_timeout) as lock:
            current = self.store.load_manifest(key)
            if (
                current is not None
                and current != seen
                and not stat_problems(self.store.layout.files_dir(key), current)
            ):
                return self._entry(current, hit=True)  # another process populated it while we waited
            manifest = populate(self.store, src, plan, key, lock, progress=progress, reuse=reuse)
            self._write_ref(src, plan.version, key)
            self.store.persist()
        return self._entry(manifest, hit=False)

    def _remember(self, src: Source, entry: Entry) -> None:
        ref = self.store.read_ref(src.uri)
        if ref is not None and (ref.version, ref.key) == (entry.version, entry.key):
            return
        if self._write_ref(src, entry.version, entry.key):
            self.store.persist()

    def _write_ref(self, src: Source, version: str, key: str) -> bool:
        try:
            self.store.write_ref(src.uri, version, key)
        except OSError as exc:  # a read-only or full store still serves the entry; it just cannot remember it
            logger.info("not recording %s -> %s in %s: %s", src.uri, version, self.store.describe(), exc)
            return False
        return True

    def _entry(self, manifest: Manifest, *, hit: bool) -> Entry:
        return Entry(key=manifest.key, path=self.store.files_path(manifest.key), manifest=manifest, hit=hit)
