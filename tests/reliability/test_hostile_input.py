"""Hostile or broken input: each gets a specific error or is handled, never a crash or an escape."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from weightcache import UnsafePathError, WeightCache
from weightcache.fsutil import safe_relpath


def test_non_utf8_file_name_is_a_specific_error_not_a_crash(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir({"ok.bin": b"fine"})
    with open(os.fsencode(source) + b"/bad\xff.bin", "wb") as handle:
        handle.write(b"x")
    with pytest.raises(UnsafePathError, match="not valid UTF-8") as caught:
        cache.ensure(source)
    assert "bad\\xff.bin" in str(caught.value)
    assert not (cache.store.root / "entries").exists()
    with pytest.raises(UnsafePathError, match="not valid UTF-8"):
        safe_relpath(os.fsdecode(b"dir/bad\xff.bin"))


def test_non_ascii_utf8_names_are_kept(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir({"ünïcødé/模型.bin": b"weights", "plain.bin": b"x"})
    entry = cache.ensure(source)
    assert (entry.path / "ünïcødé" / "模型.bin").read_bytes() == b"weights"
    assert cache.ensure(Path(source)).hit
