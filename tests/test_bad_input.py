"""Bad input gets a specific exception with one clear sentence, and nothing half-written."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import pytest

from weightcache import (
    EmptySourceError,
    ManifestError,
    SourceNotFoundError,
    StoreFullError,
    StoreNotWritableError,
    UnknownSchemeError,
    UnsafePathError,
    WeightCache,
    WeightCacheError,
)
from weightcache.manifest import read_manifest


def assert_one_sentence(error: BaseException) -> None:
    message = str(error)
    assert message and "\n" not in message and "Traceback" not in message


def test_unknown_scheme(cache: WeightCache) -> None:
    with pytest.raises(UnknownSchemeError) as caught:
        cache.ensure("ftp://user:secret@example.com/model.bin")
    assert "ftp" in str(caught.value) and "secret" not in str(caught.value)
    assert_one_sentence(caught.value)
    assert not cache.store.root.exists()


def test_missing_source_path(cache: WeightCache, tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError) as caught:
        cache.ensure(tmp_path / "nope")
    assert "does not exist" in str(caught.value)
    assert_one_sentence(caught.value)


def test_empty_source_dir(cache: WeightCache, tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(EmptySourceError):
        cache.ensure(tmp_path / "empty")


def test_relative_dir_uri(cache: WeightCache) -> None:
    with pytest.raises(UnsafePathError, match="absolute"):
        cache.ensure("dir://relative/path")


def test_store_path_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreNotWritableError, match="is a file"):
        WeightCache(tmp_path / "file")


def test_symlink_escaping_the_image_dir(cache: WeightCache, make_image_dir, tmp_path: Path) -> None:
    source = make_image_dir()
    secret = tmp_path / "outside.txt"
    secret.write_text("not a weight")
    (source / "escape.bin").symlink_to(secret)
    with pytest.raises(UnsafePathError, match="outside the source directory") as caught:
        cache.ensure(source)
    assert_one_sentence(caught.value)
    assert cache.list() == [] and not (cache.store.root / "entries").exists()


def test_symlink_inside_the_image_dir_is_followed(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir()
    (source / "alias.pt").symlink_to(source / "sam2_hiera_large.pt")
    entry = cache.ensure(source)
    assert (entry.path / "alias.pt").read_bytes() == (source / "sam2_hiera_large.pt").read_bytes()
    assert not (entry.path / "alias.pt").is_symlink()


def test_truncated_manifest_is_not_an_entry_and_verify_reports_it(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir()
    entry = cache.ensure(source)
    manifest_path = entry.path.parent / "manifest.json"
    manifest_path.write_bytes(manifest_path.read_bytes()[:100])
    with pytest.raises(ManifestError):
        read_manifest(manifest_path)
    assert cache.list() == []
    reports = cache.verify_all()
    assert [(report.key, report.ok, report.problems[0].kind) for report in reports] == [
        (entry.key, False, "manifest")
    ]
    again = cache.ensure(source)
    assert not again.hit and cache.verify(again).ok


def test_manifest_that_is_not_json(cache: WeightCache, make_image_dir) -> None:
    entry = cache.ensure(make_image_dir())
    (entry.path.parent / "manifest.json").write_text("this is not json")
    assert cache.list() == []
    assert not cache.verify(entry.key).ok


@pytest.mark.parametrize("bad_path", ["../../etc/passwd", "/etc/passwd", "a/../../b", ""])
def test_hand_edited_manifest_with_escaping_path(cache: WeightCache, make_image_dir, bad_path: str) -> None:
    entry = cache.ensure(make_image_dir())
    manifest_path = entry.path.parent / "manifest.json"
    manifest_path.write_text(manifest_path.read_text().replace('"configs/sam2.yaml"', f'"{bad_path}"'))
    with pytest.raises(ManifestError):
        read_manifest(manifest_path)
    assert cache.list() == []


def test_manifest_with_wrong_total(cache: WeightCache, make_image_dir) -> None:
    entry = cache.ensure(make_image_dir())
    manifest_path = entry.path.parent / "manifest.json"
    text = manifest_path.read_text().replace(f'"total_bytes": {entry.total_bytes}', '"total_bytes": 1')
    manifest_path.write_text(text)
    with pytest.raises(ManifestError, match="total_bytes"):
        read_manifest(manifest_path)


def test_read_only_store_serves_hits_and_refuses_misses(tmpfs, make_image_dir) -> None:
    mount = tmpfs("64m")
    source = make_image_dir()
    WeightCache(mount.path).ensure(source)
    mount.make_read_only()
    cache = WeightCache(mount.path)
    assert cache.ensure(source).hit
    (source / "new.bin").write_bytes(b"x" * 10)
    with pytest.raises(StoreNotWritableError, match="not writable") as caught:
        cache.ensure(source)
    assert_one_sentence(caught.value)


def test_full_disk_names_the_store_and_bytes_and_cleans_up(tmpfs, make_image_dir) -> None:
    mount = tmpfs("2m")
    small = make_image_dir({"small.bin": os.urandom(200_000)}, name="small")
    cache = WeightCache(mount.path)
    kept = cache.ensure(small)
    big = make_image_dir({"big.bin": os.urandom(5_000_000)}, name="big")
    with pytest.raises(StoreFullError) as caught:
        cache.ensure(big)
    message = str(caught.value)
    assert str(mount.path) in message and "5,000,000" in message
    assert_one_sentence(caught.value)
    assert list((mount.path / ".weightcache" / "staging").iterdir()) == []
    assert [entry.key for entry in cache.list()] == [kept.key] and cache.verify(kept, deep=True).ok


def test_disk_filling_up_mid_copy_is_a_clear_error(tmpfs, make_image_dir) -> None:
    mount = tmpfs("4m")
    source = make_image_dir({"a.bin": os.urandom(1_500_000), "b.bin": os.urandom(1_500_000)})

    def another_writer_fills_the_disk(event) -> None:  # type: ignore[no-untyped-def]
        if event.kind == "plan":  # after the free-space check passed
            with open(mount.path / "filler", "wb") as filler, contextlib.suppress(OSError):
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()

    with pytest.raises(StoreFullError, match="ran out of space") as caught:
        WeightCache(mount.path).ensure(source, progress=another_writer_fills_the_disk)
    assert "3,000,000 bytes" in str(caught.value)
    assert list((mount.path / ".weightcache" / "staging").iterdir()) == []
    assert WeightCache(mount.path).list() == []


def test_every_error_is_a_weightcache_error() -> None:
    for error in (
        UnknownSchemeError,
        SourceNotFoundError,
        EmptySourceError,
        UnsafePathError,
        StoreFullError,
        StoreNotWritableError,
        ManifestError,
    ):
        assert issubclass(error, WeightCacheError)


@pytest.mark.parametrize(
    "name",
    [
        *("a", "a/b.bin", ".hidden", "...", "..a", "a..", "dir/.x/y", "ünï/cødé", "a b/c d", "x.", "a/.../b"),
        *("", "/a", "a/", "a//b", ".", "..", "./a", "a/.", "a/../b", "../a", "a\\b", "a\x00b", "a/./b"),
    ],
)
def test_manifest_path_rule_matches_safe_relpath(name: str) -> None:
    from weightcache._transport.fsutil import safe_relpath
    from weightcache.manifest import RELPATH_PATTERN

    try:
        expected = safe_relpath(name) == name
    except UnsafePathError:
        expected = False
    assert bool(re.match(RELPATH_PATTERN, name)) == expected
