"""A Hugging Face cache view of an entry: unchanged ``from_pretrained("org/name")`` code reads our files.

huggingface_hub's cache (``HF_HUB_CACHE``, ``~/.cache/huggingface/hub``) is laid out as::

    <cache>/models--ORG--NAME/refs/<branch>            the commit sha, as text
    <cache>/models--ORG--NAME/snapshots/<sha>/<path>   relative symlink to ../../blobs/<etag>
    <cache>/models--ORG--NAME/blobs/<etag>             the bytes

(``datasets--``/``spaces--`` for other repo types). The etag is the SHA-256 of an LFS file and
the git blob id (SHA-1 of ``"blob <size>\\0"`` + content) of any other file. Sources read:
``file_download.py`` (``repo_folder_name``, ``_create_symlink``, ``_cache_commit_hash_for_specific_revision``,
``_hf_hub_download_to_cache_dir``: a pointer that exists is returned without a download, and with
``local_files_only``/``HF_HUB_OFFLINE`` a branch is read from ``refs/``), ``_snapshot_download.py``
(the same for whole snapshots) and ``utils/_cache_manager.py`` (``scan_cache_dir`` reads one
level of ``snapshots -> blobs`` links; deleting a revision unlinks the blob link, never its target).

:func:`lay_out_view` writes that layout with ``blobs/<etag>`` a symlink to the entry's file (a
hardlink where symlinks fail, a copy where both do). huggingface_hub itself keeps blobs as
symlinks when it shares Xet blobs across repos (``utils/_shared_blobs.py``). Every view is
registered in the store (``.weightcache/hf-views/``) so that removing the entry (``rm``, ``gc``)
removes the view with it (:func:`drop_views`), instead of leaving links that dangle.

The etags of non-LFS files (configs, tokenizers: at most 10 MB each on the Hub) are not in the
manifest; they are computed from the entry's files when the view is first laid out. A view that
is already in place costs a ``stat`` per file and no hashing.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ValidationError

from .._core.layout import StoreLayout, short_hash
from .._transport.fsutil import atomic_write_bytes, remove_tree, safe_relpath, unique_suffix
from .._transport.hashing import iter_file_chunks
from ..entry import Entry
from ..errors import InvalidSourceError, LinkError
from ..manifest import FileRecord, load_manifest
from ..providers.base import Source
from ..providers.sources.hf import HFSource

logger = logging.getLogger(__name__)

VIEWS_DIR_NAME = "hf-views"


class ViewRecord(BaseModel):
    """One laid-out view: which HF cache repo folder shows which entry at which commit."""

    repo_dir: str
    sha: str
    key: str


def repo_folder_name(repo_id: str, repo_type: str) -> str:
    """``models--ORG--NAME``, as ``huggingface_hub.file_download.repo_folder_name`` names it."""
    return "--".join([f"{repo_type}s", *repo_id.split("/")])


def git_blob_id(path: Path) -> str:
    """The git blob id of a file: SHA-1 of ``b"blob <size>\\0"`` followed by the content."""
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    for chunk in iter_file_chunks(path):
        digest.update(chunk)
    return digest.hexdigest()


def lay_out_view(layout: StoreLayout, source: Source, entry: Entry, hf_cache: str | os.PathLike[str]) -> Path:
    """Make ``hf_cache`` hold what huggingface_hub's cache holds for ``entry``; return the snapshot dir.

    Links to the entry's files; nothing is copied unless the filesystem can neither symlink nor
    hardlink. ``refs/<revision>`` is written when ``source`` names a branch or tag.
    """
    if not isinstance(source, HFSource):
        raise InvalidSourceError(
            f"an HF cache view needs an hf:// source, not {source.uri}; drop hf_cache= (--hf-cache)"
        )
    repo_dir = Path(hf_cache).expanduser().absolute() / repo_folder_name(source.repo_id, source.repo_type)
    sha = entry.version
    snapshot = repo_dir / "snapshots" / sha
    try:
        if not _in_place(snapshot, entry):
            register_view(layout, repo_dir, sha, entry.key)
            for record in entry.manifest.files:
                _link_file(repo_dir, snapshot, entry.path, record)
        if source.pinned_version() is None:
            _write_ref(repo_dir, source.revision, sha)
    except OSError as exc:
        raise LinkError(
            f"cannot lay out {source.uri} as a Hugging Face cache in {hf_cache} ({exc.strerror or exc}); "
            "choose a writable directory on local disk"
        ) from exc
    return snapshot


def drop_views(layout: StoreLayout, key: str) -> None:
    """Remove every view of entry ``key`` (its snapshot, the refs to it, the blobs linking into it).

    Called once the entry is gone. Views of other entries that shared a blob with it are
    re-pointed at their own entry's file. A view on a path this machine cannot see is forgotten.
    """
    records = _views(layout)
    for path, record in records:
        if record.key != key:
            continue
        repo_dir = Path(record.repo_dir)
        others = [other for _, other in records if other.key != key and other.repo_dir == record.repo_dir]
        with contextlib.suppress(OSError):
            remove_tree(repo_dir / "snapshots" / record.sha)
            if not any(other.sha == record.sha for other in others):  # another view may show that commit
                _drop_refs(repo_dir, record.sha)
            _drop_blobs_into(repo_dir / "blobs", layout.files_dir(key))
        path.unlink(missing_ok=True)
        for other in others:
            _relink(layout, other)


def register_view(layout: StoreLayout, repo_dir: Path, sha: str, key: str) -> None:
    """Record that HF cache folder ``repo_dir`` shows entry ``key`` at ``sha``, for rm and gc to remove."""
    _register(layout, ViewRecord(repo_dir=str(repo_dir), sha=sha, key=key))


# --- internals ----------------------------------------------------------------------------


def _in_place(snapshot: Path, entry: Entry) -> bool:
    """Whether every file of the snapshot already resolves to the entry's own file (stats only)."""
    try:
        for record in entry.manifest.files:
            if not os.path.samestat(os.stat(snapshot / record.path), os.stat(entry.path / record.path)):
                return False
    except OSError:
        return False
    return True


