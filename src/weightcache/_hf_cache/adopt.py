"""Adopt an existing Hugging Face cache: its revisions become weightcache entries, with no download.

``adopt_hf_cache(store, "/vol/hf/hub")`` reads every ``snapshots/<sha>`` of the cache (see
:mod:`.hf_cache_scan`), checks every byte against the hash the cache names it by (SHA-256 for LFS
files, the git blob id for the rest) and publishes what is intact through the store's usual
protocol (populate lock, staging, manifest last, one rename), as ``ensure("hf://org/name@sha")``
would have. The cache's branch refs become the store's refs, so ``ensure("hf://org/name")`` is
a hit too, offline.

A revision is **adopted** when every file of the commit is there and intact. Whether the
snapshot holds every file comes from the commit's listing: huggingface_hub 2.4 caches it
(``trees/<sha>.json``); otherwise the Hub is asked for it (metadata only; ``ask_hub=False``
never asks). A revision missing files, or with a corrupt or truncated one, is published
**incomplete**: as a separate entry (version ``<sha>.partial``) holding only its intact files,
which no URI resolves to; a later ``ensure("hf://org/name@sha")`` takes its LFS files from there
(by SHA-256) and downloads only the rest. A revision with nothing usable is **skipped**.

Files are hardlinked into the store where it shares the cache's filesystem: no space is used
and the Hugging Face cache keeps working, its blobs and the entry's files being one inode each
(deleting the HF cache then frees nothing until the entries go too). ``move=True`` renames files
that cannot be hardlinked (a filesystem without hardlinks) and leaves a symlink in their place,
so the cache still reads them, now through the store. Otherwise files are copied.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from .._core.constants import IO_THREADS, hf_endpoint
from .._core.layout import entry_key
from .._core.populate import publish, reclaim_abandoned
from .._core.verify import stat_problems
from .._transport.fsutil import remove_tree, unique_suffix
from .._transport.parallel import run_parallel
from ..errors import IntegrityError, InvalidSourceError
from ..manifest import Manifest, load_manifest
from ..progress import ProgressCallback, ProgressEvent, emit
from ..providers.base import PopulateLock, Store
from ..providers.sources.hf import HFSource
from .adopt_files import Brought, bring_file, undo
from .adopt_moves import finish, move_in, restore_abandoned
from .scan import CachedFile, CachedRevision, scan_hf_cache
from .view import register_view

logger = logging.getLogger(__name__)

AdoptStatus = Literal["adopted", "incomplete", "skipped"]
PARTIAL_SUFFIX = ".partial"


class RevisionReport(BaseModel):
    """What became of one cached revision."""

    repo: str
    revision: str
    refs: list[str]
    status: AdoptStatus
    reason: str | None = None
    key: str | None = None
    files: int = 0
    bytes: int = 0
    linked: int = 0
    moved: int = 0
    copied: int = 0
    problems: list[str] = []


class AdoptReport(BaseModel):
    """Every revision of a Hugging Face cache, and what adopting it did."""

    hf_cache: str
    store: str
    revisions: list[RevisionReport]


def adopt_hf_cache(
    store: Store,
    hf_cache: str | Path,
    *,
    move: bool = False,
    ask_hub: bool = True,
    progress: ProgressCallback | None = None,
    lock_timeout: float | None = None,
) -> AdoptReport:
    """Make every revision in the Hugging Face cache ``hf_cache`` entries of ``store`` (see the module)."""
    hub_dir = _hub_dir(Path(hf_cache))
    if store.layout.meta_dir.is_dir():
        restore_abandoned(store)  # before the scan, so files a killed adopt moved are seen where they were
    listing = HubListing() if ask_hub else None
    revisions = scan_hf_cache(hub_dir, listing=listing)
    sizes = [f.location.stat().st_size for r in revisions for f in r.files if f.location.is_file()]
    emit(progress, ProgressEvent("plan", total_bytes=sum(sizes), files=len(sizes)))
    if revisions:
        store.prepare_for_writes()
        store.refresh()
    reports = [
        _adopt(store, revision, move=move, progress=progress, timeout=lock_timeout) for revision in revisions
    ]
    if any(report.key for report in reports):
        store.persist()
    return AdoptReport(hf_cache=str(hub_dir), store=store.describe(), revisions=reports)


class HubListing:
    """Asks the Hub for a commit's files (one request, no download) when the cache has no listing.

    After a failure that is not about one repository (the Hub unreachable, offline mode), it stops
    asking: a cache of hundreds of revisions must not wait out the retries of each.
    """

    def __init__(self) -> None:
        self._unreachable = False

    def __call__(self, repo_id: str, repo_type: str, sha: str) -> dict[str, dict[str, object]] | None:
        """The commit's files as ``trees/<sha>.json`` would list them, or ``None`` if the Hub cannot say."""
        if self._unreachable:
            return None
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError
        from huggingface_hub.hf_api import RepoFile

        try:
            tree = HfApi(endpoint=hf_endpoint()).list_repo_tree(
                repo_id, revision=sha, repo_type=repo_type, recursive=True
            )
            return {
                item.path: {
                    "size": item.size,
                    "blob_id": item.blob_id,
                    "lfs_sha256": item.lfs.sha256 if item.lfs else None,
                }
                for item in tree
                if isinstance(item, RepoFile)
            }
        except HfHubHTTPError as exc:  # this repository or commit: unknown, private, gone
            logger.info("no listing of %s@%s from the Hub: %s", repo_id, sha, exc)
        except Exception as exc:  # the network or offline mode: completeness stays unknown, as reported
            logger.info(
                "the Hub cannot list %s@%s (%s); not asking it again", repo_id, sha, type(exc).__name__
            )
            self._unreachable = True
        return None


