"""Progress reporting: the library emits events to an optional callback and prints nothing itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a populate.

    ``kind`` is ``"plan"`` once, before any bytes move (``total_bytes`` and ``files`` set);
    ``"advance"`` whenever ``nbytes`` more bytes of ``path`` were written (``file_size`` is that
    file's size when known); ``"file_done"`` when ``path`` is complete.
    """

    kind: Literal["plan", "advance", "file_done"]
    path: str | None = None
    nbytes: int = 0
    file_size: int | None = None
    total_bytes: int | None = None
    files: int | None = None


#: Signature of a progress callback. It is called from copy threads, so it must be thread-safe.
ProgressCallback = Callable[[ProgressEvent], None]


def emit(callback: ProgressCallback | None, event: ProgressEvent) -> None:
    """Send ``event`` to ``callback`` if there is one."""
    if callback is not None:
        callback(event)
