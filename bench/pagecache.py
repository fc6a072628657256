"""Page-cache state between runs: flush dirty pages, and (as root on Linux) drop clean ones.

Throughput on a machine with plenty of RAM depends mostly on whether the bytes are already in
the page cache, so every case says which state it measured in, and cold rows exist only when
this process may drop the cache.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

_DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def flush() -> None:
    """Write every dirty page to disk, so a run does not pay for the previous run's writeback."""
    os.sync()


def drop() -> bool:
    """Flush, then evict clean pages, dentries and inodes; ``False`` when not permitted (not root)."""
    flush()
    try:
        _DROP_CACHES.write_text("3\n")
    except OSError:
        return False
    return True


def drop_file(path: Path) -> None:
    """Ask the kernel to drop one file's pages (written back first, so it lets them go); no check."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(descriptor)


def evict(paths: list[Path]) -> str:
    """Drop the files from the page cache, checked; return how, or why it could not be done.

    The check reads a few sampled pages with ``RWF_NOWAIT``, which may start readahead on some
    kernels: call it right before the cold measurement, not before a test that probes pages itself.
    """
    for path in paths:
        drop_file(path)
    if not any(map(is_cached, paths)):
        return "fadvise"
    with contextlib.suppress(OSError):
        os.sync()
        _DROP_CACHES.write_text("1\n")
        if not any(map(is_cached, paths)):
            return "drop_caches"
    return "FAILED: still cached, so 'cold' rows are warm"


def is_cached(path: Path) -> bool:
    """Whether a few sampled pages of ``path`` are in the page cache (``RWF_NOWAIT`` reads succeed)."""
    size = path.stat().st_size
    descriptor = os.open(path, os.O_RDONLY)
    try:
        for offset in {0, size // 2 // 4096 * 4096, max(size - 1, 0) // 4096 * 4096}:
            try:
                os.preadv(descriptor, [bytearray(1)], offset, os.RWF_NOWAIT)
                return True
            except BlockingIOError:
                continue
        return False
    finally:
        os.close(descriptor)
