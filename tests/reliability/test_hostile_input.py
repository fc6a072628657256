"""Hostile or broken input: each gets a specific error or is handled, never a crash or an escape."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import pytest

from weightcache import ManifestError, UnsafePathError, WeightCache
from weightcache.fsutil import safe_relpath
from weightcache.hashing import hash_file


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


def _edit_manifest(entry_dir: Path, edit) -> None:  # type: ignore[no-untyped-def]
    path = entry_dir / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _record(data: dict, name: str) -> dict:
    return next(record for record in data["files"] if record["path"] == name)


# Each edit makes the manifest invalid: the directory is not an entry, and ensure() fetches it again.
INVALID_EDITS = {
    "escaping path": lambda data: _record(data, "b.bin").update(path="../../../etc/passwd"),
    "absolute path": lambda data: _record(data, "b.bin").update(path="/etc/passwd"),
    "dot-dot inside": lambda data: _record(data, "b.bin").update(path="sub/../../b.bin"),
    "duplicated path": lambda data: data["files"].append(dict(data["files"][0])),
    "size without total": lambda data: _record(data, "b.bin").update(size=1),
    "wrong key": lambda data: data.update(key="someone-else-000000000000"),
    "negative size": lambda data: _record(data, "b.bin").update(size=-1),
    "hash not hex": lambda data: _record(data, "b.bin").update(blake3="zz" * 32),
    "unknown field": lambda data: data.update(extra="x"),
    "files not a list": lambda data: data.update(files={"b.bin": 1}),
}


@pytest.mark.parametrize("edit", INVALID_EDITS.values(), ids=INVALID_EDITS.keys())
def test_hand_edited_manifest_is_not_an_entry_and_is_fetched_again(
    cache: WeightCache, make_image_dir, edit
) -> None:
    source = make_image_dir({"b.bin": os.urandom(1000), "sub/c.bin": b"c"})
    entry = cache.ensure(source)
    _edit_manifest(entry.path.parent, edit)
    assert cache.list() == []
    assert [problem.kind for problem in cache.verify(entry.key, deep=True).problems] == ["manifest"]
    again = cache.ensure(source)
    assert not again.hit and cache.verify(again, deep=True).ok
    assert (again.path / "b.bin").read_bytes() == (source / "b.bin").read_bytes()


def test_truncated_manifest_at_every_length_is_never_an_entry(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir({"b.bin": b"b", "c.bin": b"c"})
    entry = cache.ensure(source)
    path = entry.path.parent / "manifest.json"
    whole = path.read_bytes()
    for length in range(0, len(whole) - 2, 7):  # the last bytes are only closing whitespace
        path.write_bytes(whole[:length])
        assert cache.list() == [], length
    path.write_bytes(whole)
    assert cache.ensure(source).hit


def test_consistent_but_wrong_sizes_are_caught_by_the_warm_stat(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir({"b.bin": os.urandom(1000)})
    entry = cache.ensure(source)

    def shrink(data: dict) -> None:
        _record(data, "b.bin").update(size=999)
        data["total_bytes"] = 999

    _edit_manifest(entry.path.parent, shrink)
    assert [problem.kind for problem in cache.verify(entry.key).problems] == ["size"]
    again = cache.ensure(source)
    assert not again.hit and again.manifest.files[0].size == 1000


def test_wrong_hash_is_a_hit_until_verified_and_repair_fixes_it(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir({"b.bin": os.urandom(1000)})
    entry = cache.ensure(source)
    _edit_manifest(entry.path.parent, lambda data: _record(data, "b.bin").update(blake3="0" * 64))
    assert cache.ensure(source).hit  # the warm path stats, it does not hash
    assert [problem.kind for problem in cache.verify(entry.key, deep=True).problems] == ["blake3"]
    repaired = cache.ensure(source, repair=True)
    assert not repaired.hit and cache.verify(repaired, deep=True).ok


def test_manifest_from_a_newer_weightcache_is_left_alone(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir({"b.bin": os.urandom(1000)})
    entry = cache.ensure(source)
    _edit_manifest(entry.path.parent, lambda data: data.update(schema_version=99, new_field=[1]))
    with pytest.raises(ManifestError, match=r"newer weightcache.*upgrade weightcache") as caught:
        cache.ensure(source)
    assert entry.key in str(caught.value) and "\n" not in str(caught.value)
    assert cache.gc().removed == []  # not "incomplete": a newer release's entry is not ours to collect
    assert json.loads((entry.path.parent / "manifest.json").read_text())["schema_version"] == 99
    assert "newer than this weightcache" in cache.verify(entry.key).problems[0].detail


def test_hashing_a_small_file_allocates_for_its_size_not_a_whole_chunk(tmp_path: Path) -> None:
    """Models of thousands of small files were hashed through an 8 MiB buffer each (zeroed every time)."""
    small = tmp_path / "tokenizer.json"
    small.write_bytes(b"{}" * 100)
    tracemalloc.start()
    try:
        assert hash_file(small).size == 200
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024
