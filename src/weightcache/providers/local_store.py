"""The embedded default store: a directory on any mounted filesystem (local disk, NFS, a k8s volume)."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from ..constants import LEASE_SECONDS
from ..errors import LockTimeoutError, StoreError
from ..fsutil import store_write_errors
from .base import Store


class LeaseLock:
    """A populate lock backed by filelock's :class:`~filelock.SoftFileLease`.

    A lease with a heartbeat: a holder killed on this host is detected at once (its pid is
    gone), one on another host once its lease has gone unrefreshed for ``lease_seconds``, so
    a crashed populate never blocks the others for long.
    """

    def __init__(self, path: Path, *, timeout: float | None, description: str) -> None:
        from filelock import SoftFileLease  # imported here: the warm path never locks, so never pays for it

        self._lease = SoftFileLease(
            path, lease_duration=LEASE_SECONDS, timeout=-1 if timeout is None else timeout
        )
        self._timeout = timeout
        self._description = description

    def __enter__(self) -> LeaseLock:
        from filelock import Timeout

        try:
            with store_write_errors(self._description):
                self._lease.acquire()
        except Timeout as exc:
            raise LockTimeoutError(
                f"waited {self._timeout:g}s for another process populating {self._description}; "
                "it may still be downloading, so wait longer (lock_timeout) or check that process"
            ) from exc
        return self

    def check(self) -> None:
        """Raise if another process took over this lease (ours went unrefreshed too long)."""
        if self._lease.compromise is not None:
            raise StoreError(
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
