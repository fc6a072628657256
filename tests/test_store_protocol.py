"""verify, list, status and gc over every Store: a local directory and a Modal Volume seen from a laptop.

Each test runs once per store. The entries are written the way each store gets them (an
``ensure`` on the laptop; an ``ensure`` in a container that mounts the Volume, then its
commit), and read back only through ``WeightCache`` over the store under test.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from weightcache import LocalStore, ModalVolumeStore, WeightCache
from weightcache.errors import StoreNotWritableError
from weightcache.providers.base import Store
from weightcache.providers.stores.remote_volume import RemoteVolumeStore
from weightcache.testing import FakeModalVolume


@dataclass
class StoreUnderTest:
    """A store to read through, and how entries get into it and get changed behind its back."""

    store: Store
    ensure: Callable[[Path], str]
    edit: Callable[[], contextlib.AbstractContextManager[Path]]

    @property
    def cache(self) -> WeightCache:
        return WeightCache(self.store)


def _local(tmp_path: Path) -> StoreUnderTest:
    store = LocalStore(tmp_path / "store")

    @contextlib.contextmanager
    def edit() -> Iterator[Path]:
        yield store.root

    return StoreUnderTest(store, lambda source: WeightCache(store).ensure(source).key, edit)


def _volume_from_laptop(tmp_path: Path) -> StoreUnderTest:
    volume = FakeModalVolume(tmp_path / "volume", name="weights")

    def ensure(source: Path) -> str:
        with volume.container() as container:  # commits on exit, as a container does
            return (
                WeightCache(ModalVolumeStore(container, container.mount_path, lease=None)).ensure(source).key
            )

    @contextlib.contextmanager
    def edit() -> Iterator[Path]:
        with volume.container() as container:
            yield container.mount_path

    return StoreUnderTest(RemoteVolumeStore(volume, "weights"), ensure, edit)


@pytest.fixture(params=[_local, _volume_from_laptop], ids=["local", "volume-from-laptop"])
def side(request: pytest.FixtureRequest, tmp_path: Path) -> StoreUnderTest:
    return request.param(tmp_path)


def test_list_shows_every_entry_and_skips_a_directory_without_manifest(
    side: StoreUnderTest, make_image_dir
) -> None:
    keys = {side.ensure(make_image_dir(name="a")), side.ensure(make_image_dir(name="b"))}
    with side.edit() as root:
        (root / "entries" / "half-0123456789abcdef").mkdir()

    entries = side.cache.list()
    assert {entry.key for entry in entries} == keys
    assert all(entry.path == side.store.files_path(entry.key) and entry.hit for entry in entries)
    assert side.cache.get(entries[0].key).manifest == entries[0].manifest


def test_verify_finds_a_truncated_file_and_deep_finds_changed_bytes(
    side: StoreUnderTest, make_image_dir
) -> None:
    source = make_image_dir()
    key = side.ensure(source)
    assert side.cache.verify(key).ok and side.cache.verify(key, deep=True).ok

    with side.edit() as root:
        victim = root / "entries" / key / "files" / "sam2_hiera_large.pt"
        size = victim.stat().st_size
        victim.chmod(0o644)
        victim.write_bytes(b"\0" * size)  # same size: only a rehash can tell
    assert side.cache.verify(key).ok
    [problem] = side.cache.verify(key, deep=True).problems
    assert (problem.path, problem.kind) == ("sam2_hiera_large.pt", "blake3")

    with side.edit() as root:
        (root / "entries" / key / "files" / "sam2_hiera_large.pt").write_bytes(b"cut")
    [problem] = side.cache.verify(key).problems
    assert problem.kind == "size" and problem.detail == f"3 bytes, expected {size:,}"
    status = side.cache.status(source)
    assert (
        status.key == key
        and not status.cached
        and status.problems == [f"sam2_hiera_large.pt: {problem.detail}"]
    )


def test_verify_all_names_what_is_not_an_entry(side: StoreUnderTest, make_image_dir) -> None:
    key = side.ensure(make_image_dir())
    with side.edit() as root:
        (root / "entries" / "half-0123456789abcdef").mkdir()
        (root / "entries" / "stray.txt").write_bytes(b"not ours")

    reports = {report.key: report for report in side.cache.verify_all()}
    assert reports[key].ok and reports[key].files_checked == 3
    assert reports["half-0123456789abcdef"].problems[0].detail.startswith("not an entry: a directory without")
    assert reports["stray.txt"].problems[0].detail.startswith("not an entry: a stray file")


def test_status_finds_the_entry_through_the_stores_ref(side: StoreUnderTest, make_image_dir) -> None:
    source = make_image_dir()
    key = side.ensure(source)
    status = side.cache.status(source)
    assert (status.key, status.cached, status.files) == (key, True, 3)
    assert status.path == str(side.store.files_path(key))
    assert [ref.key for ref in side.store.all_refs()] == [key]
    assert side.store.read_ref(status.source) is not None


def test_a_volume_seen_from_a_laptop_is_read_only(tmp_path: Path, make_image_dir) -> None:
    side = _volume_from_laptop(tmp_path)
    source = make_image_dir()
    key = side.ensure(source)
    for action in (lambda: side.cache.ensure(source), lambda: side.cache.remove(key)):
        with pytest.raises(StoreNotWritableError, match="from outside Modal; push entries with"):
            action()
    with pytest.raises(StoreNotWritableError, match="run it where the store is mounted"):
        side.cache.link(side.cache.get(key), tmp_path / "linked")
    assert not (tmp_path / "linked").exists() and side.cache.verify(key).ok


def test_gc_runs_where_the_store_is_mounted_and_refuses_a_remote_view(
    side: StoreUnderTest, make_image_dir
) -> None:
    source = make_image_dir(name="a")
    old = side.ensure(source)
    (source / "configs" / "sam2.yaml").write_bytes(b"model: sam2.1\n")
    os.utime(source / "configs" / "sam2.yaml", ns=(1, 1))  # a new version whatever the clock's resolution
    new = side.ensure(source)
    assert old != new
    if not side.store.mounted:
        with pytest.raises(StoreNotWritableError, match="run it where the store is mounted"):
            side.cache.gc(keep=1)
        assert {entry.key for entry in side.cache.list()} == {old, new}
        return
    report = side.cache.gc(keep=1)
    assert [removal.key for removal in report.removed] == [old]
    assert [entry.key for entry in side.cache.list()] == [new]
