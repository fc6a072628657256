"""A process forked after weightcache has hashed (multiprocessing, preloading servers) can still populate."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

from weightcache import WeightCache


def _populate(store: Path, source: Path) -> None:
    entry = WeightCache(store).ensure(source)
    assert not entry.hit and WeightCache(store).verify(entry, deep=True).ok


def test_forked_child_populates_after_parent_hashed(store_dir: Path, make_image_dir) -> None:
    first = make_image_dir({"big.bin": os.urandom(16 << 20)}, name="first")
    WeightCache(store_dir).ensure(first)  # the parent hashes 16 MiB: blake3 starts its thread pool
    second = make_image_dir({"big.bin": os.urandom(16 << 20)}, name="second")
    child = multiprocessing.get_context("fork").Process(target=_populate, args=(store_dir, second))
    child.start()
    child.join(timeout=60)
    if child.exitcode is None:
        child.kill()
        child.join()
    assert child.exitcode == 0  # it used to hang forever inside blake3
