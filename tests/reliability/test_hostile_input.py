"""Hostile or broken input: each gets a specific error or is handled, never a crash or an escape."""

from __future__ import annotations

import json
import os
import stat
import tracemalloc
from pathlib import Path

import pytest

from weightcache import (
    ManifestError,
    Source,
    SourceError,
    SourceNotFoundError,
    UnsafePathError,
    WeightCache,
)
from weightcache._transport.fsutil import safe_relpath
from weightcache._transport.hashing import hash_file
from weightcache.providers.base import Plan
from weightcache.providers.sources.hf import HFSource
from weightcache.testing import FakeHub


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


class _NamingSource(Source):
    """A source that names its one file whatever the test says (a hostile or buggy remote listing)."""

    scheme = "naming"

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def uri(self) -> str:
        return "naming://test"

    @property
    def slug(self) -> str:
        return "naming"

    def resolve(self) -> Plan:
        return Plan("v1")

    def fetch(self, plan: Plan, staging) -> None:  # type: ignore[no-untyped-def]
        staging.write_stream(self.name, [b"payload"], size=7)


@pytest.mark.parametrize("name", ["../escaped", "/tmp/escaped", "a/../../escaped", "a\\..\\escaped", "", "."])
def test_a_source_naming_a_file_outside_the_entry(cache: WeightCache, tmp_path: Path, name: str) -> None:
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(UnsafePathError):
        cache.ensure(_NamingSource(name))
    assert cache.list() == [] and list(cache.store.layout.staging_dir.iterdir()) == []
    written = [path for path in sorted(tmp_path.rglob("*")) if path not in before and path.is_file()]
    assert [path for path in written if "escaped" in path.name] == []
    assert not Path("/tmp/escaped").exists()


@pytest.mark.parametrize(
    "uri",
    [
        "https://host/a/..%2F..%2Fescaped",
        "https://host/%2Ftmp%2Fescaped",
        "https://host/a/x.bin#name=../../escaped",
        "https://host/a/x.bin#name=/tmp/escaped",
        "https://host/a/b%00c",
    ],
)
def test_a_url_whose_file_name_is_a_path(cache: WeightCache, uri: str) -> None:
    with pytest.raises(UnsafePathError):
        cache.ensure(uri)
    assert not cache.store.root.exists()  # refused before anything was written or fetched


def test_a_hub_repository_listing_a_path_outside_the_entry(cache: WeightCache) -> None:
    with FakeHub() as hub:
        hub.add_repo("acme/evil", {"../escaped.bin": b"x", "config.json": b"{}"})
        with pytest.raises(UnsafePathError, match="escape"):
            cache.ensure(HFSource("acme/evil", endpoint=hub.url))
        assert hub.cdn.count() == 0  # refused from the listing, before any download
    assert cache.list() == []


def test_symlinks_that_escape_loop_or_dangle(cache: WeightCache, make_image_dir, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "secrets").mkdir(parents=True)
    (outside / "secrets" / "key").write_text("not a weight")
    cases = {
        "dir-link": lambda root: (root / "escape").symlink_to(outside / "secrets"),
        "chain": lambda root: [
            (root / "hop").symlink_to(outside / "secrets" / "key"),
            (root / "link").symlink_to(root / "hop"),
        ],
        "loop": lambda root: [(root / "a").symlink_to(root / "b"), (root / "b").symlink_to(root / "a")],
        "dangling": lambda root: (root / "gone").symlink_to(root / "nothing-here"),
        "to-parent": lambda root: (root / "up").symlink_to(root),
    }
    for name, plant in cases.items():
        root = make_image_dir({"w.bin": b"w"}, name=name)
        plant(root)
        with pytest.raises(SourceError) as caught:
            cache.ensure(root)
        assert "\n" not in str(caught.value), name
    assert cache.list() == []


def test_fifos_and_devices_are_refused_without_being_opened(cache: WeightCache, make_image_dir) -> None:
    root = make_image_dir({"w.bin": b"w"}, name="fifo")
    os.mkfifo(root / "pipe.bin")  # opening it would block until a writer came: never opened
    with pytest.raises(UnsafePathError, match="not a regular file"):
        cache.ensure(root)
    os.mkfifo(root.parent / "lonely-pipe")
    with pytest.raises(SourceNotFoundError, match="neither a file nor a directory"):
        cache.ensure(root.parent / "lonely-pipe")
    with pytest.raises(SourceNotFoundError, match="neither a file nor a directory"):
        cache.ensure("dir:///dev/null")
    if os.geteuid() == 0:
        device = make_image_dir({"w.bin": b"w"}, name="device")
        os.mknod(device / "zero", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # what /dev/zero is
        with pytest.raises(UnsafePathError, match="not a regular file"):
            cache.ensure(device)
    assert cache.list() == []


def test_zero_byte_files(cache: WeightCache, make_image_dir, tmp_path: Path) -> None:
    root = make_image_dir({"empty.bin": b"", "sub/also-empty": b"", "w.bin": b"w"})
    entry = cache.ensure(root)
    assert [record.size for record in entry.manifest.files] == [0, 0, 1]
    assert cache.verify(entry, deep=True).ok and cache.ensure(root).hit
    cache.link(entry, tmp_path / "linked")
    assert (tmp_path / "linked" / "empty.bin").read_bytes() == b""
    only_empty = make_image_dir({"nothing.bin": b""}, name="only-empty")
    single = cache.ensure(only_empty / "nothing.bin")  # a single empty file as the source
    assert single.file().read_bytes() == b"" and cache.verify(single, deep=True).ok


def test_twenty_thousand_tiny_files(tmpfs) -> None:
    """Kept on tmpfs: what is measured is weightcache's per-file work, not this VM's disk."""
    mount = tmpfs("256m")
    root = mount.path / "tokenizers"
    for group in range(20):
        (root / f"g{group}").mkdir(parents=True)
        for index in range(1000):
            (root / f"g{group}" / f"piece-{index}.json").write_bytes(b"%d" % index)
    cache = WeightCache(mount.path / "store")
    entry = cache.ensure(root)
    assert len(entry.manifest.files) == 20_000 and entry.total_bytes == 20 * sum(
        len(b"%d" % i) for i in range(1000)
    )
    assert cache.ensure(root).hit
    assert cache.verify(entry, deep=True).ok
    assert (entry.path / "g19" / "piece-999.json").read_bytes() == b"999"
