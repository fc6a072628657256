"""ensure(): cold populate, warm hit, manifests, versions side by side, force and repair."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import blake3
import pytest

from weightcache import Entry, ImageDirSource, LocalStore, Manifest, WeightCache
from weightcache._core.constants import ENV_HOME


def test_cold_then_warm(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir()
    cold = cache.ensure(source)
    warm = cache.ensure(source)
    assert (cold.hit, warm.hit) == (False, True)
    assert cold.key == warm.key and cold.path == warm.path
    for relpath in ("groundingdino_swint_ogc.pth", "sam2_hiera_large.pt", "configs/sam2.yaml"):
        assert (cold.path / relpath).read_bytes() == (source / relpath).read_bytes()


def test_manifest_records_every_file_with_size_and_hash(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir()
    entry = cache.ensure(source)
    manifest = entry.manifest
    assert [record.path for record in manifest.files] == [
        "configs/sam2.yaml",
        "groundingdino_swint_ogc.pth",
        "sam2_hiera_large.pt",
    ]
    for record in manifest.files:
        content = (source / record.path).read_bytes()
        assert record.size == len(content)
        assert record.blake3 == blake3.blake3(content).hexdigest()
    assert manifest.total_bytes == sum(record.size for record in manifest.files)
    assert manifest.source == f"dir://{source}"
    assert manifest.version.startswith("stat-")
    assert manifest.schema_version == 1 and manifest.weightcache_version
    on_disk = json.loads((entry.path.parent / "manifest.json").read_text())
    assert on_disk["key"] == entry.key and len(on_disk["files"]) == 3


def test_manifest_is_the_only_thing_beside_the_files(cache: WeightCache, make_image_dir) -> None:
    entry = cache.ensure(make_image_dir())
    assert sorted(os.listdir(entry.path.parent)) == ["files", "manifest.json"]
    assert "manifest.json" not in os.listdir(entry.path)


def test_uri_path_and_object_give_the_same_entry(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir()
    keys = {
        cache.ensure(source).key,
        cache.ensure(f"dir://{source}").key,
        cache.ensure(ImageDirSource(source)).key,
    }
    assert len(keys) == 1


def test_single_file_source(cache: WeightCache, tmp_path: Path) -> None:
    checkpoint = tmp_path / "sam2_hiera_large.pt"
    checkpoint.write_bytes(b"\x01" * 4096)
    entry = cache.ensure(checkpoint)
    assert entry.file().name == "sam2_hiera_large.pt"
    assert entry.file().read_bytes() == checkpoint.read_bytes()


def test_changed_image_dir_gives_new_entry_and_keeps_old(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir()
    first = cache.ensure(source)
    (source / "sam2_hiera_large.pt").write_bytes(os.urandom(1000))
    second = cache.ensure(source)
    assert second.key != first.key and not second.hit
    assert {entry.key for entry in cache.list()} == {first.key, second.key}
    assert (first.path / "sam2_hiera_large.pt").stat().st_size == 500_000


def test_force_refetches_a_cached_entry(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir()
    first = cache.ensure(source)
    again = cache.ensure(source, force=True)
    assert not again.hit and again.key == first.key
    assert again.manifest.created_at > first.manifest.created_at


def test_missing_file_in_entry_is_refetched(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir()
    entry = cache.ensure(source)
    (entry.path / "sam2_hiera_large.pt").unlink()
    healed = cache.ensure(source)
    assert not healed.hit
    assert (healed.path / "sam2_hiera_large.pt").read_bytes() == (source / "sam2_hiera_large.pt").read_bytes()


def test_truncated_file_in_entry_is_refetched(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir()
    entry = cache.ensure(source)
    os.truncate(entry.path / "groundingdino_swint_ogc.pth", 10)  # entry files are read-only: root or a bug
    healed = cache.ensure(source)
    assert not healed.hit and (healed.path / "groundingdino_swint_ogc.pth").stat().st_size == 300_000


def test_corruption_found_by_deep_verify_and_fixed_by_repair(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir()
    entry = cache.ensure(source)
    victim = entry.path / "sam2_hiera_large.pt"
    data = bytearray(victim.read_bytes())
    data[12345] ^= 0xFF
    victim.write_bytes(bytes(data))  # same size: the warm path cannot see it

    assert cache.ensure(source).hit
    assert cache.verify(entry).ok  # stat-only verify cannot see it either
    report = cache.verify(entry, deep=True)
    assert not report.ok
    assert [(problem.path, problem.kind) for problem in report.problems] == [
        ("sam2_hiera_large.pt", "blake3")
    ]

    repaired = cache.ensure(source, repair=True)
    assert not repaired.hit
    assert cache.verify(repaired, deep=True).ok
    assert victim.read_bytes() == (source / "sam2_hiera_large.pt").read_bytes()


def test_repair_on_a_healthy_entry_is_a_hit(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir()
    cache.ensure(source)
    assert cache.ensure(source, repair=True).hit


def test_default_store_is_weightcache_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_image_dir
) -> None:
    monkeypatch.setenv(ENV_HOME, str(tmp_path / "home-store"))
    entry = WeightCache().ensure(make_image_dir())
    assert entry.path.is_relative_to(tmp_path / "home-store")


def test_store_path_may_be_given_as_a_string(tmp_path: Path, make_image_dir) -> None:
    cache = WeightCache(str(tmp_path / "s"))
    assert isinstance(cache.store, LocalStore)
    assert cache.ensure(make_image_dir()).path.is_relative_to(tmp_path / "s")


def test_get_list_and_remove(cache: WeightCache, make_image_dir) -> None:
    entry = cache.ensure(make_image_dir())
    assert cache.get(entry.key).manifest == entry.manifest
    assert [listed.key for listed in cache.list()] == [entry.key]
    cache.remove(entry.key)
    assert cache.list() == [] and not entry.path.exists()


def test_status_without_fetching(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir()
    before = cache.status(source)
    assert not before.cached and before.path is None
    entry = cache.ensure(source)
    after = cache.status(source)
    assert after.cached and after.key == entry.key and after.files == 3 and after.bytes == entry.total_bytes


def test_progress_events_cover_every_byte(cache: WeightCache, make_image_dir) -> None:
    events = []
    entry = cache.ensure(make_image_dir(), progress=events.append)
    plan = [event for event in events if event.kind == "plan"]
    assert len(plan) == 1 and plan[0].total_bytes == entry.total_bytes and plan[0].files == 3
    assert sum(event.nbytes for event in events if event.kind == "advance") == entry.total_bytes
    assert {event.path for event in events if event.kind == "file_done"} == {
        r.path for r in entry.manifest.files
    }


def test_warm_path_hashes_nothing(
    cache: WeightCache, make_image_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_image_dir()
    cache.ensure(source)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the warm path read file content")

    for name in (
        "weightcache.providers.base.iter_file_chunks",  # how a store opens a file for verify
        "weightcache._core.staging._regular_file_chunks",
        "weightcache._core.staging.hash_file",
    ):
        monkeypatch.setattr(name, forbidden)
    assert cache.ensure(source).hit


def test_entry_file_helpers(cache: WeightCache, make_image_dir) -> None:
    entry: Entry = cache.ensure(make_image_dir())
    assert entry.file("configs/sam2.yaml").read_bytes() == b"model: sam2\n"
    assert len(entry.files) == 3 and all(path.is_file() for path in entry.files)
    assert isinstance(entry.manifest, Manifest)


def test_mtime_change_alone_is_a_new_version(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir()
    first = cache.ensure(source)
    later = time.time_ns() + 5_000_000_000
    os.utime(source / "configs/sam2.yaml", ns=(later, later))
    assert cache.ensure(source).key != first.key
