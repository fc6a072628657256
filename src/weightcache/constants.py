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

#: How often a process waiting for a populate lease looks for a lease file left empty by a kill.
LEASE_POLL_SECONDS = 1.0

#: A lease file empty and unchanged this long was abandoned between its creation and its record
#: (a live holder writes the record microseconds after creating the file; filelock waits 2 s too).
EMPTY_LEASE_SECONDS = 2.0

#: Bytes per read or write when streaming a file, per prefetch range and per loader read (and
#: pinned host buffer): large enough that per-call overheads vanish, small enough
#: that a buffer per thread stays small. A multiple of 4 KiB, so reads cut at its multiples of
#: the file's offsets are page-aligned.
CHUNK_BYTES = 8 * 1024 * 1024

#: Largest manifest read from a Volume or an archive (a v1 Volume's 500,000 files need about 100 MB).
MAX_MANIFEST_BYTES = 128 * 1024 * 1024

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


#: Environment variable huggingface_hub reads a Hub token from (named in error messages).
ENV_HF_TOKEN = "HF_TOKEN"

#: Parallel connections one HTTP download uses when the server accepts byte ranges.
HTTP_CONNECTIONS = 8

#: Size of one byte range of a parallel HTTP download (parts are fetched in order, so the
#: follower hash trails the download by about HTTP_CONNECTIONS parts).
HTTP_PART_BYTES = 32 * 1024 * 1024

#: Seconds to wait for a connection, or for the next bytes of a response, before retrying.
HTTP_TIMEOUT_SECONDS = 30.0

#: Retries of one request that makes no progress (5xx, timeouts, dropped connections).
HTTP_RETRIES = 5

#: First retry delay in seconds; it doubles per retry up to HTTP_BACKOFF_MAX_SECONDS.
HTTP_BACKOFF_SECONDS = 0.25
HTTP_BACKOFF_MAX_SECONDS = 8.0


def hf_endpoint() -> str | None:
    """The Hub endpoint set in ``HF_ENDPOINT``, read when a source is made (``None``: the public Hub)."""
    return os.environ.get("HF_ENDPOINT") or None
