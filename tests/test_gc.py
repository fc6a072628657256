"""gc(): keep N newest versions per source, remove incomplete entries and abandoned staging."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from weightcache import WeightCache, WeightCacheError


def _versions(cache: WeightCache, source: Path, count: int) -> list[str]:
    keys = []
    for index in range(count):
        (source / "sam2_hiera_large.pt").write_bytes(os.urandom(1000 + index))
        keys.append(cache.ensure(source).key)
        time.sleep(0.01)
    return keys


def test_keeps_newest_per_source(cache: WeightCache, make_image_dir) -> None:
    fashion = make_image_dir(name="fashion")
    other = make_image_dir(name="other")
    keys = _versions(cache, fashion, 3)
    other_key = cache.ensure(other).key
    report = cache.gc(keep=2, dry_run=True)
    assert [item.key for item in report.removed] == [keys[0]] and report.dry_run
    assert len(cache.list()) == 4  # dry run removed nothing

    report = cache.gc(keep=2)
    assert [item.key for item in report.removed] == [keys[0]]
    assert report.freed_bytes == report.removed[0].bytes > 0
    assert {entry.key for entry in cache.list()} == {keys[1], keys[2], other_key}
    assert cache.ensure(fashion).hit


def test_removes_incomplete_entries_and_leftovers(cache: WeightCache, make_image_dir) -> None:
    entry = cache.ensure(make_image_dir())
    broken = cache.store.layout.entry_dir("half-copied-000000000000")
    (broken / "files").mkdir(parents=True)
    (broken / "files" / "x.bin").write_bytes(b"x" * 100)
    leftover = cache.store.layout.staging_dir / "dead-000000000000.1-abc"
    leftover.mkdir(parents=True)
    report = cache.gc()
    assert {(item.key, item.reason) for item in report.removed} == {
        ("half-copied-000000000000", "incomplete"),
        ("dead-000000000000", "leftover"),
    }
    assert not broken.exists() and not leftover.exists()
    assert [listed.key for listed in cache.list()] == [entry.key]


def test_keep_must_be_positive(cache: WeightCache) -> None:
    with pytest.raises(WeightCacheError, match="at least one"):
        cache.gc(keep=0)


def test_skips_an_entry_being_populated(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir()
    old = _versions(cache, source, 2)[0]
    with cache.store.populate_lock(old, timeout=None):
        report = cache.gc(keep=1)
    assert report.skipped_busy == [old] and old in {entry.key for entry in cache.list()}
