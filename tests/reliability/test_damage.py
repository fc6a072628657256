"""Damage on disk (bit flips, files rewritten in place) is found by verify and undone by repair."""

from __future__ import annotations

import os
from pathlib import Path

from tests.reliability.sources import StreamSource, write_tree
from weightcache import WeightCache


def _flip_a_byte(path: Path) -> None:
    with open(path, "r+b") as handle:  # in place, as bit rot or an app writing through a symlink would
        handle.seek(10)
        byte = handle.read(1)
        handle.seek(10)
        handle.write(bytes([byte[0] ^ 0xFF]))


def test_repair_does_not_reuse_a_damaged_file_from_another_version(
    cache: WeightCache, tmp_path: Path
) -> None:
    shared = os.urandom(100_000)
    root = tmp_path / "repo"
    old = cache.ensure(StreamSource(write_tree(root, {"shared.bin": shared, "v.txt": b"1"})))
    new = cache.ensure(StreamSource(write_tree(root, {"shared.bin": shared, "v.txt": b"2"})), refresh=True)
    assert (old.path / "shared.bin").stat().st_ino == (new.path / "shared.bin").stat().st_ino  # reused
    _flip_a_byte(new.path / "shared.bin")  # so both versions hold the damage
    assert not cache.verify(new, deep=True).ok and not cache.verify(old, deep=True).ok

    repaired = cache.ensure(StreamSource(root), repair=True)
    assert not repaired.hit and cache.verify(repaired, deep=True).ok
    assert (repaired.path / "shared.bin").read_bytes() == shared
    forced = cache.ensure(StreamSource(root), force=True)
    assert cache.verify(forced, deep=True).ok
