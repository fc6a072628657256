"""The safetensors layout, read without torch: where each tensor's bytes are, validated, and read plans.

A safetensors file is an 8-byte little-endian header length ``N``, ``N`` bytes of JSON mapping
each tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (plus an optional
``"__metadata__"`` of strings), then the data section the offsets point into. The checks here
are the ones the safetensors library makes, so a file it refuses is refused here too, with a
message that names the file and the problem.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._core.targets import Targets, flatten_targets, missing_file_error, unique_paths
from ..entry import Entry
from ..errors import SafetensorsFormatError, WeightFileNotFoundError

#: Bits per element of every safetensors dtype (F4 and F6 pack several elements into bytes).
DTYPE_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "F8_E8M0": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "F64": 64,
    "C64": 64,
    "I64": 64,
    "U64": 64,
}

#: The safetensors library refuses headers larger than this.
MAX_HEADER_BYTES = 100_000_000

SUFFIX = ".safetensors"


@dataclass(frozen=True)
class TensorLayout:
    """One tensor: its name, safetensors dtype, shape, and byte range in the data section."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        """Size of the tensor's data in bytes."""
        return self.end - self.start


@dataclass(frozen=True)
class SafetensorsLayout:
    """A validated safetensors file: its tensors in data order (the order safetensors returns them)."""

    path: Path
    data_offset: int
    data_bytes: int
    tensors: tuple[TensorLayout, ...]
    metadata: dict[str, str]


@dataclass(frozen=True)
class Piece:
    """Part of a chunk that belongs to one tensor: ``length`` bytes at ``chunk_offset`` in the chunk,
    going to ``tensor_offset`` in tensor number ``tensor``."""

    tensor: int
    tensor_offset: int
    chunk_offset: int
    length: int


@dataclass(frozen=True)
class Chunk:
    """``length`` contiguous bytes at ``start`` in the data section, and the tensor pieces they hold."""

    start: int
    length: int
    pieces: tuple[Piece, ...]


def read_layout(path: Path) -> SafetensorsLayout:
    """Read and validate the header of the safetensors file at ``path``."""
    try:
        with open(path, "rb") as handle:
            file_size = os.fstat(handle.fileno()).st_size
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise _malformed(path, f"it is {file_size} bytes, too small to hold a header")
            (header_bytes,) = struct.unpack("<Q", prefix)
            if header_bytes > MAX_HEADER_BYTES:
                raise _malformed(path, f"its header claims {header_bytes:,} bytes, over the 100 MB limit")
            if 8 + header_bytes > file_size:
                raise _malformed(path, f"its {header_bytes:,}-byte header runs past the end of the file")
            header = _parse_json(path, handle.read(header_bytes))
    except FileNotFoundError:
        raise missing_file_error(path) from None
    data_offset = 8 + header_bytes
    metadata = _metadata(path, header.pop("__metadata__", {}))
    tensors = sorted(
        (_tensor(path, name, info) for name, info in header.items()), key=lambda t: (t.start, t.end)
    )
    _check_coverage(path, tensors, file_size - data_offset)
    return SafetensorsLayout(path, data_offset, file_size - data_offset, tuple(tensors), metadata)


def plan_chunks(tensors: Iterable[TensorLayout], chunk_bytes: int, *, data_offset: int = 0) -> list[Chunk]:
    """Cut the data section into chunks of at most ``chunk_bytes``, cut where the file offset is a
    multiple of ``chunk_bytes``.

    The data section starts at ``data_offset`` in the file (after a header of any length), so
    the first chunk is shorter and every later one starts on a ``chunk_bytes`` boundary of the
    file: page-aligned reads when ``chunk_bytes`` is a multiple of 4 KiB. A tensor that crosses
    a chunk boundary is split into pieces; zero-size tensors have none.
    """
    chunks: list[Chunk] = []
    pieces: list[Piece] = []
    chunk_start = end = 0
    chunk_end = chunk_bytes - data_offset % chunk_bytes
    for index, tensor in enumerate(tensors):
        offset, end = tensor.start, tensor.end
        while offset < end:
            length = min(end, chunk_end) - offset
            pieces.append(Piece(index, offset - tensor.start, offset - chunk_start, length))
            offset += length
            if offset == chunk_end:
                chunks.append(Chunk(chunk_start, chunk_end - chunk_start, tuple(pieces)))
                pieces, chunk_start, chunk_end = [], chunk_end, chunk_end + chunk_bytes
    if pieces:
        chunks.append(Chunk(chunk_start, end - chunk_start, tuple(pieces)))
    return chunks


