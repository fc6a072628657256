"""Host staging memory for device loads, allocated once per process and lent to one load at a time.

Pinning memory is a driver call that maps and locks every page, and torch's caching host
allocator (``ATen/core/CachingHostAllocator.h``) rounds every pinned allocation up to a
power of two and keeps the block cached after it is freed. So a load that allocates its
buffers on every call pays the pinning each time and holds the rounded size anyway. Here the
block is allocated once, at exactly a power of two (nothing lost to the rounding), cut into as
many buffers as fit, and reused by every later load of the process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch


def power_of_two_at_least(nbytes: int) -> int:
    """The smallest power of two ``>= nbytes``: the size torch's host allocator really holds."""
    return 1 << max(0, nbytes - 1).bit_length()


class HostStaging:
    """One host block, grown to a power of two when a load needs more, lent to one load at a time.

    A load that finds the block lent (two loads in two threads at once) gets a block of its own
    for the call; torch's allocator caches that too, so it is reused by the next such load.
    """

    def __init__(self, allocate: Callable[[int], torch.Tensor]) -> None:
        self._allocate = allocate
        self._block: torch.Tensor | None = None
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Bytes held between loads (0 before the first)."""
        return 0 if self._block is None else self._block.numel()

    @contextmanager
    def lend(self, nbytes: int) -> Iterator[torch.Tensor]:
        """A ``uint8`` host tensor of at least ``nbytes`` (a power of two), for the ``with`` block."""
        size = power_of_two_at_least(nbytes)
        if not self._lock.acquire(blocking=False):
            yield self._allocate(size)
            return
        try:
            if self._block is None or self._block.numel() < size:
                self._block = None  # freed before the larger one is allocated
                self._block = self._allocate(size)
            yield self._block[:size]  # a block grown by an earlier, larger load: only what was asked
        finally:
            self._lock.release()


_SHARED: dict[bool, HostStaging] = {}
_SHARED_LOCK = threading.Lock()


def shared_staging(pinned: bool) -> HostStaging:
    """The process's staging block: pinned (for asynchronous CUDA copies) or pageable."""
    with _SHARED_LOCK:
        if pinned not in _SHARED:
            _SHARED[pinned] = HostStaging(
                lambda nbytes: torch.empty(nbytes, dtype=torch.uint8, pin_memory=pinned)
            )
        return _SHARED[pinned]
