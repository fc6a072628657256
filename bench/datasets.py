"""Test data shared by the cases, built once per run under one data directory and removed with it.

Nothing is downloaded: models are :mod:`weightcache._core.synthetic` safetensors files, file sets are
random bytes, and the peers' caches are laid out locally from the same files.
"""

from __future__ import annotations

import itertools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from weightcache import Entry, LocalStore, WeightCache
from weightcache._core.constants import CHUNK_BYTES
from weightcache._core.synthetic import make_synthetic_model
from weightcache._transport.hashing import hash_file
from weightcache.providers.sources.hf import HFSource

from .hf_cache import build_hf_cache
from .servers import hub_serving

#: Files of a file set per subdirectory, so the set has the nested shape of a real repo.
FILES_PER_DIR = 100


@dataclass(frozen=True)
class FileSet:
    """``count`` small files as an image directory, cached by weightcache, and in the peers' layouts."""

    image_dir: Path
    store_dir: Path
    entry: Entry
    sha256s: dict[str, str]
    hf_cache: Path
    hf_repo_id: str
    hub_store_dir: Path
    hub_uri: str

    @property
    def source_uri(self) -> str:
        """The ``dir://`` URI weightcache caches the set under."""
        return f"dir://{self.image_dir}"


class Datasets:
    """Builds (once) and hands out the data the cases measure on; everything lives under ``root``."""

    def __init__(self, root: Path, *, small_file_bytes: int) -> None:
        self.root = root
        self.small_file_bytes = small_file_bytes
        self._counter = itertools.count()
        self._models: dict[int, Path] = {}
        self._entries: dict[int, tuple[WeightCache, Entry]] = {}
        self._file_sets: dict[int, FileSet] = {}
        self._blobs: dict[int, tuple[Path, str]] = {}

    def fresh_dir(self, name: str) -> Path:
        """A new empty directory under the data root."""
        path = self.root / "scratch" / f"{name}-{next(self._counter)}"
        path.mkdir(parents=True)
        return path

    def model_dir(self, total_bytes: int) -> Path:
        """An image directory holding a sharded synthetic safetensors model of about ``total_bytes``."""
        if total_bytes not in self._models:
            directory = self.root / "models" / f"model-{total_bytes}" / "initial_weights"
            make_synthetic_model(directory, total_bytes=total_bytes, shards=4)
            self._models[total_bytes] = directory
        return self._models[total_bytes]

    def model_entry(self, total_bytes: int) -> tuple[WeightCache, Entry]:
        """The synthetic model of ``total_bytes`` populated into a store of its own, with its cache."""
        if total_bytes not in self._entries:
            cache = WeightCache(LocalStore(self.root / "stores" / f"model-{total_bytes}"))
            self._entries[total_bytes] = cache, cache.ensure(f"dir://{self.model_dir(total_bytes)}")
        return self._entries[total_bytes]

    def blob(self, size: int) -> tuple[Path, str]:
        """One file of ``size`` random bytes, and its SHA-256."""
        if size not in self._blobs:
            path = self.root / "blobs" / f"blob-{size}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as out:
                for offset in range(0, size, CHUNK_BYTES):
                    out.write(os.urandom(min(CHUNK_BYTES, size - offset)))
            self._blobs[size] = path, hash_file(path, sha256=True).sha256 or ""
        return self._blobs[size]

    def file_set(self, count: int) -> FileSet:
        """``count`` files of ``small_file_bytes`` each, cached by weightcache and laid out for the peers."""
        if count not in self._file_sets:
            self._file_sets[count] = self._build_file_set(count)
        return self._file_sets[count]

    def remove(self) -> None:
        """Delete everything this run wrote."""
        shutil.rmtree(self.root, ignore_errors=True)

    def _build_file_set(self, count: int) -> FileSet:
        base = self.root / "file-sets" / f"files-{count}"
        image_dir = base / "image" / "weights"
        for index in range(count):
            path = image_dir / f"group-{index // FILES_PER_DIR:03d}" / f"part-{index:05d}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(self.small_file_bytes))
        entry = WeightCache(LocalStore(base / "store")).ensure(f"dir://{image_dir}")
        cached = {record.path: entry.path / record.path for record in entry.manifest.files}
        sha256s = {name: hash_file(path, sha256=True).sha256 or "" for name, path in cached.items()}
        repo_id = f"bench/files-{count}"
        build_hf_cache(base / "hf-cache", repo_id, cached, sha256s)
        with hub_serving(cached, repo_id) as (hub, sha):
            hub_uri = f"hf://{repo_id}@{sha}"
            WeightCache(LocalStore(base / "hub-store")).ensure(HFSource(repo_id, sha, endpoint=hub.url))
        return FileSet(
            image_dir=image_dir,
            store_dir=base / "store",
            entry=entry,
            sha256s=sha256s,
            hf_cache=base / "hf-cache",
            hf_repo_id=repo_id,
            hub_store_dir=base / "hub-store",
            hub_uri=hub_uri,
        )