def _adopt(
    store: Store,
    revision: CachedRevision,
    *,
    move: bool,
    progress: ProgressCallback | None,
    timeout: float | None,
) -> RevisionReport:
    try:
        source = HFSource(revision.repo_id, revision=revision.sha, repo_type=revision.repo_type)
    except InvalidSourceError as exc:
        return _report(revision, "skipped", reason=str(exc))
    report = _report(revision, "skipped")
    started = time.perf_counter()
    key = entry_key(source.slug, source.identity, revision.sha)
    layout = store.layout
    with store.populate_lock(key, timeout=timeout) as lock:
        current = load_manifest(layout, key)  # under the lock: an ensure may have just published it
        if current is not None and not stat_problems(layout.files_dir(key), current):
            _write_refs(store, source, revision, key)
            return report.model_copy(update={"reason": "already in the store", "key": key})
        reclaim_abandoned(layout, key)
        staging = layout.staging_dir / f"{key}.{unique_suffix()}"
        brought: list[Brought] = []
        try:
            brought, problems = _bring_all(revision, staging, move=move, progress=progress)
            report = _publish(store, source, revision, staging, brought, problems, report, lock, started)
        except BaseException:
            for item in brought:
                undo(item.how, item.origin, staging / "files" / item.record.path)
            raise
        finally:
            remove_tree(staging)
    return report


def _bring_all(
    revision: CachedRevision, staging: Path, *, move: bool, progress: ProgressCallback | None
) -> tuple[list[Brought], list[str]]:
    """Link (or copy) and check every file of ``revision`` into ``staging``, several at once."""

    def bring(file: CachedFile) -> Brought | str:
        try:
            if file.problem is not None:
                return f"{file.path}: {file.problem}"
            target = staging / "files" / file.path
            return bring_file(file, target, move=move, on_bytes=_advance(progress, file))
        except IntegrityError as exc:
            return str(exc)
        except OSError as exc:
            return f"{file.path}: {exc}"
        finally:
            emit(progress, ProgressEvent("file_done", path=file.path))

    results = run_parallel([partial(bring, file) for file in revision.files], threads=IO_THREADS)
    return [r for r in results if isinstance(r, Brought)], [r for r in results if isinstance(r, str)]


