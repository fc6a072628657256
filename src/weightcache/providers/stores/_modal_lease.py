"""Single flight across Modal containers, on ``modal.Dict``'s atomic create.

A Modal Volume has no lock, but a ``modal.Dict`` has an atomic create-if-absent:
``Dict.put(key, value, skip_if_exists=True)`` returns whether it created the key
(``_Dict.put`` in modal/dict.py sends ``DictUpdateRequest(if_not_exists=...)`` and returns
the server's ``created``). The lease on an entry is a sequence of *generations*, one Dict key
each (``<namespace>/<entry key>/<generation>``):

1. **Acquire.** Read the current generation. If its key is absent, create it; exactly one
   container's create succeeds, and that container holds the lease.
2. **Wait.** If a holder's record is there, poll it (a Dict read, no Volume reload): after a
   twentieth of the time waited so far, at least ``FIRST_POLL_SECONDS`` and at most
   ``poll_seconds``. So a short fetch is noticed within a twentieth of its time and a long one
   within ``poll_seconds``, at no more than one read per ``poll_seconds`` once it runs long.
   When the record says *released*, reload the Volume: the entry is usually there.
3. **Take over.** A holder heartbeats by bumping a counter in its record every
   ``heartbeat_seconds``. A waiter that sees the counter unchanged for ``lease_seconds`` of
   its *own* monotonic clock (no clock comparison across machines) moves to the next
   generation and creates that key: again exactly one container wins, however many saw the
   holder die. A holder that finds the next generation's key exists has lost its lease.

Correctness never depends on the lease: two containers that both populate each publish a
complete entry, and the last commit wins whole. Without a Dict, each container that misses
populates on its own (see :class:`~weightcache.providers.stores.modal_volume.ModalVolumeStore`).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from ..._core.verify import stat_problems
from ...errors import LockTimeoutError
from ._modal_errors import PROGRAMMING_ERRORS

if TYPE_CHECKING:
    from .modal_volume import ModalVolumeStore

logger = logging.getLogger(__name__)

#: A waiter's first pauses between reads of the holder's record; they grow with the wait.
FIRST_POLL_SECONDS = 0.02
#: A waiter pauses for this share of the time it has waited so far (up to ``poll_seconds``).
POLL_SHARE_OF_WAIT = 0.05


class LeaseDict(Protocol):
    """What the lease needs from a ``modal.Dict`` (or :class:`~weightcache.testing.FakeModalDict`)."""

    def get(self, key: Any, default: Any = None) -> Any:
        """The value at ``key``, or ``default``."""

    def put(self, key: Any, value: Any, *, skip_if_exists: bool = False) -> bool:
        """Store ``value``; with ``skip_if_exists``, only if absent. Return whether it was stored."""


@dataclass(frozen=True)
class LeaseSettings:
    """Timings of the cross-container lease; the defaults suit a 30 GB model fetched for minutes.

    ``lease_seconds``: how long a waiter watches a holder's heartbeat stand still before
    taking over (generous: a container busy writing gigabytes may be slow to renew).
    ``heartbeat_seconds``: how often the holder renews. ``poll_seconds``: the longest pause
    between a waiter's reads of the holder's record (one Dict read each); early in a wait the
    pauses are shorter (a twentieth of the time waited so far).
    """

    lease_seconds: float = 60.0
    heartbeat_seconds: float = 5.0
    poll_seconds: float = 0.25

    def __post_init__(self) -> None:
        if min(self.lease_seconds, self.heartbeat_seconds, self.poll_seconds) <= 0:
            raise ValueError("lease timings must be positive numbers of seconds")
        if self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError(
                "heartbeat_seconds must be shorter than lease_seconds, or every lease goes stale"
            )


class DictLease:
    """The right to populate ``key`` on a Modal Volume, coordinated through ``leases`` (a Dict).

    Entering returns once the entry is visible, or this container holds the lease.
    ``timeout=0`` only checks for a live holder (raising :class:`LockTimeoutError` if there is
    one; for this probe a holder is live if it renewed within ``lease_seconds`` by wall clock)
    and claims nothing.
    """

    def __init__(
        self,
        store: ModalVolumeStore,
        leases: LeaseDict,
        key: str,
        settings: LeaseSettings,
        *,
        timeout: float | None,
    ) -> None:
        self._store = store
        self._leases = leases
        self._key = key
        self._settings = settings
        self._timeout = timeout
        self._prefix = f"{store.lease_namespace}/{key}"
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._generation: int | None = None
        self._heartbeat: threading.Thread | None = None
        self._stop = threading.Event()
        #: Set by the heartbeat when a later generation exists: another container took over.
        self.lost = False

    @property
    def generation(self) -> int | None:
        """The generation this container holds (its fencing token), or ``None``."""
        return self._generation

    def __enter__(self) -> DictLease:
        try:
            if self._timeout == 0:
                self._refuse_if_held()
            else:
                self._acquire(None if self._timeout is None else time.monotonic() + self._timeout)
        except self._store.platform_errors as exc:
            if isinstance(exc, PROGRAMMING_ERRORS):
                raise
            logger.warning(
                "could not use the lease Dict for %s (%s: %s); populating without coordinating, "
                "which is safe but may fetch twice",
                self._key,
                type(exc).__name__,
                exc,
            )
        return self

    def _acquire(self, deadline: float | None) -> None:
        """Return once the entry is visible or this container holds the lease."""
        generation = int(self._leases.get(f"{self._prefix}/head", 0))
        watched: tuple[int, int, float] | None = None  # generation, beat, when it last changed
        since = time.monotonic()
        while True:
            record = self._leases.get(self._generation_key(generation))
            if record is None:
                if self._leases.put(self._generation_key(generation), self._record(0), skip_if_exists=True):
                    self._hold(generation)
                    return
                continue  # another container created it first: read who
            if record.get("released"):
                if self._store.try_reload() and self._entry_visible():
                    return
                generation += 1  # released without the entry (it failed): the next generation
                continue
            beat = int(record.get("beat", 0))
            if watched is None or watched[:2] != (generation, beat):
                if watched is None or watched[0] != generation:
                    logger.info("waiting for %s, which is populating %s", record.get("holder"), self._key)
                watched = (generation, beat, time.monotonic())
            elif time.monotonic() - watched[2] > self._settings.lease_seconds:
                logger.warning(
                    "lease on %s held by %s stopped renewing %.0fs ago; taking over",
                    self._key,
                    record.get("holder"),
                    time.monotonic() - watched[2],
                )
                generation += 1
                continue
            self._sleep_or_give_up(deadline, time.monotonic() - since)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._heartbeat is None or self._generation is None:
            return
        self._stop.set()
        self._heartbeat.join()
        if not self.lost:
            try:
                self._leases.put(self._generation_key(self._generation), self._record(-1, released=True))
            except self._store.platform_errors as exc:  # waiters take over once the heartbeat stops
                logger.warning("could not release the lease on %s: %s", self._key, exc)

    def _hold(self, generation: int) -> None:
        self._generation = generation
        self._leases.put(f"{self._prefix}/head", generation)  # a hint where to start reading
        self._heartbeat = threading.Thread(
            target=self._renew, name=f"weightcache-lease-{self._key}", daemon=True
        )
        self._heartbeat.start()

    def _renew(self) -> None:
        assert self._generation is not None
        beat = 0
        while not self._stop.wait(self._settings.heartbeat_seconds):
            try:
                if self._leases.get(self._generation_key(self._generation + 1)) is not None:
                    self.lost = True
                    logger.warning(
                        "lost the lease on %s: another container took over; both entries are valid", self._key
                    )
                    return
                beat += 1
                self._leases.put(self._generation_key(self._generation), self._record(beat))
            except self._store.platform_errors as exc:  # the next heartbeat tries again
                logger.warning("could not renew the lease on %s: %s", self._key, exc)

    def _record(self, beat: int, *, released: bool = False) -> dict[str, Any]:
        return {"holder": self._holder, "beat": beat, "renewed_at": time.time(), "released": released}

    def _generation_key(self, generation: int) -> str:
        return f"{self._prefix}/{generation}"

    def _entry_visible(self) -> bool:
        manifest = self._store.load_manifest(self._key)
        return manifest is not None and not stat_problems(self._store.layout.files_dir(self._key), manifest)

    def _refuse_if_held(self) -> None:
        generation = int(self._leases.get(f"{self._prefix}/head", 0))
        record = self._leases.get(self._generation_key(generation))
        if record is None or record.get("released"):
            return
        if time.time() - float(record.get("renewed_at", 0)) <= self._settings.lease_seconds:
            raise LockTimeoutError(
                f"{self._key} is being populated by {record.get('holder')}; try again later"
            )

    def _sleep_or_give_up(self, deadline: float | None, waited: float) -> None:
        pause = min(self._settings.poll_seconds, max(FIRST_POLL_SECONDS, POLL_SHARE_OF_WAIT * waited))
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
