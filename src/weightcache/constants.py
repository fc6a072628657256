"""Constants and environment variables, read in one place."""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the default local store directory.
ENV_HOME = "WEIGHTCACHE_HOME"

#: Version of the manifest's on-disk schema; bumped on incompatible changes.
MANIFEST_SCHEMA_VERSION = 1

#: Every contender for an entry's populate lease must agree on this (filelock checks it).
LEASE_SECONDS = 60.0

#: Size of one read/write chunk when streaming a file (large enough to amortise syscalls,
#: small enough that a pool of copy threads stays well under 256 MB).
CHUNK_BYTES = 8 * 1024 * 1024

#: Threads copying or hashing files of one entry at once.
IO_THREADS = min(8, 2 * (os.cpu_count() or 1))

#: Threads reading weight files for prefetch and load_safetensors: reads wait on the disk or the
#: network, not the CPU, and network volumes serve many concurrent reads faster than few.
READ_THREADS = 16


def default_store_root() -> Path:
    """The default local store: ``$WEIGHTCACHE_HOME`` or ``~/.cache/weightcache``."""
    configured = os.environ.get(ENV_HOME)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "weightcache"
