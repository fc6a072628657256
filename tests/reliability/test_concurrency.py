"""Many processes and threads on one store, on one source and on several: each version fetched once."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.reliability.sources import KINDS, SourceKind
from tests.reliability.workers import hear, start
from weightcache import WeightCache
from weightcache.registry import parse_source


def _serve(kind: SourceKind, root: Path, count: int) -> dict[str, int]:
    """``count`` sources of ``kind`` with 3 MB each: URI -> bytes."""
    served = {}
    for index in range(count):
        files = {f"shard-{part}.bin": os.urandom(1_000_000) for part in range(3)}
        served[parse_source(kind.serve(root / f"model{index}", files)).uri] = 3_000_000
    return served


@pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS.keys())
def test_processes_on_several_sources_fetch_each_once(kind: SourceKind, store_dir: Path, tmp_path) -> None:
    served = _serve(kind, tmp_path / "served", 3)
    start_at = time.time() + 1.5  # every process imported and waiting, then all at once
    workers = [start("ensure_all", store_dir, start_at, *served) for _ in range(6)]
    reports = [hear(worker) for worker in workers]
    cache = WeightCache(store_dir)
    for uri, size in served.items():
        results = [report[uri] for report in reports]
        assert len({result["key"] for result in results}) == 1
        assert sorted(result["hit"] for result in results) == [False] + [True] * 5
        assert sum(result["copied"] for result in results) == size  # fetched exactly once
    assert len(cache.list()) == 3 and all(cache.verify(entry, deep=True).ok for entry in cache.list())


def test_threads_on_several_sources_fetch_each_once(cache: WeightCache, tmp_path) -> None:
    served = _serve(KINDS["dir"], tmp_path / "served", 3)
    requests = [uri for uri in served for _ in range(4)]
    with ThreadPoolExecutor(8) as pool:
        entries = list(pool.map(cache.ensure, requests))
    for uri in served:
        assert sorted(entry.hit for entry in entries if entry.source == uri) == [False, True, True, True]
    assert all(cache.verify(entry, deep=True).ok for entry in cache.list())