def safetensors_files(targets: Targets) -> list[Path]:
    """The safetensors files of ``targets``: a file itself, or a directory's (or entry's) top-level ones.

    Only the top level: a diffusers entry keeps each component in its own folder, and the
    components' tensor names clash, so load ``entry.path / "unet"`` and the like one at a time.
    """
    files: list[Path] = []
    for target in flatten_targets(targets):
        if isinstance(target, Entry):
            found = [target.path / r.path for r in target.manifest.files if _is_top_level_safetensors(r.path)]
            where = f"entry {target.key}"
        elif target.is_dir():
            found = sorted(p for p in target.iterdir() if p.name.endswith(SUFFIX) and p.is_file())
            where = str(target)
        elif target.exists():
            found, where = [target], str(target)
        else:
            raise missing_file_error(target)
        if not found:
            raise WeightFileNotFoundError(
                f"{where} holds no {SUFFIX} files at its top level; pass the folder that holds them"
            )
        files.extend(found)
    return unique_paths(files)


def _is_top_level_safetensors(relpath: str) -> bool:
    return "/" not in relpath and relpath.endswith(SUFFIX)


def _malformed(path: Path, reason: str) -> SafetensorsFormatError:
    return SafetensorsFormatError(
        f"{path} is not a valid safetensors file: {reason}; fetch it again (`weightcache ensure --repair`)"
    )


def _parse_json(path: Path, raw: bytes) -> dict[str, Any]:
    def reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [name for name, _value in pairs]
        if len(set(names)) != len(names):
            raise _malformed(path, "its header names a tensor twice")
        return dict(pairs)

    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=reject_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _malformed(path, f"its header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise _malformed(path, "its header is not a JSON object")
    return header


def _metadata(path: Path, metadata: Any) -> dict[str, str]:
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _malformed(path, "its __metadata__ is not a mapping of strings")
    return metadata


def _tensor(path: Path, name: str, info: Any) -> TensorLayout:
    if not isinstance(info, dict):
        raise _malformed(path, f"tensor {name!r} is described by {type(info).__name__}, not an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in DTYPE_BITS:
        raise _malformed(path, f"tensor {name!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_is_count(dim) for dim in shape):
        raise _malformed(path, f"tensor {name!r} has shape {shape!r}, not a list of non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)):
        raise _malformed(path, f"tensor {name!r} has data_offsets {offsets!r}, not two non-negative integers")
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    if bits % 8 or offsets[1] - offsets[0] != bits // 8:
        raise _malformed(
            path, f"tensor {name!r} ({dtype}, shape {shape}) does not fit its data_offsets {offsets}"
        )
    return TensorLayout(name, dtype, tuple(shape), offsets[0], offsets[1])


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_coverage(path: Path, tensors: list[TensorLayout], data_bytes: int) -> None:
    # Tensors must tile the data section exactly: no gap, no overlap, nothing after the last one.
    position = 0
    for tensor in tensors:
        if tensor.start != position:
            raise _malformed(path, f"tensor {tensor.name!r} starts at {tensor.start}, expected {position}")
        position = tensor.end
    if position > data_bytes:
        raise _malformed(
            path, f"it is truncated: its tensors need {position:,} data bytes, {data_bytes:,} are there"
        )
    if position < data_bytes:
        raise _malformed(path, f"{data_bytes - position:,} bytes after its last tensor belong to no tensor")
