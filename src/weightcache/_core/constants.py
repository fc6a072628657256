"""Constants and environment variables, read in one place."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InvalidSourceError

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


def default_store_root() -> Path:
    """The default local store: ``$WEIGHTCACHE_HOME`` or ``~/.cache/weightcache``."""
    configured = os.environ.get(ENV_HOME)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "weightcache"


#: Environment variable huggingface_hub reads a Hub token from (named in error messages).
ENV_HF_TOKEN = "HF_TOKEN"

#: Environment variable setting the connections one populate may hold open (see http_connections()).
ENV_CONNECTIONS = "WEIGHTCACHE_CONNECTIONS"

#: Connections one populate holds at most, shared by all its files' byte ranges. CDNs cap each
#: connection (often 20-50 MB/s), so a single stream cannot fill a fast link; 32 fills a 10 Gbit/s one.
HTTP_CONNECTIONS = 32

#: Byte-range parts are sized to give each connection a few parts of the whole populate, within
#: these bounds: a file no larger than the smallest part is one request (it reuses a pooled
#: connection, so small files pay no connection setup each), and every larger file is split.
HTTP_MIN_PART_BYTES = 4 * 1024 * 1024
HTTP_MAX_PART_BYTES = 32 * 1024 * 1024

#: A download in ranges records which bytes are on disk (fsynced first) after about this many more
#: bytes, so a killed populate's successor fetches only the rest (see weightcache._transport.resume).
RESUME_CHECKPOINT_BYTES = 16 * 1024 * 1024


def http_connections() -> int:
    """The connection budget of one populate: ``$WEIGHTCACHE_CONNECTIONS``, else HTTP_CONNECTIONS."""
    text = os.environ.get(ENV_CONNECTIONS, "").strip()
    if not text:
        return HTTP_CONNECTIONS
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise InvalidSourceError(
            f"{ENV_CONNECTIONS}={text!r} is not a whole number of connections (1 or more); fix or unset it"
        )
    return int(text)


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


#: A URL download that receives fewer than HTTP_STALL_BYTES in HTTP_STALL_SECONDS is stalled (a
#: trickle that never trips the read timeout): the attempt is abandoned and counts as a failure.
HTTP_STALL_SECONDS = 120.0
HTTP_STALL_BYTES = 1024 * 1024

#: Environment variables bounding the Hub's answers (seconds): each request's connect and read
#: timeout, and the deadline of a whole step (resolving a revision, listing a commit's files).
ENV_HUB_TIMEOUT = "WEIGHTCACHE_HUB_TIMEOUT"
ENV_HUB_DEADLINE = "WEIGHTCACHE_HUB_DEADLINE"
HUB_TIMEOUT_SECONDS = 30.0
HUB_DEADLINE_SECONDS = 120.0


def hub_timeouts() -> tuple[float, float]:
    """``(request timeout, step deadline)`` for the Hub, from the environment or the defaults."""
    return (
        _positive_seconds(ENV_HUB_TIMEOUT, HUB_TIMEOUT_SECONDS),
        _positive_seconds(ENV_HUB_DEADLINE, HUB_DEADLINE_SECONDS),
    )


def _positive_seconds(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise InvalidSourceError(f"{name}={text!r} is not a positive number of seconds; fix or unset it")
    return value
