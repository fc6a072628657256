"""Downloads that survive a kill: a journal of the bytes on disk per file, and salvaging them.

A file downloaded in byte ranges records, every few MiB, which of its ranges are on disk: the
file is fdatasynced first, then the journal is replaced, so a journal never claims a byte that a
crash could lose. The journal also names the version the bytes belong to (the file's SHA-256
when the source pins one, else the server's ETag or Last-Modified) and the file's size.

A populate that finds a killed one's staging directory for the same entry (it holds the entry's
populate lock, so that directory is provably abandoned) takes it over: its files become
*salvaged* candidates, and a file whose journal names the same version and size resumes from
them, fetching only the missing ranges. Resumed bytes are hashed again with the rest, from the
first byte, before the file is recorded, and nothing under ``resume/`` or ``salvaged/`` is
ever published.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

from .._core.layout import short_hash
from .fsutil import remove_tree, safe_relpath

logger = logging.getLogger(__name__)

#: Inside a staging directory: the journals, and a killed populate's files taken over.
JOURNAL_DIR = "resume"
SALVAGED_DIR = "salvaged"

Spans = list[tuple[int, int]]


class Journal:
    """Which byte ranges of staging file ``name`` (``size`` bytes of ``version``) are safely on disk."""

    def __init__(self, staging_dir: Path, name: str, *, size: int, version: str) -> None:
        self.path = staging_dir / JOURNAL_DIR / f"{short_hash(name, 24)}.json"
        self.name, self.size, self.version = name, size, version

    def load(self) -> Spans:
        """The ranges a killed populate recorded for this very file and version (empty if none)."""
        try:
            record = json.loads(self.path.read_text())
            spans = [(int(start), int(end)) for start, end in record["spans"]]
        except (OSError, ValueError, KeyError, TypeError):
            return []
        if (record.get("name"), record.get("size"), record.get("version")) != (
            self.name,
            self.size,
            self.version,
        ):
            return []
        if any(not 0 <= start < end <= self.size for start, end in spans):
            return []
        return spans

    def save(self, spans: Spans) -> None:
        """Record ``spans`` (the caller has fdatasynced the bytes they cover); atomic."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"name": self.name, "size": self.size, "version": self.version, "spans": spans}
        temp = self.path.with_suffix(".tmp")
        temp.write_text(json.dumps(record))
        os.replace(temp, self.path)

    def discard(self) -> None:
        """Forget this file's ranges (before its file is written afresh, or when it failed its check)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def peek(staging_dir: Path, journal: Journal) -> Spans:
    """The ranges of ``journal``'s file a killed populate left on disk for this version, if usable."""
    spans = journal.load()
    try:
        usable = bool(spans) and _salvaged(staging_dir, journal).stat().st_size == journal.size
    except OSError:
        usable = False
    return spans if usable else []


def claim(staging_dir: Path, journal: Journal, target: Path) -> Spans:
    """Move ``journal``'s salvaged file to ``target`` and return its ranges on disk (see :func:`peek`).

    When there is nothing to resume, forget the journal and return ``[]``: the caller writes
    ``target`` from scratch. Either way the journal never describes another file afterwards.
    """
    spans = peek(staging_dir, journal)
    if not spans:
        journal.discard()
        return []
    os.replace(_salvaged(staging_dir, journal), target)
    resumed = sum(end - start for start, end in spans)
    logger.info("resuming %s: %d of %d bytes already on disk", journal.name, resumed, journal.size)
    return spans


def _salvaged(staging_dir: Path, journal: Journal) -> Path:
    return staging_dir / SALVAGED_DIR / safe_relpath(journal.name)


def salvage(abandoned: list[Path], staging_dir: Path) -> bool:
    """Take over the newest of ``abandoned`` (killed populates' staging) holding journals as ``staging_dir``.

    Its ``files/`` become ``salvaged/`` candidates (files salvaged twice over are dropped), its
    journals stay; the caller removes the others. Returns whether one was taken over.
    """
    candidates = [path for path in abandoned if (path / JOURNAL_DIR).is_dir()]
    if not candidates:
        return False
    newest = max(candidates, key=lambda path: (path / JOURNAL_DIR).stat().st_mtime_ns)
    try:
        remove_tree(newest / SALVAGED_DIR)
        if (newest / "files").is_dir():
            os.rename(newest / "files", newest / SALVAGED_DIR)
        os.rename(newest, staging_dir)
    except OSError as exc:
        logger.info("could not resume from %s (%s); starting over", newest, exc)
        return False
    abandoned.remove(newest)
    logger.info("resuming the downloads of %s", newest.name)
    return True


def discard_all(staging_dir: Path) -> None:
    """Remove the journals and salvaged files: every file is in, so none of it may be published."""
    for name in (JOURNAL_DIR, SALVAGED_DIR):
        remove_tree(staging_dir / name)
