"""Single flight across Modal containers: a lease record committed to the Volume.

A Modal Volume has no lock; containers see each other's writes only through ``commit()``
and ``reload()``. So a container about to populate an entry coordinates through a small
record at ``.weightcache/leases/<key>.json``:

1. **Wait.** Reload; if the entry is there, stop. If another container's record is fresh
   (renewed within the ``lease_seconds`` it promised), reload again every ``poll_seconds``.
2. **Claim.** Otherwise write our record, commit, wait ``settle_seconds``, reload and read
   the record back. Claims that raced were merged last-writer-wins, so every claimant reads
   the same winner; the others go back to waiting.
3. **Hold.** The winner rewrites and commits its record every ``heartbeat_seconds`` while it
   fetches, and removes it (with a commit) when done. A crashed holder stops renewing, so the
   others take over ``lease_seconds`` after its last renewal.

Correctness never depends on the lease. Two containers that both populate each publish a
complete entry (files, then the manifest) and each commit carries all of its files, so
the last commit wins whole and the entry is valid either way; the lease only saves the
duplicate download. Clocks of Modal containers are NTP-synchronised: the staleness test
compares a record's renewal time with this container's clock, so skew only needs to be
small next to ``lease_seconds``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING

from pydantic import BaseModel, ValidationError

from ..errors import LockTimeoutError
from ..fsutil import atomic_write_bytes
from ..verify import load_manifest, stat_problems

if TYPE_CHECKING:
    from .modal_volume import ModalVolumeStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseSettings:
    """Timings of the cross-container lease; the defaults suit a 30 GB model fetched for minutes.

    ``lease_seconds``: how long after its last renewal a holder is presumed dead (generous:
    a commit of a container busy writing gigabytes can be slow). ``heartbeat_seconds``: how
    often the holder renews. ``poll_seconds``: how often waiters reload. ``settle_seconds``:
    how long a claimant waits for racing claims to land before reading back who won.
    """

    lease_seconds: float = 120.0
    heartbeat_seconds: float = 20.0
    poll_seconds: float = 5.0
    settle_seconds: float = 3.0

    def __post_init__(self) -> None:
        if min(self.lease_seconds, self.heartbeat_seconds, self.poll_seconds, self.settle_seconds) <= 0:
            raise ValueError("lease timings must be positive numbers of seconds")
        if self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError(
                "heartbeat_seconds must be shorter than lease_seconds, or every lease goes stale"
            )


class LeaseRecord(BaseModel):
    """Who is populating an entry, as committed to the Volume."""

    key: str
    holder: str  # host:pid:token, so a person reading the Volume can tell which container it is
    renewed_at: datetime
    lease_seconds: float

    def age(self) -> float:
        """Seconds since the last renewal, by this container's clock."""
        return (datetime.now(timezone.utc) - self.renewed_at).total_seconds()

    def is_stale(self) -> bool:
        """Whether the holder missed renewing within the time it promised."""
        return self.age() > self.lease_seconds


class VolumeLease:
    """The right to populate ``key`` on a Modal Volume, coordinated with other containers.

    Entering returns once the entry is visible, or this container holds the lease, or
    coordinating is impossible (the Volume cannot be reloaded or committed): then it
    populates anyway, which is safe. ``timeout=0`` only checks for a fresh foreign lease
    (raising :class:`LockTimeoutError` if there is one) and claims nothing.
    """

    def __init__(
        self, store: ModalVolumeStore, key: str, settings: LeaseSettings, *, timeout: float | None
    ) -> None:
        self._store = store
        self._key = key
        self._settings = settings
        self._timeout = timeout
        self._path = store.layout.meta_dir / "leases" / f"{key}.json"
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._heartbeat: threading.Thread | None = None
        self._stop = threading.Event()

    def __enter__(self) -> VolumeLease:
        if self._timeout == 0:
            self._refuse_if_held()
            return self
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        waited_for: str | None = None
        while True:
            reloaded = self._store.try_reload()
            if self._entry_visible():
                return self
            if not reloaded:
                self._claim(confirm=False)  # blind, but others can still see us and wait
                return self
            record = self.read()
            if record is None or record.is_stale():
                if record is not None:
                    logger.warning(
                        "lease on %s held by %s went stale (renewed %.0fs ago); taking over",
                        self._key,
                        record.holder,
                        record.age(),
                    )
                if self._claim(confirm=True):
                    return self
                continue
            if waited_for != record.holder:
                waited_for = record.holder
                logger.info("waiting for %s, which is populating %s", record.holder, self._key)
            self._sleep_or_give_up(deadline)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._heartbeat is None:
            return
        self._stop.set()
        self._heartbeat.join()
        record = self.read()
        if record is not None and record.holder == self._holder:
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()
            self._store.commit_once(f"releasing the lease on {self._key}")

    def read(self) -> LeaseRecord | None:
        """The lease record this container currently sees, if any (unreadable counts as none)."""
        with contextlib.suppress(OSError, ValidationError, ValueError):
            return LeaseRecord.model_validate_json(self._path.read_bytes())
        return None

    def _claim(self, *, confirm: bool) -> bool:
        """Write and commit our record; with ``confirm``, read back whether we won. True: go populate."""
        self._write()
        if not self._store.commit_once(f"claiming the lease on {self._key}"):
            # Nobody saw the claim, so nobody waits for us: populate uncoordinated, and keep a
            # later commit from publishing a lease that no heartbeat renews.
            self._path.unlink(missing_ok=True)
            return True
        if confirm:
            time.sleep(self._settings.settle_seconds)
            if self._store.try_reload():
                record = self.read()
                if record is None or record.holder != self._holder:
                    return False
        self._heartbeat = threading.Thread(
            target=self._renew, name=f"weightcache-lease-{self._key}", daemon=True
        )
        self._heartbeat.start()
        return True

    def _renew(self) -> None:
        while not self._stop.wait(self._settings.heartbeat_seconds):
            try:
                self._write()
            except OSError as exc:  # the populate will meet the same problem and report it
                logger.warning("could not renew the lease on %s: %s", self._key, exc)
                continue
            self._store.commit_once(f"renewing the lease on {self._key}")

    def _write(self) -> None:
        record = LeaseRecord(
            key=self._key,
            holder=self._holder,
            renewed_at=datetime.now(timezone.utc),
            lease_seconds=self._settings.lease_seconds,
        )
        self._path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self._path, record.model_dump_json().encode())

    def _entry_visible(self) -> bool:
        manifest = load_manifest(self._store.layout, self._key)
        return manifest is not None and not stat_problems(self._store.layout.files_dir(self._key), manifest)

    def _refuse_if_held(self) -> None:
        record = self.read()
        if record is not None and not record.is_stale():
            raise LockTimeoutError(f"{self._key} is being populated by {record.holder}; try again later")

    def _sleep_or_give_up(self, deadline: float | None) -> None:
        pause = self._settings.poll_seconds
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockTimeoutError(
                    f"waited {self._timeout:g}s for another container populating {self._key} on "
                    f"{self._store.describe()}; it still renews its lease, so wait longer "
                    "(lock_timeout) or check that container's logs"
                )
            pause = min(pause, left)
        time.sleep(pause)
