"""Modal memory snapshots for the example apps: the switch, and the check that the Volume is let go.

With ``EXAMPLES_MEMORY_SNAPSHOT=1`` at deploy time an app is declared with
``enable_memory_snapshot=True``: Modal runs its ``@modal.enter(snap=True)`` method once, snapshots
the container's memory, and later containers start from that snapshot. The apps ensure the
weights and load the models on the CPU in that phase, and move them to the GPU in
``@modal.enter(snap=False)``. Nothing in the snapshot may keep a file of the Volume open or
mapped: Modal's ``Volume.reload()`` refuses to run while one is (``reload-model`` and
weightcache's store reload the Volume), so :func:`volume_files_in_use` is checked at the end of
the snap phase.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

MEMORY_SNAPSHOT_ENV = "EXAMPLES_MEMORY_SNAPSHOT"

logger = logging.getLogger(__name__)


def memory_snapshot_enabled() -> bool:
    """Whether ``EXAMPLES_MEMORY_SNAPSHOT`` asks for memory snapshots (``1``; default ``0``)."""
    value = os.environ.get(MEMORY_SNAPSHOT_ENV, "0")
    if value not in ("0", "1"):
        raise ValueError(f"{MEMORY_SNAPSHOT_ENV} is {value!r}; set it to 1 or 0")
    return value == "1"


def volume_files_in_use(mount: str | os.PathLike[str]) -> list[str]:
    """The files under ``mount`` this process has open or memory-mapped (Linux ``/proc``; else none)."""
    root = os.path.realpath(mount)
    found: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                found.add(os.readlink(f"/proc/self/fd/{fd}"))
    with contextlib.suppress(OSError), open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)  # address perms offset dev inode [path]
            if len(fields) == 6:
                found.add(fields[5].strip())
    return sorted(path for path in found if path == root or path.startswith(root + os.sep))


def check_volume_released(mount: str | os.PathLike[str]) -> list[str]:
    """Log a warning naming the Volume files still open at the end of the snap phase; return them."""
    in_use = volume_files_in_use(mount)
    if in_use:
        logger.warning(
            "%d file(s) of the Volume at %s are still open before the memory snapshot, so Volume "
            "reloads will fail: %s",
            len(in_use),
            Path(mount),
            ", ".join(in_use[:5]),
        )
    return in_use
