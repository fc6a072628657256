"""A manifest validated once is not re-parsed on the next hit, yet any change to the file is seen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from weightcache import LocalStore, ManifestError, WeightCache
from weightcache._core.manifest_memo import read_validated
from weightcache.manifest import read_manifest


@pytest.fixture
def manifest_path(tmp_path: Path) -> Path:
    source = tmp_path / "weights"
    source.mkdir()
    (source / "model.bin").write_bytes(b"w" * 1000)
    entry = WeightCache(LocalStore(tmp_path / "store")).ensure(f"dir://{source}")
    path = next((tmp_path / "store").rglob("manifest.json"))
    os.utime(path, ns=(10**18, 10**18))  # an old mtime, so any later write gives a new one
    assert read_manifest(path) == entry.manifest
    return path


def test_the_same_file_is_parsed_once(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_bytes(b"1")
    parsed: list[bytes] = []

    def parse(data: bytes, where: str) -> int:
        parsed.append(data)
        return int(data)

    assert [read_validated(path, parse) for _ in range(3)] == [1, 1, 1]
    assert parsed == [b"1"]


def test_a_truncated_manifest_fails_after_a_hit(manifest_path: Path) -> None:
    data = manifest_path.read_bytes()
    manifest_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ManifestError):
        read_manifest(manifest_path)


def test_a_hand_edit_of_the_same_size_fails_after_a_hit(manifest_path: Path) -> None:
    data = manifest_path.read_bytes()
    manifest_path.write_bytes(data.replace(b'"size": 1000', b'"size": 1001'))
    with pytest.raises(ManifestError, match="total_bytes"):
        read_manifest(manifest_path)


def test_a_manifest_replaced_by_rename_is_read_again(manifest_path: Path) -> None:
    data = manifest_path.read_bytes()
    replacement = manifest_path.with_name("new.json")
    replacement.write_bytes(data.replace(b'"size": 1000', b'"size": 1001'))
    os.utime(replacement, ns=(10**18, 10**18))  # even with the old mtime: another inode
    os.replace(replacement, manifest_path)
    with pytest.raises(ManifestError):
        read_manifest(manifest_path)


def test_a_hit_after_the_manifest_was_damaged_is_not_a_hit(tmp_path: Path) -> None:
    source = tmp_path / "weights"
    source.mkdir()
    (source / "model.bin").write_bytes(b"w" * 1000)
    cache = WeightCache(LocalStore(tmp_path / "store"))
    cache.ensure(f"dir://{source}")
    assert cache.ensure(f"dir://{source}").hit
    path = next((tmp_path / "store").rglob("manifest.json"))
    path.write_bytes(path.read_bytes()[:-40])
    assert not cache.ensure(f"dir://{source}").hit
