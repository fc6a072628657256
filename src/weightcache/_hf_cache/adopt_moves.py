"""Moving adopted files into an entry so that a kill never loses them.

With ``move=True`` a file that cannot be hardlinked is renamed from the Hugging Face cache into the
entry being published, and a symlink is left where it was. The renames happen last, just before
the entry is published, and a journal (``.weightcache/adopt-moves/``) written first records, for
each file, where it came from, where it is staged and where the entry will hold it. If the process
dies in between, the next adopt puts every file back (or, when the entry was
already published, leaves the symlink); a ``gc`` run before that would delete the staged files,
and huggingface_hub would download them again.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from .._core.layout import StoreLayout
from .._transport.fsutil import atomic_write_bytes, unique_suffix
from ..errors import IntegrityError, LockTimeoutError
from ..providers.base import Store
from .adopt_files import Brought, signature

JOURNAL_DIR_NAME = "adopt-moves"

#: One move: (where the file was, where it is staged, where the published entry holds it).
Move = tuple[Path, Path, Path]


def move_in(layout: StoreLayout, key: str, moves: list[tuple[Brought, Move]]) -> Path | None:
    """Rename each file into staging, after journaling the moves; return the journal (``None``: no moves).

    Raises :class:`IntegrityError` when a file is no longer the one that was hashed; the caller
    then renames back what was moved.
    """
    if not moves:
        return None
    journal = _journal_dir(layout) / f"{key}.{unique_suffix()}.json"
    journal.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(journal, json.dumps([[str(path) for path in move] for _, move in moves]).encode())
    for brought, (origin, staged, _) in moves:
        os.rename(origin, staged)
        if signature(staged) != brought.signature:
            raise IntegrityError(f"{brought.record.path} changed while it was being adopted; adopt it again")
    return journal


def finish(journal: Path | None, moves: list[tuple[Brought, Move]]) -> None:
    """Once the entry is published: a symlink where each file was, then forget the journal."""
    for _, (origin, _, final) in moves:
        os.symlink(final, origin)
    if journal is not None:
        journal.unlink()


def restore_abandoned(store: Store) -> None:
    """Undo the moves of adopts that were killed, so the Hugging Face cache holds those files again.

    A journal whose adopt still runs (its commit's populate lock is held) is left to that adopt.
    """
    journals = _journal_dir(store.layout)
    for journal in sorted(journals.glob("*.json")) if journals.is_dir() else []:
        key = journal.name.removesuffix(".json").rsplit(".", 1)[0]  # <key>.<token>.json
        with contextlib.suppress(LockTimeoutError), store.populate_lock(key, timeout=0):
            _restore(journal)


def _restore(journal: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        for origin, staged, final in json.loads(journal.read_bytes()):
            if os.path.lexists(origin):
                continue
            if os.path.exists(staged):
                os.rename(staged, origin)
            elif os.path.exists(final):
                os.symlink(final, origin)
        journal.unlink()


def _journal_dir(layout: StoreLayout) -> Path:
    return layout.meta_dir / JOURNAL_DIR_NAME