def _link_file(repo_dir: Path, snapshot: Path, files_dir: Path, record: FileRecord) -> None:
    target = files_dir / record.path
    etag = record.sha256 or git_blob_id(target)
    blob = repo_dir / "blobs" / etag
    blob.parent.mkdir(parents=True, exist_ok=True)
    if not (blob.is_symlink() and os.readlink(blob) == str(target)):
        _place(blob, lambda tmp: _link_or_copy(target, tmp))
    pointer = snapshot / record.path
    pointer.parent.mkdir(parents=True, exist_ok=True)
    # Relative, as huggingface_hub's _create_symlink makes it: the cache folder can move as a whole.
    relative = os.path.relpath(blob, pointer.parent)
    if not (pointer.is_symlink() and os.readlink(pointer) == relative):
        _place(pointer, lambda tmp: _symlink_or_link(relative, blob, tmp))


def _place(path: Path, make: Callable[[Path], None]) -> None:
    """Create ``path`` beside itself, then rename it over whatever was there (readers never see a gap)."""
    tmp = path.with_name(f".{path.name}.{unique_suffix()}.tmp")
    try:
        make(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _link_or_copy(target: Path, tmp: Path) -> None:
    try:
        os.symlink(target, tmp)
    except OSError:
        try:
            os.link(target, tmp)
        except OSError:
            logger.info("cannot link %s from %s; copying it", target, tmp.parent)
            shutil.copyfile(target, tmp)


def _symlink_or_link(relative: str, blob: Path, tmp: Path) -> None:
    try:
        os.symlink(relative, tmp)
    except OSError:
        _link_or_copy(blob.resolve(), tmp)


def _write_ref(repo_dir: Path, revision: str, sha: str) -> None:
    ref = repo_dir / "refs" / safe_relpath(revision)  # a branch may hold "/", never ".."
    with contextlib.suppress(OSError):
        if ref.read_text() == sha:
            return
    ref.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(ref, sha.encode())  # no newline: huggingface_hub reads the file as is


def _drop_refs(repo_dir: Path, sha: str) -> None:
    refs_dir = repo_dir / "refs"
    for ref in refs_dir.rglob("*") if refs_dir.is_dir() else []:
        with contextlib.suppress(OSError):
            if ref.is_file() and ref.read_text().strip() == sha:
                ref.unlink()


def _drop_blobs_into(blobs_dir: Path, files_dir: Path) -> None:
    prefix = str(files_dir) + os.sep
    for blob in blobs_dir.iterdir() if blobs_dir.is_dir() else []:
        if blob.is_symlink() and os.readlink(blob).startswith(prefix):
            blob.unlink()


def _views_dir(layout: StoreLayout) -> Path:
    return layout.meta_dir / VIEWS_DIR_NAME


def _register(layout: StoreLayout, record: ViewRecord) -> None:
    path = _views_dir(layout) / f"{short_hash(chr(10).join((record.repo_dir, record.sha, record.key)))}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, record.model_dump_json().encode() + b"\n")
    except OSError as exc:  # a read-only store still serves the view; gc then cannot find it to remove it
        logger.info("not recording the view %s in %s: %s", record.repo_dir, layout.root, exc)


def _views(layout: StoreLayout) -> list[tuple[Path, ViewRecord]]:
    found = []
    views_dir = _views_dir(layout)
    for path in sorted(views_dir.glob("*.json")) if views_dir.is_dir() else []:
        with contextlib.suppress(OSError, ValidationError, ValueError):
            found.append((path, ViewRecord.model_validate_json(path.read_bytes())))
    return found


def _relink(layout: StoreLayout, record: ViewRecord) -> None:
    """Lay out a remaining view's files again, so blobs it shared with a removed entry point at its own."""
    manifest = load_manifest(layout, record.key)
    repo_dir = Path(record.repo_dir)
    if manifest is None or not repo_dir.is_dir():
        return
    snapshot = repo_dir / "snapshots" / record.sha
    with contextlib.suppress(OSError):
        for file in manifest.files:
            _link_file(repo_dir, snapshot, layout.files_dir(record.key), file)
