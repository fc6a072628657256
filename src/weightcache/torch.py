"""Load safetensors weights into their final device memory, fast (``pip install 'weightcache[torch]'``).

::

    from weightcache.torch import load_safetensors

    state_dict = load_safetensors(entry, device="cuda")  # an Entry, a directory, files
    with torch.device("meta"):
        model = MyModel(config)  # no memory allocated, no random init
    model.load_state_dict(state_dict, assign=True)  # the loaded tensors become the parameters

The result is what ``safetensors.torch.load_file`` returns, for each file in turn, merged:
same names in the same order, dtypes, shapes and bytes. On the CPU, threads ``preadv`` every
tensor's bytes straight into the tensor. On CUDA, threads read chunks into a few pinned host
buffers and each chunk is copied to the GPU asynchronously while the next ones are read (see
:mod:`weightcache._loading.device_copy`); the buffers are one pinned block per process, a power of two
of at least ``(threads + 2) x 8 MiB``, allocated at the first load and reused.

Every tensor gets its own allocation, as ``load_file``'s do: freeing or replacing one frees its
memory, and the result can be written back with ``save_file`` (which refuses tensors that share
storage). It costs one caching-allocator call per tensor, microseconds each.
"""

from __future__ import annotations

import os
from functools import partial

try:
    import torch
except ImportError as exc:  # torch is an optional extra
    raise ImportError("weightcache.torch needs torch: pip install 'weightcache[torch]'") from exc

from ._core.constants import CHUNK_BYTES
from ._core.targets import Targets
from ._loading.device_copy import StagedLoad, Transfer
from ._loading.safetensors_format import Chunk, SafetensorsLayout, plan_chunks, read_layout, safetensors_files
from ._loading.tensor_io import cast, check_loadable, empty_tensors, host_memory, read_exactly, will_read
from ._transport.cpus import READ_BUDGET
from ._transport.parallel import run_parallel
from .errors import LoadError

# read_layout: a file's tensor names, dtypes and shapes from its header, without reading the data.
__all__ = ["SafetensorsLayout", "Targets", "load_safetensors", "read_layout"]


def load_safetensors(
    targets: Targets,
    device: str | int | torch.device = "cuda",
    dtype: torch.dtype | None = None,
    *,
    threads: int | None = None,
) -> dict[str, torch.Tensor]:
    """Load the tensors of ``targets`` onto ``device``: name -> tensor, as ``load_file`` gives them.

    ``targets`` is an :class:`~weightcache.Entry`, a directory (its top-level ``*.safetensors``
    files, in name order: the shards of a checkpoint), a file, or a list of them. ``dtype``
    ``None`` keeps every tensor as stored; a floating-point dtype converts the full-precision
    float tensors (F16, BF16, F32, F64) to it on the device, and keeps integer, bool, complex
    and 8- or 4-bit float tensors (quantized weights, which need their scales) as stored.
    ``threads`` ``None`` reads with the process's reader threads (4 per usable CPU, at most
    16) less those a running prefetch holds (but at least half of them), so the two together do
    not oversubscribe the CPUs.

    Raises :class:`WeightFileNotFoundError` for a missing path, :class:`SafetensorsFormatError`
    for a malformed file or a dtype this torch lacks (before allocating anything), and
    :class:`LoadError` for an unusable device or dtype or a tensor name found in two files.
    """
    target_device = _device(device)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise LoadError(f"dtype must be a floating-point torch dtype such as torch.bfloat16, not {dtype!r}")
    layouts = [read_layout(path) for path in safetensors_files(targets)]
    for layout in layouts:
        check_loadable(layout)
    _check_unique_names(layouts)
    with READ_BUDGET.take(threads) as granted:
        if target_device.type == "cpu":
            per_file = [_load_to_cpu(layout, granted, dtype) for layout in layouts]
        else:
            per_file = StagedLoad(layouts, Transfer(target_device), threads=granted, dtype=dtype).run()
    return {
        tensor.name: value
        for layout, values in zip(layouts, per_file, strict=True)
        for tensor, value in zip(layout.tensors, values, strict=True)
    }


def _device(device: str | int | torch.device) -> torch.device:
    try:
        target = torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise LoadError(f"{device!r} is not a torch device ({exc}); pass 'cuda', 'cuda:1' or 'cpu'") from None
    if target.type == "cuda" and not torch.cuda.is_available():
        raise LoadError(
            f"device {target} is not available (torch {torch.__version__} sees no CUDA GPU); "
            "run on a GPU machine or pass device='cpu'"
        )
    return target


def _check_unique_names(layouts: list[SafetensorsLayout]) -> None:
    seen: dict[str, SafetensorsLayout] = {}
    for layout in layouts:
        for tensor in layout.tensors:
            first = seen.setdefault(tensor.name, layout)
            if first is not layout:
                raise LoadError(
                    f"tensor {tensor.name!r} is in both {first.path} and {layout.path}; load them separately"
                )


def _load_to_cpu(layout: SafetensorsLayout, threads: int, dtype: torch.dtype | None) -> list[torch.Tensor]:
    tensors = empty_tensors(layout, torch.device("cpu"))
    memories = [host_memory(tensor) for tensor in tensors]
    descriptor = os.open(layout.path, os.O_RDONLY)
    try:
        run_parallel(
            [
                partial(_read_pieces, descriptor, layout, chunk, memories)
                for chunk in plan_chunks(layout.tensors, CHUNK_BYTES, data_offset=layout.data_offset)
            ],
            threads=threads,
        )
    finally:
        os.close(descriptor)
    return cast(tensors, dtype)


def _read_pieces(
    descriptor: int, layout: SafetensorsLayout, chunk: Chunk, memories: list[memoryview]
) -> None:
    will_read(descriptor, layout.data_offset + chunk.start, chunk.length)
    for piece in chunk.pieces:
        target = memories[piece.tensor][piece.tensor_offset : piece.tensor_offset + piece.length]
        read_exactly(descriptor, target, layout.data_offset + chunk.start + piece.chunk_offset, layout.path)