def _publish(
    store: Store,
    source: HFSource,
    revision: CachedRevision,
    staging: Path,
    brought: list[Brought],
    problems: list[str],
    report: RevisionReport,
    lock: PopulateLock,
    started: float,
) -> RevisionReport:
    """Publish what was brought: the commit's entry when complete, else a ``.partial`` one; report it."""
    missing = revision.missing
    problems = problems + [f"{path}: not in the cache" for path in missing or []]
    if not brought:
        return report.model_copy(update={"reason": "no intact file to adopt", "problems": problems})
    complete = missing is not None and not problems
    version = revision.sha if complete else revision.sha + PARTIAL_SUFFIX
    key = entry_key(source.slug, source.identity, version)
    info = {**source.plan(version).info, "adopted_from": "a Hugging Face cache"}
    reason = None if complete else _incomplete_reason(missing, problems)
    if reason is not None:
        info["incomplete"] = reason
    manifest = Manifest.build(
        key=key,
        source=source.identity,
        version=version,
        files=[item.record for item in brought],
        populate_seconds=time.perf_counter() - started,
        source_info=info,
    )
    lock.check()
    moves = [
        (
            item,
            (
                item.origin,
                staging / "files" / item.record.path,
                store.layout.files_dir(key) / item.record.path,
            ),
        )
        for item in brought
        if item.how == "moved"
    ]
    with contextlib.ExitStack() as held:
        if not complete:  # the partial entry has its own key, so its own lock
            held.enter_context(store.populate_lock(key, timeout=None))
        # Journaled under the commit's key, whose lock this adopt holds and whose next adopt restores.
        journal = move_in(store.layout, entry_key(source.slug, source.identity, revision.sha), moves)
        publish(store.layout, staging, manifest)
    finish(journal, moves)
    if moves:  # the HF cache now reads the entry: rm and gc must remove that revision with it
        register_view(store.layout, revision.repo_dir, revision.sha, key)
    if complete:
        _write_refs(store, source, revision, key)
    counts = {how: sum(1 for item in brought if item.how == how) for how in ("linked", "moved", "copied")}
    return report.model_copy(
        update={
            "status": "adopted" if complete else "incomplete",
            "reason": reason,
            "key": key,
            "files": len(brought),
            "bytes": manifest.total_bytes,
            "problems": problems,
            **counts,
        }
    )


def _incomplete_reason(missing: list[str] | None, problems: list[str]) -> str:
    if missing is None:
        return (
            "no listing of the commit (no trees/<sha>.json in the cache, and the Hub was not asked or not "
            "reachable), so whether every file is there is unknown"
        )
    failed = len(problems) - len(missing)
    parts = [f"{len(missing)} file(s) of the commit are not in the cache"] if missing else []
    parts += [f"{failed} file(s) failed verification"] if failed else []
    return "; ".join(parts)


def _write_refs(store: Store, source: HFSource, revision: CachedRevision, key: str) -> None:
    """The cache's branches become the store's refs, unless the store already has a usable one."""
    for name in revision.refs:
        uri = HFSource(source.repo_id, revision=name, repo_type=source.repo_type).uri
        existing = store.read_ref(uri)
        if existing is None or store.load_manifest(existing.key) is None:
            store.write_ref(uri, revision.sha, key)


def _hub_dir(path: Path) -> Path:
    """The cache's ``hub`` directory: ``path`` itself, or ``path/hub`` when given ``HF_HOME``."""
    if not path.is_dir():
        raise InvalidSourceError(f"{path} is not a directory; give the Hugging Face cache (HF_HUB_CACHE)")
    hub = path / "hub"
    if hub.is_dir() and not any(child.name.count("--") for child in path.iterdir()):
        return hub
    return path


def _advance(progress: ProgressCallback | None, file: CachedFile) -> Callable[[int], None]:
    size = file.location.stat().st_size if file.location.is_file() else None
    return lambda nbytes: emit(
        progress, ProgressEvent("advance", path=file.path, nbytes=nbytes, file_size=size)
    )


def _report(revision: CachedRevision, status: AdoptStatus, *, reason: str | None = None) -> RevisionReport:
    prefix = {"model": "", "dataset": "datasets/", "space": "spaces/"}[revision.repo_type]
    return RevisionReport(
        repo=f"hf://{prefix}{revision.repo_id}",
        revision=revision.sha,
        refs=revision.refs,
        status=status,
        reason=reason,
    )
