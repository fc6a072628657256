"""Manifests validated once per process, revalidated whenever the file on disk changes.

A warm ``ensure()`` reads and validates its entry's manifest on every call; at 1,000 files the
validation costs about half as much as stat-ing the files. A published manifest never changes
in place, so a process keeps each one it validated together with the file's identity and
state: device, inode, size, mtime and ctime (``os.fstat`` of the open file). The next read
opens the file and compares; any change (a truncation, an edit, a replacement by rename, even
one of the same size) changes one of them, and the file is read and validated again. What is
skipped is only the re-parse of bytes this process already validated. (The one change it
cannot see is a rewrite in place of the same size within one tick of the filesystem's clock
that also sets the old mtime back, which only a program bent on it would do.)
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

#: Manifests remembered per process (the least recently used is forgotten first).
MAX_REMEMBERED = 256

_Stamp = tuple[int, int, int, int, int]
_remembered: OrderedDict[str, tuple[_Stamp, object]] = OrderedDict()
_lock = threading.Lock()


def read_validated(path: Path, parse: Callable[[bytes, str], T]) -> T:
    """``parse(bytes, where)`` of the file at ``path``, or what it returned before for this same file state.

    Raises :class:`FileNotFoundError` (and other ``OSError``) as ``open`` does, and whatever
    ``parse`` raises; a file that fails to parse is not remembered.
    """
    where = os.fspath(path)
    with open(where, "rb") as handle:
        info = os.fstat(handle.fileno())
        stamp = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        with _lock:
            known = _remembered.get(where)
            if known is not None and known[0] == stamp:
                _remembered.move_to_end(where)
                return known[1]  # type: ignore[return-value]
        data = handle.read()
    value = parse(data, where)
    if len(data) == stamp[2]:  # not changing while read: the bytes are the ones the stamp describes
        with _lock:
            _remembered[where] = (stamp, value)
            _remembered.move_to_end(where)
            while len(_remembered) > MAX_REMEMBERED:
                _remembered.popitem(last=False)
    return value


def forget_all() -> None:
    """Drop every remembered manifest (the next reads validate again)."""
    with _lock:
        _remembered.clear()
