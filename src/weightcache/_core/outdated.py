"""Which cached entries of moving references (a branch, an unpinned URL) are behind their source now.

A warm ``ensure()`` of such a reference asks its source nothing: the store remembers which version
the reference resolved to (a ref). Checking for updates is therefore explicit: this module
resolves every remembered reference now and compares. ``ensure(..., refresh=True)`` then moves one.
"""

from __future__ import annotations

from functools import partial

from pydantic import BaseModel

from .._transport.parallel import run_parallel
from ..errors import WeightCacheError
from ..providers.base import Store
from .constants import IO_THREADS
from .refs import Ref
from .registry import parse_source


class UpdateCheck(BaseModel):
    """One remembered reference, checked against its source."""

    source: str
    key: str
    cached_version: str
    latest_version: str | None = None
    outdated: bool = False
    error: str | None = None


def check_for_updates(store: Store, *, threads: int = IO_THREADS) -> list[UpdateCheck]:
    """Resolve each cached reference that can move (offline-first and not pinned) and compare versions.

    A reference whose source cannot be asked (unreachable, refused, unknown scheme) is reported
    with ``error`` set rather than stopping the others.
    """
    store.refresh()
    refs = [ref for ref in store.all_refs() if store.load_manifest(ref.key) is not None]
    checks = run_parallel([partial(_check, ref) for ref in refs], threads=threads)
    return sorted((check for check in checks if check is not None), key=lambda check: check.source)


def _check(ref: Ref) -> UpdateCheck | None:
    check = UpdateCheck(source=ref.uri, key=ref.key, cached_version=ref.version)
    try:
        source = parse_source(ref.uri)
        if not source.offline_first or source.pinned_version() is not None:
            return None
        latest = source.resolve().version
    except WeightCacheError as exc:
        return check.model_copy(update={"error": str(exc)})
    return check.model_copy(update={"latest_version": latest, "outdated": latest != ref.version})
