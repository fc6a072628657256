"""Synthetic models in real safetensors format, written by streaming (for the demo, tests and benchmarks).

Nothing is downloaded: the files are random bytes behind a valid safetensors header, so any
safetensors reader can open them and their size is whatever you ask for.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import BinaryIO

from .._loading.safetensors_format import DTYPE_BITS
from .constants import CHUNK_BYTES


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> int:
    """Write a safetensors file whose tensors (name -> (dtype, shape)) hold pseudo-random bytes.

    Streams the payload in chunks, so memory stays small whatever the size; returns the file size.
    """
    header: dict[str, object] = {"__metadata__": {"format": "pt", "generator": "weightcache._core.synthetic"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        count = 1
        for dim in shape:
            count *= dim
        length = count * DTYPE_BITS[dtype] // 8
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + length]}
        offset += length
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)) + encoded)
        _write_random(handle, offset)
    return 8 + len(encoded) + offset


def make_synthetic_model(directory: Path, *, total_bytes: int, shards: int = 4) -> list[Path]:
    """Write a sharded transformer-like checkpoint (config, index, ``shards`` safetensors files)."""
    directory.mkdir(parents=True, exist_ok=True)
    per_shard = max(total_bytes // shards, 1024)
    hidden = 1024
    weight_map: dict[str, str] = {}
    paths = []
    for shard in range(shards):
        name = f"model-{shard + 1:05d}-of-{shards:05d}.safetensors"
        rows = max(per_shard // (hidden * 2), 1)
        tensor = f"layers.{shard}.mlp.weight"
        write_safetensors(directory / name, {tensor: ("BF16", [rows, hidden])})
        weight_map[tensor] = name
        paths.append(directory / name)
    (directory / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}, indent=2))
    (directory / "config.json").write_text(json.dumps({"model_type": "synthetic", "hidden_size": hidden}))
    return [*paths, directory / "model.safetensors.index.json", directory / "config.json"]


def _write_random(handle: BinaryIO, length: int) -> None:
    # Fresh OS randomness per chunk: no two files (or chunks) share content, like real weights.
    remaining = length
    while remaining:
        step = min(CHUNK_BYTES, remaining)
        handle.write(os.urandom(step))
        remaining -= step
