"""Staged loading onto a device: parallel reads into a few host buffers, copies from them to the device.

On CUDA the buffers are pinned and each chunk's copy is asynchronous on a copy stream of its
own, so the disk (or page cache), the PCIe link and the Python thread all work at once:

* reader threads ``preadv`` chunks of the files into free buffers;
* the main thread, as each read lands, allocates the file's tensors (on first use), enqueues
  the chunk's pieces as host-to-device copies on the copy stream and records an event;
* a buffer is handed to a new read only after its event has completed, so a copy never reads
  a buffer that is being refilled. Host memory is ``buffers x chunk_bytes`` whatever the model.

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
from typing import Any

import torch

from .safetensors_format import Chunk, SafetensorsLayout, plan_chunks
from .tensor_io import CHUNK_BYTES, byte_view, cast, empty_tensors, host_memory, read_exactly, will_read


class Transfer:
    """How bytes go from host buffers to the device: pinned and asynchronous on CUDA, else synchronous."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def host_buffer(self, nbytes: int) -> torch.Tensor:
        """A host buffer to read a chunk into (pinned when copies are asynchronous)."""
        return torch.empty(nbytes, dtype=torch.uint8, pin_memory=self.stream is not None)

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
    ) -> None:
        self.layouts = layouts
        self.transfer = transfer
        self.threads = max(1, threads)
        self.dtype = dtype
        self.chunk_bytes = chunk_bytes
        self.plans = [plan_chunks(layout.tensors, chunk_bytes) for layout in layouts]
        self.results: list[list[torch.Tensor]] = []
        self._open_file = -1
        self._tensors: list[torch.Tensor] = []  # the open file's tensors
        self._targets: list[torch.Tensor] = []  # and their byte views
        self._free: deque[torch.Tensor] = deque()
        self._copying: deque[tuple[Any, torch.Tensor]] = deque()
        self._reading: deque[_Read] = deque()

    @property
    def buffer_count(self) -> int:
        """Host buffers used: one per reader thread and two more, so copies overlap the reads."""
        return min(self.threads + 2, sum(len(plan) for plan in self.plans))

    def run(self) -> list[list[torch.Tensor]]:
        """Read and copy everything; return each file's tensors in its layout's order."""
        if self.buffer_count:  # one allocation cut into buffers: pinning memory is a driver call each
            host = self.transfer.host_buffer(self.chunk_bytes * self.buffer_count)
            self._free.extend(host.split(self.chunk_bytes))
        descriptors = [os.open(layout.path, os.O_RDONLY) for layout in self.layouts]
        try:
            with ThreadPoolExecutor(self.threads, thread_name_prefix="weightcache-load") as pool:
                for file, plan in enumerate(self.plans):
                    for chunk in plan:
                        self._submit(pool, descriptors[file], file, chunk)
                while self._reading:
                    self._dispatch(self._reading.popleft())
            self._advance_to(len(self.layouts))
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
        self._reading.append(_Read(file, chunk, buffer, future))
        while self._reading and self._reading[0].future.done():
            self._dispatch(self._reading.popleft())

    def _acquire(self) -> torch.Tensor:
        # A free buffer, else one whose copies have finished (waiting for them), else (all being
        # read) copy out the oldest read first: never a buffer that a copy may still be reading.
        if self._free:
            return self._free.popleft()
        if not self._copying:
            self._dispatch(self._reading.popleft())
        fence, buffer = self._copying.popleft()
        self.transfer.wait(fence)
        return buffer

    def _dispatch(self, read: _Read) -> None:
        read.future.result()
        self._advance_to(read.file)
        self.transfer.copy(
            [
                (
                    self._targets[piece.tensor][piece.tensor_offset : piece.tensor_offset + piece.length],
                    read.buffer[piece.chunk_offset : piece.chunk_offset + piece.length],
                )
                for piece in read.chunk.pieces
            ]
        )
        self._copying.append((self.transfer.fence(), read.buffer))

    def _advance_to(self, file: int) -> None:
        # Reads are dispatched in file order: close the files before ``file``, then open ``file``.
        while self._open_file < file:
            if self._open_file >= 0:
                self.transfer.publish()  # a dtype cast on the caller's stream must see the copies
                self.results.append(cast(self._tensors, self.dtype))
            self._open_file += 1
            if self._open_file < len(self.layouts):
                self._tensors = empty_tensors(self.layouts[self._open_file], self.transfer.device)
                self._targets = [byte_view(tensor) for tensor in self._tensors]
                self.transfer.start_writes()


def _read_chunk(descriptor: int, target: memoryview, offset: int, path: Path) -> None:
    will_read(descriptor, offset, len(target))
    read_exactly(descriptor, target, offset, path)
