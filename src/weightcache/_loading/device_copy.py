"""Staged loading onto a device: parallel reads into a few host buffers, copies from them to the device.

On CUDA the buffers are pinned and each chunk's copy is asynchronous on a copy stream of its
own, so the disk (or page cache), the PCIe link and the Python thread all work at once:

* the main thread allocates each file's tensors before submitting its first read, so the
  allocation runs while the earlier files' reads are in flight;
* reader threads ``preadv`` chunks of the files into free buffers, each chunk cut at a
  multiple of ``chunk_bytes`` in the file (page-aligned reads);
* as each read lands, in whatever order the reads complete, the main thread enqueues the
  chunk's pieces as host-to-device copies on the copy stream and records an event; once a
  file's last chunk is enqueued, its dtype cast is enqueued too;
* a buffer is handed to a new read only after its event has completed, so a copy never reads
  a buffer that is being refilled.

The buffers are cut from one host block per process (:mod:`weightcache._loading.pinned_pool`),
allocated at the first load and reused by the later ones: a power of two of at least
``(threads + 2) x chunk_bytes``, whatever the model.

Tensors are allocated on the caller's current stream (so the memory belongs to it, as any
tensor the caller makes), and the copy stream waits for that stream before writing into them.
One copy stream suffices: host-to-device copies share one copy engine, and the reads are what
needs parallelism. The call returns once every copy has completed.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from queue import SimpleQueue
from typing import Any

import torch

from .._core.constants import CHUNK_BYTES
from .pinned_pool import HostStaging, shared_staging
from .safetensors_format import Chunk, SafetensorsLayout, plan_chunks
from .tensor_io import byte_view, cast, empty_tensors, host_memory, read_exactly, will_read


class Transfer:
    """How bytes go from host buffers to the device: pinned and asynchronous on CUDA, else synchronous."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def start_writes(self) -> None:
        """Order the copies enqueued from now on after the work already on the caller's stream.

        Called after allocating tensors: their memory may have been freed by kernels that are
        still running on the caller's stream.
        """
        if self.stream is not None:
            self.stream.wait_stream(torch.cuda.current_stream(self.device))

    def copy(self, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Enqueue a copy of each ``(target on the device, source on the host)`` pair."""
        with torch.cuda.stream(self.stream) if self.stream is not None else nullcontext():
            for target, source in pairs:
                target.copy_(source, non_blocking=self.stream is not None)

    def fence(self) -> Any:
        """A marker after the copies enqueued so far (``None`` when copies are synchronous)."""
        return self.stream.record_event() if self.stream is not None else None

    def wait(self, fence: Any) -> None:
        """Block until the copies before ``fence`` have finished reading their buffers."""
        if fence is not None:
            fence.synchronize()

    def publish(self) -> None:
        """Order the caller's later work after the copies enqueued so far (without blocking)."""
        if self.stream is not None:
            torch.cuda.current_stream(self.device).wait_stream(self.stream)

    def synchronize(self) -> None:
        """Block until every copy enqueued has finished."""
        if self.stream is not None:
            self.stream.synchronize()


@dataclass
class _Read:
    file: int
    chunk: Chunk
    buffer: torch.Tensor
    future: Future[None]


class StagedLoad:
    """Load safetensors files onto ``transfer.device`` through a few host buffers of ``chunk_bytes``."""

    def __init__(
        self,
        layouts: list[SafetensorsLayout],
        transfer: Transfer,
        *,
        threads: int,
        dtype: torch.dtype | None,
        chunk_bytes: int = CHUNK_BYTES,
        staging: HostStaging | None = None,
    ) -> None:
        self.layouts = layouts
        self.transfer = transfer
        self.threads = max(1, threads)
        self.dtype = dtype
        self.chunk_bytes = chunk_bytes
        self.staging = staging or shared_staging(pinned=transfer.stream is not None)
        self.plans = [plan_chunks(lay.tensors, chunk_bytes, data_offset=lay.data_offset) for lay in layouts]
        self.results: list[list[torch.Tensor]] = [[] for _ in layouts]
        self._tensors: list[list[torch.Tensor]] = [[] for _ in layouts]
        self._targets: list[list[torch.Tensor]] = [[] for _ in layouts]  # byte views of the tensors
        self._unread = [len(plan) for plan in self.plans]  # chunks of each file not yet copied out
        self._free: deque[torch.Tensor] = deque()
        self._copying: deque[tuple[Any, torch.Tensor]] = deque()
        self._landed: SimpleQueue[_Read] = SimpleQueue()  # reads in the order they complete
        self._in_flight = 0

    @property
    def staging_bytes(self) -> int:
        """Host bytes wanted: a buffer per reader thread and two more, so copies overlap the reads.

        The same for any model, so one process-wide block serves every load (0: nothing to read).
        """
        return self.chunk_bytes * (self.threads + 2) if any(self.plans) else 0

    def run(self) -> list[list[torch.Tensor]]:
        """Read and copy everything; return each file's tensors in its layout's order."""
        if not self.staging_bytes:
            return [self._finish(file) for file in range(len(self.layouts))]
        with self.staging.lend(self.staging_bytes) as host:
            # Every buffer that fits: the block is a power of two, and a spare buffer is a deeper window.
            self._free.extend(
                host[: host.numel() // self.chunk_bytes * self.chunk_bytes].split(self.chunk_bytes)
            )
            descriptors = [os.open(layout.path, os.O_RDONLY) for layout in self.layouts]
            try:
                with ThreadPoolExecutor(self.threads, thread_name_prefix="weightcache-load") as pool:
                    for file, plan in enumerate(self.plans):
                        self._allocate(file)  # while the earlier files' reads are in flight
                        for chunk in plan:
                            self._submit(pool, descriptors[file], file, chunk)
                        if not plan:
                            self._finish(file)
                    while self._in_flight:
                        self._dispatch(self._landed.get())
            finally:
                self.transfer.publish()
                self.transfer.synchronize()
                for descriptor in descriptors:
                    os.close(descriptor)
        return self.results

    def _submit(self, pool: ThreadPoolExecutor, descriptor: int, file: int, chunk: Chunk) -> None:
        buffer = self._acquire()
        layout = self.layouts[file]
        target = host_memory(buffer)[: chunk.length]
        future = pool.submit(_read_chunk, descriptor, target, layout.data_offset + chunk.start, layout.path)
        read = _Read(file, chunk, buffer, future)
        self._in_flight += 1
        future.add_done_callback(lambda _future: self._landed.put(read))
        self._dispatch_landed()

    def _dispatch_landed(self) -> None:
        # Copy out every read that has completed, in whatever order they completed.
        while not self._landed.empty():
            self._dispatch(self._landed.get())

    def _acquire(self) -> torch.Tensor:
        # A free buffer, else one whose copies have finished (waiting for them), else (all being
        # read) copy out the next read to land first: never a buffer that a copy may still be reading.
        if self._free:
            return self._free.popleft()
        if not self._copying:
            self._dispatch(self._landed.get())
        fence, buffer = self._copying.popleft()
        self.transfer.wait(fence)
        return buffer

    def _dispatch(self, read: _Read) -> None:
        self._in_flight -= 1
        read.future.result()
        targets = self._targets[read.file]
        self.transfer.copy(
            [
                (
                    targets[piece.tensor][piece.tensor_offset : piece.tensor_offset + piece.length],
                    read.buffer[piece.chunk_offset : piece.chunk_offset + piece.length],
                )
                for piece in read.chunk.pieces
            ]
        )
        self._copying.append((self.transfer.fence(), read.buffer))
        self._unread[read.file] -= 1
        if not self._unread[read.file]:
            self._finish(read.file)

    def _allocate(self, file: int) -> None:
        self._tensors[file] = empty_tensors(self.layouts[file], self.transfer.device)
        self._targets[file] = [byte_view(tensor) for tensor in self._tensors[file]]
        self.transfer.start_writes()

    def _finish(self, file: int) -> list[torch.Tensor]:
        # Every chunk of the file is copied out: cast it now, while other files' reads continue.
        if not self._tensors[file] and self.layouts[file].tensors:
            self._allocate(file)
        self.transfer.publish()  # a dtype cast on the caller's stream must see the copies
        self.results[file] = cast(self._tensors[file], self.dtype)
        self._tensors[file] = self._targets[file] = []
        return self.results[file]


def _read_chunk(descriptor: int, target: memoryview, offset: int, path: Path) -> None:
    will_read(descriptor, offset, len(target))
    read_exactly(descriptor, target, offset, path)
