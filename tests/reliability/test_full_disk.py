"""A full store: every write that can fail with ENOSPC gives StoreFullError and leaves nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from weightcache import StoreFullError, WeightCache


def _assert_clean_after_failure(store: Path, kept: list[str]) -> None:
    """Nothing half-done: no staging, no entry directory beyond those kept, kept entries intact."""
    cache = WeightCache(store)
    staging = store / ".weightcache" / "staging"
    assert not staging.is_dir() or list(staging.iterdir()) == []
    entries = store / "entries"
    assert (sorted(path.name for path in entries.iterdir()) if entries.is_dir() else []) == sorted(kept)
    assert [entry.key for entry in cache.list()] == kept
    assert all(cache.verify(key, deep=True).ok for key in kept)


@pytest.mark.parametrize("limit", ["nr_inodes", "size"])
def test_enospc_at_every_write_point(tmpfs, make_image_dir, limit: str) -> None:
    """Grow the filesystem one inode (or one page) at a time: each step fails cleanly or succeeds."""
    first = make_image_dir({"a.bin": os.urandom(5000), "sub/b.bin": os.urandom(5000), "e": b""}, name="first")
    second = make_image_dir({"c.bin": os.urandom(9000), "d/e/f.bin": os.urandom(100)}, name="second")
    outcomes = []
    for budget in range(1, 80):
        mount = tmpfs(f"{limit}={budget if limit == 'nr_inodes' else f'{4 * budget}k'}")
        cache = WeightCache(mount.path / "store")
        kept: list[str] = []
        try:
            kept.append(cache.ensure(first).key)
            cache.ensure(second)
        except StoreFullError as error:
            assert str(mount.path / "store") in str(error) and "\n" not in str(error)
            _assert_clean_after_failure(mount.path / "store", kept)
            outcomes.append(len(kept))
            continue
        assert [entry.hit for entry in (cache.ensure(first), cache.ensure(second))] == [True, True]
        break
    else:
        pytest.fail(f"never succeeded with {limit} up to {budget}")
    # Both the first populate and the second were cut at several points before one fitted.
    assert outcomes.count(0) > 3 and outcomes.count(1) > 3, outcomes
