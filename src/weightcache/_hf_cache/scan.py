"""Reading an existing Hugging Face cache: its repos, revisions, refs and what each file should hash to.

The layout is huggingface_hub's (``file_download.py``, ``utils/_cache_manager.py``)::

    <cache>/models--ORG--NAME/refs/<branch>            commit sha
    <cache>/models--ORG--NAME/snapshots/<sha>/<path>   symlink to ../../blobs/<etag>
    <cache>/models--ORG--NAME/blobs/<etag>             SHA-256 (LFS) or git blob id (other files)
    <cache>/models--ORG--NAME/trees/<sha>.json         the commit's full listing (huggingface_hub 2.4,
                                                       ``_tree_cache.py``): size, blob_id, lfs_sha256

A blob may itself be a symlink into the cache-wide Xet store (``utils/_shared_blobs.py``); the
bytes are read wherever the links end. Where symlinks were unavailable, snapshot files are plain
copies with no etag beside them: only a tree listing then says what they should hash to.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_REPO_DIR = re.compile(r"^(models|datasets|spaces)--(.+)$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TREE_FORMAT = 1  # huggingface_hub._tree_cache.TREE_CACHE_FORMAT_VERSION


@dataclass(frozen=True)
class CachedFile:
    """One file of a cached snapshot and what it should be: ``sha256`` (LFS) or ``git_blob_id``."""

    path: str
    location: Path
    sha256: str | None
    git_blob_id: str | None
    size: int | None
    problem: str | None = None


@dataclass
class CachedRevision:
    """One ``snapshots/<sha>`` of a cached repository."""

    repo_id: str
    repo_type: str
    repo_dir: Path
    sha: str
    refs: list[str]
    files: list[CachedFile]
    #: Paths the commit has but the snapshot lacks; ``None`` when no listing says what the commit has.
    missing: list[str] | None = field(default=None)


Listing = Callable[[str, str, str], "dict[str, dict[str, object]] | None"]


def scan_hf_cache(hf_cache: Path, *, listing: Listing | None = None) -> list[CachedRevision]:
    """Every snapshot in the Hugging Face cache ``hf_cache`` (the ``hub`` directory), sorted by repo.

    ``listing(repo_id, repo_type, sha)`` is asked for a commit's files when the cache has no listing.
    """
    revisions = []
    for repo_dir in sorted(hf_cache.absolute().iterdir()):
        match = _REPO_DIR.match(repo_dir.name)
        if match is None or not repo_dir.is_dir():
            continue
        repo_type, repo_id = match.group(1)[:-1], match.group(2).replace("--", "/")
        refs = _refs(repo_dir)
        snapshots = repo_dir / "snapshots"
        for snapshot in sorted(snapshots.iterdir()) if snapshots.is_dir() else []:
            if _SHA1.match(snapshot.name) and snapshot.is_dir():
                tree = _tree(repo_dir, snapshot.name)
                if tree is None and listing is not None:
                    tree = listing(repo_id, repo_type, snapshot.name)
                files = [_expect(repo_dir, snapshot, relpath, tree) for relpath in _files(snapshot)]
                missing = None if tree is None else sorted(set(tree) - {file.path for file in files})
                refs_here = sorted(name for name, sha in refs.items() if sha == snapshot.name)
                revisions.append(
                    CachedRevision(repo_id, repo_type, repo_dir, snapshot.name, refs_here, files, missing)
                )
    return revisions


def _refs(repo_dir: Path) -> dict[str, str]:
    refs_dir = repo_dir / "refs"
    found = {}
    for path in refs_dir.rglob("*") if refs_dir.is_dir() else []:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if path.is_file() and _SHA1.match(sha := path.read_text().strip()):
                found[path.relative_to(refs_dir).as_posix()] = sha
    return found


def _tree(repo_dir: Path, sha: str) -> dict[str, dict[str, object]] | None:
    """The commit's listing as huggingface_hub cached it, or ``None`` when absent or unreadable."""
    with contextlib.suppress(OSError, ValueError):
        data = json.loads((repo_dir / "trees" / f"{sha}.json").read_text())
        if data.get("format_version") == _TREE_FORMAT and isinstance(data.get("files"), dict):
            return data["files"]
    return None


def _files(snapshot: Path) -> list[str]:
    found = []
    for root, dirs, names in os.walk(snapshot):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        found += [(Path(root) / name).relative_to(snapshot).as_posix() for name in names]
    return sorted(found)


def _expect(
    repo_dir: Path, snapshot: Path, relpath: str, tree: dict[str, dict[str, object]] | None
) -> CachedFile:
    """Where file ``relpath`` lies and the hash it must have, from its blob name and the tree listing."""
    pointer = snapshot / relpath
    location = Path(os.path.realpath(pointer))
    etag = _etag(repo_dir, pointer)
    listed = (tree or {}).get(relpath)
    sha256 = git = size = None
    problem = None
    if listed is not None:
        lfs = listed.get("lfs_sha256")
        sha256 = str(lfs) if lfs else None
        git = None if lfs else str(listed.get("blob_id"))
        size = int(listed["size"]) if isinstance(listed.get("size"), int) else None  # type: ignore[arg-type]
        if etag is not None and etag not in (sha256, git):
            problem = f"its blob is named {etag} but the commit's listing says {sha256 or git}"
    elif etag is not None:
        sha256, git = (etag, None) if _SHA256.match(etag) else (None, etag)
    else:
        problem = "no blob name and no tree listing says what it should hash to; it cannot be verified"
    if not location.is_file():
        problem = "missing (its link dangles)"
    return CachedFile(relpath, location, sha256, git, size, problem)


def _etag(repo_dir: Path, pointer: Path) -> str | None:
    """The ``blobs/<etag>`` name a snapshot link points at, if it is one."""
    if not pointer.is_symlink():
        return None
    target = Path(os.path.normpath(pointer.parent / os.readlink(pointer)))
    name = target.name
    if target.parent == repo_dir / "blobs" and (_SHA1.match(name) or _SHA256.match(name)):
        return name
    return None
