"""Checking entries: the cheap stat check of the warm path, and the deep check that rehashes.

:func:`verify_entry` reads the store only through its read primitives (:class:`Store`), so it
checks a local directory, a mounted Volume and a Volume seen from a laptop alike.
:func:`stat_problems` is the warm path's own loop over a mounted directory.
"""

from __future__ import annotations

import os
import stat
import time
from functools import partial
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from .._transport.hashing import StreamHasher
from .._transport.parallel import run_parallel
from ..errors import ManifestError
from ..manifest import FileRecord, Manifest
from ..providers.base import FileStat, Store
from .constants import IO_THREADS

ProblemKind = Literal["manifest", "missing", "not-a-file", "size", "blake3", "sha256"]


class Problem(BaseModel):
    """One thing wrong with an entry."""

    path: str | None
    kind: ProblemKind
    detail: str


class VerifyReport(BaseModel):
    """The result of verifying one entry."""

    key: str
    ok: bool
    deep: bool
    files_checked: int
    bytes_checked: int
    seconds: float
    problems: list[Problem]


def stat_problems(files_dir: Path, manifest: Manifest) -> list[Problem]:
    """The warm-path check of a mounted entry: every file present, a regular file, of the recorded size."""
    base = os.fspath(files_dir) + os.sep
    stat_file, is_regular = os.stat, stat.S_ISREG  # local names: this loop runs per file on every hit
    problems = []
    for record in manifest.files:
        try:
            info = stat_file(base + record.path)
        except OSError:
            problems.append(_problem(record, None))
            continue
        if info.st_size != record.size or not is_regular(info.st_mode):
            problems.append(_problem(record, FileStat(size=info.st_size, is_file=is_regular(info.st_mode))))
    return problems


def file_problems(store: Store, key: str, manifest: Manifest) -> list[Problem]:
    """:func:`stat_problems` through the store's :meth:`~Store.stat_files` (one listing on a remote store)."""
    found = store.stat_files(key, [record.path for record in manifest.files])
    return [
        _problem(record, info)
        for record in manifest.files
        if (info := found.get(record.path)) is None or not info.is_file or info.size != record.size
    ]


def _problem(record: FileRecord, info: FileStat | None) -> Problem:
    if info is None:
        return Problem(path=record.path, kind="missing", detail="file is missing")
    if not info.is_file:
        return Problem(path=record.path, kind="not-a-file", detail="not a regular file")
    return Problem(path=record.path, kind="size", detail=f"{info.size:,} bytes, expected {record.size:,}")


def hash_problems(store: Store, key: str, record: FileRecord) -> list[Problem]:
    """Rehash one file of entry ``key`` and compare with every hash its record holds."""
    hasher = StreamHasher(sha256=record.sha256 is not None)
    for chunk in store.open_file(key, record.path):
        hasher.update(chunk)
    digests = hasher.digests()
    problems = []
    if digests.blake3 != record.blake3:
        problems.append(
            Problem(path=record.path, kind="blake3", detail="content differs from the manifest (blake3)")
        )
    if record.sha256 is not None and digests.sha256 != record.sha256:
        problems.append(
            Problem(path=record.path, kind="sha256", detail="content differs from the source's sha256")
        )
    return problems


def verify_entry(store: Store, key: str, *, deep: bool) -> VerifyReport:
    """Check entry ``key``: manifest and stat always; with ``deep``, rehash every file in parallel."""
    started = time.perf_counter()
    try:
        manifest = store.read_manifest(key)
        if manifest.key != key:
            raise ManifestError(f"manifest names key {manifest.key!r}, not {key!r}")
    except (OSError, ManifestError) as exc:
        problem = Problem(path=None, kind="manifest", detail=_manifest_problem(store, key, exc))
        return VerifyReport(
            key=key,
            ok=False,
            deep=deep,
            files_checked=0,
            bytes_checked=0,
            seconds=round(time.perf_counter() - started, 4),
            problems=[problem],
        )
    problems = file_problems(store, key, manifest)
    if deep:
        unreadable = {problem.path for problem in problems}
        tasks = [
            partial(hash_problems, store, key, record)
            for record in manifest.files
            if record.path not in unreadable
        ]
        problems += [problem for found in run_parallel(tasks, threads=IO_THREADS) for problem in found]
    return VerifyReport(
        key=key,
        ok=not problems,
        deep=deep,
        files_checked=len(manifest.files),
        bytes_checked=manifest.total_bytes if deep else 0,
        seconds=round(time.perf_counter() - started, 4),
        problems=problems,
    )


def _manifest_problem(store: Store, key: str, exc: OSError | ManifestError) -> str:
    """Why ``entries/<key>`` is not an entry, in words (not a bare ``[Errno 2]``)."""
    if not store.is_entry_dir(key):
        return "not an entry: a stray file, ignored by weightcache"
    if isinstance(exc, FileNotFoundError):
        return "not an entry: a directory without manifest.json, ignored by weightcache"
    if isinstance(exc, OSError):
        return f"the manifest cannot be read ({exc.strerror or exc}); check the store's permissions"
    return str(exc)
