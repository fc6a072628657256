"""Bringing one file of a Hugging Face cache into a staging directory, checked against its expected hash.

The file is hardlinked where the filesystem allows (no bytes move, no space used), and copied
otherwise, unless asked to move it: then it is only read here, and :mod:`.adopt_moves` renames it
into the entry at publish time. Either way every byte is read once and hashed: BLAKE3 for the
manifest, and SHA-256 (LFS files) or the git blob id (other files) to compare with what the cache
says the file is. A file that differs is taken out of staging again; the user's cache is left as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .._transport.hashing import HashingWriter, StreamHasher, iter_file_chunks
from ..errors import IntegrityError
from ..manifest import FileRecord
from .scan import CachedFile

HowBrought = Literal["linked", "moved", "copied"]


@dataclass(frozen=True)
class Brought:
    """A file now in staging: its record, how it got there, and where it came from (to undo a move)."""

    record: FileRecord
    how: HowBrought
    origin: Path
    #: For a file still to be moved: its inode, size and mtime when hashed, to be the same when moved.
    signature: tuple[int, int, int, int] | None = None


def bring_file(file: CachedFile, target: Path, *, move: bool, on_bytes: Callable[[int], None]) -> Brought:
    """Put ``file`` at ``target`` and check it; raise :class:`IntegrityError` (nothing left) if it differs."""
    target.parent.mkdir(parents=True, exist_ok=True)
    how = _place(file.location, target, move=move)
    readable = target if how == "linked" else file.location
    before = signature(readable)
    try:
        git = _git_hasher(file, readable)
        if how == "copied":
            with HashingWriter(target, sha256=file.sha256 is not None) as writer:
                _feed(readable, writer.write, git, on_bytes)
                digests = writer.close()
        else:
            hasher = StreamHasher(sha256=file.sha256 is not None)
            _feed(readable, hasher.update, git, on_bytes)
            digests = hasher.digests()
        _check(file, digests.size, digests.sha256, git.hexdigest() if git is not None else None)
        if how == "moved" and signature(readable) != before:
            raise IntegrityError(f"{file.path} changed while it was being read; adopt it again")
    except BaseException:
        undo(how, file.location, target)
        raise
    record = FileRecord(path=file.path, size=digests.size, blake3=digests.blake3, sha256=digests.sha256)
    return Brought(record, how, file.location, before if how == "moved" else None)


def signature(path: Path) -> tuple[int, int, int, int]:
    """What identifies a file's inode and content version: device, inode, size, mtime."""
    info = os.stat(path)
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def undo(how: HowBrought, origin: Path, target: Path) -> None:
    """Take a staged file out again: a moved one goes back where it was, a link or copy is deleted."""
    with contextlib.suppress(FileNotFoundError):
        if how == "moved":
            os.rename(target, origin)
        else:
            target.unlink()


def _place(origin: Path, target: Path, *, move: bool) -> HowBrought:
    try:
        os.link(origin, target)
    except OSError:
        same_filesystem = os.stat(origin).st_dev == os.stat(target.parent).st_dev
        return "moved" if move and same_filesystem else "copied"
    return "linked"


def _feed(
    path: Path,
    sink: Callable[[memoryview], object],
    git: hashlib._Hash | None,
    on_bytes: Callable[[int], None],
) -> None:
    for chunk in iter_file_chunks(path):
        sink(chunk)
        if git is not None:
            git.update(chunk)
        on_bytes(len(chunk))


def _git_hasher(file: CachedFile, readable: Path) -> hashlib._Hash | None:
    """A SHA-1 primed with git's blob header, for files whose expected hash is a git blob id."""
    return None if file.git_blob_id is None else hashlib.sha1(b"blob %d\0" % readable.stat().st_size)


def _check(file: CachedFile, size: int, sha256: str | None, git: str | None) -> None:
    if file.size is not None and size != file.size:
        raise IntegrityError(
            f"{file.path} has {size:,} bytes where its commit lists {file.size:,} (truncated?)"
        )
    if file.sha256 is not None and sha256 != file.sha256:
        raise IntegrityError(f"{file.path} has SHA-256 {sha256}, not {file.sha256} (corrupt)")
    if file.git_blob_id is not None and git != file.git_blob_id:
        raise IntegrityError(f"{file.path} has git blob id {git}, not {file.git_blob_id} (corrupt)")
