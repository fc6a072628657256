"""Page-cache state between runs: flush dirty pages, and (as root on Linux) drop clean ones.

Throughput on a machine with plenty of RAM depends mostly on whether the bytes are already in
the page cache, so every case says which state it measured in, and cold rows exist only when
this process may drop the cache.
"""

from __future__ import annotations

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
