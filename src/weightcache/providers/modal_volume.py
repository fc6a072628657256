"""``ModalVolumeStore``: entries on a Modal Volume, shared by every container of an app.

Inside a container::

    volume = modal.Volume.from_name("jaguar-model-weights", create_if_missing=True)

    @app.cls(volumes={"/cache": volume})
    class Model:
        @modal.enter()
        def load(self):
            cache = WeightCache(ModalVolumeStore(volume, "/cache"))
            self.entry = cache.ensure("hf://shuttleai/shuttle-jaguar")

A container sees the Volume as it was when it started, plus its own writes; other
containers' commits appear only after ``reload()``, which Modal refuses while files on the
Volume are open. So: a hit reads a manifest and stats files, never reloading or committing;
a miss reloads once (other containers may have published it), populates under a lease other
containers respect (:mod:`.modal_lease`), then commits. This module imports nothing from
``modal``: it only calls ``commit()`` and ``reload()`` on the object it is given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from ..errors import CommitError
from ..fsutil import store_write_errors
from ..layout import short_hash
from ..verify import load_manifest
from .base import Store
from .local_store import LeaseLock
from .modal_lease import LeaseSettings, VolumeLease

logger = logging.getLogger(__name__)

#: Modal's guidance for v1 Volumes: keep under 50,000 files (the hard limit is 500,000).
V1_FILE_GUIDANCE = 50_000


class MountedVolume(Protocol):
    """What the store needs from a Volume mounted in this container (a ``modal.Volume``)."""

    def commit(self) -> None:
        """Persist this container's changes."""

    def reload(self) -> None:
        """See other containers' commits."""


class ModalVolumeStore(Store):
    """A store on the Modal Volume ``volume``, mounted in this container at ``mount_path``.

    ``lease`` tunes single flight across containers (``None`` turns it off: each container
    that misses populates, which is still correct). A failing commit is retried
    ``commit_attempts`` times with exponential backoff from ``commit_backoff_seconds``, then
    raises :class:`CommitError`. ``max_files`` is the file count past which a warning is
    logged (Modal's v1 guidance; ``None`` for v2 Volumes, which have no limit). Processes of
    this container coordinate through lock files in ``lock_dir`` (local disk, never the
    Volume: an open lock file would make every reload fail).
    """

    def __init__(
        self,
        volume: MountedVolume,
        mount_path: str | os.PathLike[str],
        *,
        lease: LeaseSettings | None = LeaseSettings(),  # noqa: B008  (frozen, so sharing it is safe)
        commit_attempts: int = 5,
        commit_backoff_seconds: float = 1.0,
        max_files: int | None = V1_FILE_GUIDANCE,
        lock_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if not (callable(getattr(volume, "commit", None)) and callable(getattr(volume, "reload", None))):
            raise TypeError("volume must be a modal.Volume (an object with commit() and reload())")
        super().__init__(mount_path)
        self.volume = volume
        self.lease = lease
        self._commit_attempts = max(1, commit_attempts)
        self._commit_backoff = commit_backoff_seconds
        self._max_files = max_files
        self._files_warned_at = 0
        default_locks = Path(tempfile.gettempdir()) / "weightcache-locks" / short_hash(str(self.root))
        self._lock_dir = Path(lock_dir) if lock_dir is not None else default_locks

    def describe(self) -> str:
        """``Modal Volume 'NAME' at /mount``."""
        name = getattr(self.volume, "name", None)
        return (
            f"Modal Volume {name!r} at {self.root}"
            if isinstance(name, str)
            else f"Modal Volume at {self.root}"
        )

    def refresh(self) -> None:
        """Reload the Volume to see other containers' commits (skipped, with a warning, if refused)."""
        self.try_reload()

    def persist(self) -> None:
        """Commit, retrying with backoff; raise :class:`CommitError` if every attempt fails."""
        self._warn_if_many_files()
        for attempt in range(1, self._commit_attempts + 1):
            try:
                self.volume.commit()
                return
            except Exception as exc:  # modal raises RuntimeError or its own errors; all mean "not saved"
                failure = exc
                if attempt < self._commit_attempts:
                    delay = self._commit_backoff * 2 ** (attempt - 1)
                    logger.warning(
                        "commit of %s failed (%s: %s); retrying in %.1fs",
                        self.describe(),
                        type(exc).__name__,
                        exc,
                        delay,
                    )
                    time.sleep(delay)
        raise CommitError(
            f"could not commit {self.describe()} after {self._commit_attempts} attempts "
            f"({type(failure).__name__}: {failure}); what it published stays in this container (ensure() "
            "again finds it) but other containers will not see it, so check the Volume and retry"
        )

    @contextlib.contextmanager
    def populate_lock(self, key: str, *, timeout: float | None) -> Iterator[LeaseLock]:
        """A local lock for this container's processes, then the Volume lease for other containers."""
        started = time.monotonic()
        with store_write_errors(f"lock directory {self._lock_dir}"):
            self._lock_dir.mkdir(parents=True, exist_ok=True)
        local = LeaseLock(
            self._lock_dir / f"{key}.lock", timeout=timeout, description=f"{key} in {self.describe()}"
        )
        with local:
            if self.lease is None:
                yield local
                return
            with VolumeLease(self, key, self.lease, timeout=_time_left(timeout, started)):
                self.prepare_for_writes()  # a reload may have dropped directories not yet committed
                yield local

    def use_lock_path(self, key: str) -> Path:
        """In-use holds stay on local disk too: a hold is an open file, and one on the Volume stops reload."""
        return self._lock_dir / f"{key}.use"

    def try_reload(self) -> bool:
        """Reload the Volume; on failure log what was skipped and return ``False``.

        A reload only lets this container see more; failing one (Modal refuses while files
        on the Volume are open) costs at worst a duplicate populate, never a wrong result.
        """
        try:
            self.volume.reload()
        except Exception as exc:
            logger.warning(
                "skipped reloading %s (%s: %s), so commits of other containers since this one "
                "started are not visible and an entry they published may be fetched again; "
                "close files on the Volume before ensure() to avoid this",
                self.describe(),
                type(exc).__name__,
                exc,
            )
            return False
        return True

    def commit_once(self, purpose: str) -> bool:
        """Commit once for bookkeeping (a lease); on failure log it and return ``False``."""
        try:
            self.volume.commit()
        except Exception as exc:
            logger.warning(
                "commit of %s failed while %s (%s: %s)", self.describe(), purpose, type(exc).__name__, exc
            )
            return False
        return True

    def _warn_if_many_files(self) -> None:
        if self._max_files is None or not self.layout.entries_dir.is_dir():
            return
        manifests = [load_manifest(self.layout, path.name) for path in self.layout.entries_dir.iterdir()]
        count = sum(len(manifest.files) + 1 for manifest in manifests if manifest is not None)
        if count > self._max_files and count > self._files_warned_at:
            self._files_warned_at = count
            logger.warning(
                "%s now holds %d files in weightcache entries, past Modal's guidance of %d for v1 "
                "Volumes (500,000 is the hard limit); remove old versions (WeightCache.gc) or move to a "
                "v2 Volume and pass max_files=None",
                self.describe(),
                count,
                self._max_files,
            )


def _time_left(timeout: float | None, started: float) -> float | None:
    """What remains of ``timeout`` for the Volume lease; 0 stays 0 (gc's "is it busy?" probe)."""
    if timeout is None or timeout == 0:
        return timeout
    return max(timeout - (time.monotonic() - started), 1e-3)
