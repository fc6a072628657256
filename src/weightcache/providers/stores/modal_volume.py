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
containers respect (:mod:`.modal_lease`, on a ``modal.Dict``), then commits. The store only
calls ``commit()`` and ``reload()`` on the Volume it is given; it imports ``modal`` only to
tell Modal's errors from programming errors, to check the mount path and to open the default
lease Dict.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Literal, Protocol

from ..._core.layout import short_hash
from ..._transport.fsutil import store_write_errors
from ...errors import CommitError
from ...manifest import FileRecord
from ..base import Store
from ._modal_errors import PROGRAMMING_ERRORS, platform_errors
from ._modal_lease import DictLease, LeaseDict, LeaseSettings
from ._modal_mounts import check_volume_mounted
from .local_store import LeaseLock

logger = logging.getLogger(__name__)

#: Modal's guidance for v1 Volumes: keep under 50,000 inodes (the hard limit is 500,000).
V1_FILE_GUIDANCE = 50_000
#: The ``modal.Dict`` that holds leases when none is given (created in the workspace if missing).
DEFAULT_LEASE_DICT = "weightcache-leases"
#: The server's message when files are open (modal/volume.py, ``_Volume.reload``). ``commit()``
#: raises it from the reload that follows a commit, so the commit itself has persisted.
OPEN_FILES_MESSAGE = "there are open files preventing the operation"


class MountedVolume(Protocol):
    """What the store needs from a Volume mounted in this container (a ``modal.Volume``)."""

    def commit(self) -> None:
        """Persist this container's changes."""

    def reload(self) -> None:
        """See other containers' commits."""


class ModalVolumeStore(Store):
    """A store on the Modal Volume ``volume``, mounted in this container at ``mount_path``.

    Single flight across containers takes a lease in ``lease_dict``, a ``modal.Dict``; the
    default ``"auto"`` opens the Dict named :data:`DEFAULT_LEASE_DICT` for a real
    ``modal.Volume`` and uses none for other objects. With no Dict, or ``lease=None``, each
    container that misses populates on its own, which is still correct. A commit failing
    with Modal's or the OS's error is retried ``commit_attempts`` times with exponential
    backoff from ``commit_backoff_seconds``, then raises :class:`CommitError`; a commit that
    persisted but could not reload afterwards is not retried. ``max_files`` is the inode
    count past which a warning is logged (Modal's v1 guidance; ``None`` for v2 Volumes).
    Processes of this container coordinate through lock files in ``lock_dir`` (local disk,
    never the Volume: an open lock file would make every reload fail). Inside a Modal
    container, ``mount_path`` must be on a mounted Volume (:class:`VolumeNotMountedError`).
    """

    def __init__(
        self,
        volume: MountedVolume,
        mount_path: str | os.PathLike[str],
        *,
        lease: LeaseSettings | None = LeaseSettings(),  # noqa: B008  (frozen, so sharing it is safe)
        lease_dict: LeaseDict | Literal["auto"] | None = "auto",
        commit_attempts: int = 5,
        commit_backoff_seconds: float = 1.0,
        max_files: int | None = V1_FILE_GUIDANCE,
        lock_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if not (callable(getattr(volume, "commit", None)) and callable(getattr(volume, "reload", None))):
            raise TypeError("volume must be a modal.Volume (an object with commit() and reload())")
        super().__init__(mount_path)
        check_volume_mounted(volume, self.root)
        self.volume = volume
        self.lease = lease
        self.lease_dict = _default_lease_dict(volume) if lease_dict == "auto" else lease_dict
        #: What a Volume or Dict call raises when Modal or the OS fails; anything else propagates.
        self.platform_errors = platform_errors()
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
            except self.platform_errors as exc:
                if isinstance(exc, PROGRAMMING_ERRORS):
                    raise
                if _persisted_before_reload(exc):
                    logger.warning(
                        "committed %s, but the reload that follows a commit was refused because files on "
                        "the Volume are open (%s), so this container does not see other containers' commits "
                        "until a reload succeeds",
                        self.describe(),
                        exc,
                    )
                    return
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
            if self.lease is None or self.lease_dict is None:
                yield local
                return
            with DictLease(self, self.lease_dict, key, self.lease, timeout=_time_left(timeout, started)):
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
        except self.platform_errors as exc:
            if isinstance(exc, PROGRAMMING_ERRORS):
                raise
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

    @property
    def lease_namespace(self) -> str:
        """What prefixes this store's keys in the lease Dict: the Volume's name (else the store's path).

        Not the mount path: two apps may mount one Volume at different paths. Two stores on
        one Volume share a namespace, which only makes their populates of one key take turns.
        """
        name = getattr(self.volume, "name", None)
        return f"volume:{name}" if isinstance(name, str) else f"path:{self.root}"

    def _warn_if_many_files(self) -> None:
        if self._max_files is None:
            return
        count = sum(_inodes(manifest.files) for manifest in self.manifests())
        if count > self._max_files and count > self._files_warned_at:
            self._files_warned_at = count
            logger.warning(
                "%s now holds %d inodes in weightcache entries, past Modal's guidance of %d for v1 "
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


def _persisted_before_reload(exc: BaseException) -> bool:
    """Whether ``commit()`` raised from its reload step, after the commit itself persisted.

    modal/volume.py ``_Volume.commit``: VolumeCommit, then (unless ``skip_reload``) a reload,
    whose refusal for open files surfaces as ``RuntimeError`` with the server's message.
    """
    return isinstance(exc, RuntimeError) and OPEN_FILES_MESSAGE in str(exc)


def _inodes(files: list[FileRecord]) -> int:
    """Inodes an entry takes on the Volume: its files, their directories, the entry's own three."""
    paths = [PurePosixPath(record.path) for record in files]
    directories = {parent for path in paths for parent in path.parents if str(parent) != "."}
    return len(paths) + len(directories) + 3


def _default_lease_dict(volume: object) -> LeaseDict | None:
    """The workspace's lease Dict for a real ``modal.Volume``; ``None`` for anything else."""
    try:
        import modal
    except ImportError:
        return None
    if not isinstance(volume, modal.Volume):
        return None
    return modal.Dict.from_name(DEFAULT_LEASE_DICT, create_if_missing=True)  # lazy: no call until used
