"""The embedded default store: a directory on any mounted filesystem (local disk, NFS, a k8s volume)."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from types import TracebackType

from ..._core.constants import EMPTY_LEASE_SECONDS, LEASE_POLL_SECONDS, LEASE_SECONDS
from ..._transport.fsutil import store_write_errors
from ...errors import LeaseLostError, LockTimeoutError
from ..base import Store

logger = logging.getLogger(__name__)


class LeaseLock:
    """A populate lock backed by filelock's :class:`~filelock.SoftFileLease`.

    A lease with a heartbeat: a holder killed on this host is detected at once (its pid is
    gone), one on another host once its lease has gone unrefreshed for ``lease_seconds``, so
    a crashed populate never blocks the others for long.
    """

    def __init__(self, path: Path, *, timeout: float | None, description: str) -> None:
        from filelock import SoftFileLease  # imported here: the warm path never locks, so never pays for it

        self._path = path
        self._lease = SoftFileLease(
            path, lease_duration=LEASE_SECONDS, timeout=-1 if timeout is None else timeout
        )
        self._timeout = timeout
        self._description = description
        self._empty_since: tuple[tuple[int, int], float] | None = None

    def __enter__(self) -> LeaseLock:
        from filelock import Timeout

        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while True:
            left = LEASE_POLL_SECONDS if deadline is None else deadline - time.monotonic()
            wait = max(min(LEASE_POLL_SECONDS, left), 0)  # never negative: filelock reads that as forever
            try:
                with store_write_errors(self._description):
                    self._lease.acquire(timeout=wait)
                return self
            except Timeout as exc:
                if deadline is not None and time.monotonic() >= deadline:
                    raise LockTimeoutError(
                        f"waited {self._timeout:g}s for another process populating {self._description}; "
                        "it may still be downloading, so wait longer (lock_timeout) or check that process"
                    ) from exc
                self._remove_if_abandoned_empty()

    def _remove_if_abandoned_empty(self) -> None:
        """Remove a lease file a process was killed before writing its record into.

        filelock takes an empty lease file for a live holder of an old release and waits for it
        forever. Every holder here writes its record microseconds after creating the file, so one
        seen empty and unchanged for :data:`EMPTY_LEASE_SECONDS` is abandoned.
        """
        try:
            info = os.stat(self._path)
        except FileNotFoundError:
            return
        seen = (info.st_ino, info.st_mtime_ns)
        if info.st_size or self._empty_since is None or self._empty_since[0] != seen:
            self._empty_since = None if info.st_size else (seen, time.monotonic())
            return
        if time.monotonic() - self._empty_since[1] < EMPTY_LEASE_SECONDS:
            return
        aside = self._path.with_name(f"{self._path.name}.abandoned.{os.getpid()}")
        self._empty_since = None
        with contextlib.suppress(OSError):
            os.rename(self._path, aside)
            moved = os.stat(aside)
            if (moved.st_ino, moved.st_mtime_ns) == seen and not moved.st_size:
                os.unlink(aside)
                logger.warning("removed lease file %s, left empty by a killed process", self._path)
                return
            os.link(aside, self._path)  # not the file judged (replaced meanwhile): put it back
            os.unlink(aside)

    def check(self) -> None:
        """Raise if another process took over this lease (ours went unrefreshed too long)."""
        if self._lease.compromise is not None:
            raise LeaseLostError(
                f"lost the populate lease on {self._description} ({self._lease.compromise.reason}); "
                "another process took over, so this populate stops without publishing"
            )

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lease.release()


class LocalStore(Store):
    """A store in a directory; processes on this host (or sharing the mount) coordinate by leases.

    ``LocalStore("/cache")`` keeps entries under ``/cache/entries`` and its bookkeeping under
    ``/cache/.weightcache``. Nothing is written until the first miss.
    """

    def populate_lock(self, key: str, *, timeout: float | None) -> LeaseLock:
        """A lease on ``key`` in the store's ``.weightcache/locks`` directory."""
        with store_write_errors(self.describe()):
            self.layout.locks_dir.mkdir(parents=True, exist_ok=True)
        return LeaseLock(
            self.layout.locks_dir / f"{key}.lock", timeout=timeout, description=f"{key} in {self.describe()}"
        )
