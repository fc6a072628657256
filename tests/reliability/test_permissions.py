"""Stores and link destinations that cannot be written: hits still work, everything else says why."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from weightcache import LinkError, StoreNotWritableError, WeightCache, WeightCacheError

from ..helpers import as_nobody


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory ``nobody`` can reach, owned by root (pytest's tmp_path is private to root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to act as another user")
    path = Path(tempfile.mkdtemp(prefix="weightcache-perm-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_read_only_store_hits_reads_and_refuses_writes_clearly(tmpfs, make_image_dir, cli) -> None:
    mount = tmpfs("64m")
    source = make_image_dir({"a.bin": os.urandom(10_000)}, name="a")
    other = make_image_dir({"b.bin": os.urandom(10_000)}, name="b")
    key = WeightCache(mount.path).ensure(source).key
    WeightCache(mount.path).ensure(other)
    WeightCache(mount.path).release(key)
    (mount.path / ".weightcache" / "locks" / f"{key}.use").unlink()  # a hit must not need to create one
    mount.make_read_only()
    cache = WeightCache(mount.path)
    assert cache.ensure(source).hit and cache.verify(key, deep=True).ok and cache.status(source).cached
    assert cli("ensure", source, "--store", mount.path).exit_code == 0
    (other / "new.bin").write_bytes(b"new version")
    for attempt in (lambda: cache.ensure(other), lambda: cache.remove(key)):
        with pytest.raises(StoreNotWritableError, match="not writable") as caught:
            attempt()
        assert str(mount.path) in str(caught.value) and "\n" not in str(caught.value)
    removed = cli("rm", key, "--store", mount.path)
    assert removed.exit_code == 1 and removed.stderr.count("\n") == 1 and "not writable" in removed.stderr
    assert [entry.key for entry in cache.list()] and cache.ensure(source).hit


def test_store_the_user_may_not_write(shared_dir: Path, make_image_dir) -> None:
    source = make_image_dir({"a.bin": os.urandom(10_000)}, name="a")
    other = make_image_dir({"b.bin": os.urandom(10_000)}, name="b")
    for path in (source, other):
        shutil.copytree(path, shared_dir / "sources" / path.name)
    store = shared_dir / "store"
    WeightCache(store).ensure(shared_dir / "sources" / "a")  # populated by root: 0755 dirs, 0644 files

    def hit() -> str:
        return str(WeightCache(store).ensure(shared_dir / "sources" / "a").hit)

    def miss() -> str:
        try:
            WeightCache(store).ensure(shared_dir / "sources" / "b")
        except WeightCacheError as error:
            return f"{type(error).__name__}: {error}"
        return "populated"

    assert as_nobody(hit) == "True"
    said = as_nobody(miss)
    assert said.startswith("StoreNotWritableError") and str(store) in said and "\n" not in said


def test_link_destination_that_cannot_be_written(tmpfs, cache: WeightCache, make_image_dir, tmp_path) -> None:
    source = make_image_dir({"a.bin": b"weights", "sub/b.bin": b"more"})
    read_only = tmpfs("1m")
    read_only.make_read_only()
    with pytest.raises(LinkError, match="choose a writable destination") as caught:
        cache.ensure(source, link_to=read_only.path / "weights")
    assert "\n" not in str(caught.value)
    assert cache.ensure(source).hit  # the entry was published; only the link failed
    (tmp_path / "a-file").write_text("in the way")
    with pytest.raises(LinkError):
        cache.ensure(source, link_to=tmp_path / "a-file" / "weights")
