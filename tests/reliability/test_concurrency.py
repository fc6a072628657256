"""Many processes and threads on one store, on one source and on several: each version fetched once."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.reliability.sources import KIND_NAMES, SourceKind, source_kind
from tests.reliability.workers import hear, start
from weightcache import WeightCache
from weightcache._core.registry import parse_source


def _serve(kind: SourceKind, count: int) -> dict[str, int]:
    """``count`` sources of ``kind`` with 3 MB each: URI -> bytes."""
    served = {}
    for index in range(count):
        files = {f"shard-{part}.bin": os.urandom(1_000_000) for part in range(3)}
        served[parse_source(kind.serve(f"model{index}", files)).uri] = 3_000_000
    return served


@pytest.mark.parametrize("kind_name", KIND_NAMES)
def test_processes_on_several_sources_fetch_each_once(kind_name: str, store_dir: Path, tmp_path) -> None:
    with source_kind(kind_name, tmp_path / "served") as kind:
        served = _serve(kind, 3)
        start_at = time.time() + 2.0  # every process imported and waiting, then all at once
        workers = [start("ensure_all", store_dir, start_at, *served, env=kind.env) for _ in range(6)]
        reports = [hear(worker) for worker in workers]
    cache = WeightCache(store_dir)
    for uri, size in served.items():
        results = [report[uri] for report in reports]
        assert len({result["key"] for result in results}) == 1
        assert sorted(result["hit"] for result in results) == [False] + [True] * 5
        assert sum(result["copied"] for result in results) == size  # fetched exactly once
    assert len(cache.list()) == 3 and all(cache.verify(entry, deep=True).ok for entry in cache.list())


@pytest.mark.parametrize("kind_name", KIND_NAMES)
def test_threads_on_several_sources_fetch_each_once(
    kind_name: str, cache: WeightCache, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with source_kind(kind_name, tmp_path / "served") as kind:
        for name, value in (kind.env or {}).items():
            monkeypatch.setenv(name, value)
        served = _serve(kind, 3)
        requests = [uri for uri in served for _ in range(4)]
        with ThreadPoolExecutor(8) as pool:
            entries = list(pool.map(cache.ensure, requests))
    for uri in served:
        identity = parse_source(uri).identity
        assert sorted(entry.hit for entry in entries if entry.source == identity) == [False, True, True, True]
    assert all(cache.verify(entry, deep=True).ok for entry in cache.list())
