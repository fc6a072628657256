"""In-use holds: an entry a process got from ``ensure()`` is not removed under it by another process.

A hold is a shared ``flock`` on the entry's use file (``.weightcache/locks/<key>.use``), taken by
``ensure()`` and kept until the process exits, calls ``WeightCache.release``, leaves the block of
``WeightCache.use``, or gets another version of the same source from ``ensure()`` (the cache then
releases the version it superseded, and any version it only probed through a stale ref). ``gc`` and ``rm``
remove an entry only while holding an exclusive lock on that file, taken without waiting: an
entry another process holds is skipped by ``gc`` and refused by ``rm``. The kernel drops a dead
process's locks, so a killed process never pins an entry. A hold costs one ``open`` and one
``flock`` the first time a process gets an entry (microseconds), and nothing after that.

Holds are best effort: where the use file cannot be created (a read-only or full store) the
entry is served unprotected rather than not at all.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

_held: dict[str, int] = {}  # use file -> the descriptor holding its shared lock in this process
_held_guard = threading.Lock()


def hold(use_file: Path) -> None:
    """Hold ``use_file`` shared for the rest of this process (nothing to do if already held)."""
    name = os.fspath(use_file)
    with _held_guard:
        if name in _held:
            return
        try:
            _held[name] = _lock_current(name, fcntl.LOCK_SH)
        except OSError as exc:
            logger.info("cannot mark %s in use, so it is not protected from gc: %s", name, exc)


def release(use_file: Path) -> None:
    """Drop this process's hold on ``use_file``, if it has one."""
    with _held_guard:
        fd = _held.pop(os.fspath(use_file), None)
    if fd is not None:
        os.close(fd)


@contextlib.contextmanager
def exclusive(use_file: Path) -> Iterator[bool]:
    """Lock ``use_file`` exclusively without waiting; yield whether no other process holds it.

    This process's own hold is dropped first: its own ``gc`` or ``rm`` is deliberate. While the
    block runs, no process can take a new hold (``ensure()`` waits for the block to end).
    """
    release(use_file)
    name = os.fspath(use_file)
    try:
        fd = _lock_current(name, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        yield False
        return
    try:
        yield True
    finally:
        os.close(fd)


def _lock_current(name: str, operation: int) -> int:
    """Open and lock the file now at ``name``; retry if a remover unlinked it while we waited.

    Shared holds open the file read-only: a held entry must not keep its filesystem from being
    remounted read-only, and an existing use file can be locked even on a read-only store.
    """
    flags = os.O_RDONLY if operation == fcntl.LOCK_SH else os.O_RDWR  # NFS locks exclusively only for writers
    while True:
        fd = _open(name, flags)
        try:
            fcntl.flock(fd, operation)
            if os.fstat(fd).st_ino == os.stat(name).st_ino:
                return fd
        except FileNotFoundError:
            pass  # unlinked by a remover once it had removed the entry: lock the new file
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _open(name: str, flags: int) -> int:
    try:
        return os.open(name, flags | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(name), exist_ok=True)
        return os.open(name, flags | os.O_CREAT | os.O_CLOEXEC, 0o644)
