"""Entries as users hold them: read-only files, a path-like Entry, released holds, error types."""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from weightcache import EntryNotFoundError, WeightCache
from weightcache.errors import EntryFileNotFoundError, InvalidArgumentError, LeaseLostError
from weightcache.providers.stores.local_store import LeaseLock

from .helpers import NOBODY, as_nobody


def _held_by_someone(cache: WeightCache, key: str) -> bool:
    """Whether an in-use hold is on ``key``: flock conflicts between open files, even in one process."""
    use_file = cache.store.use_lock_path(key)
    if not use_file.exists():
        return False
    fd = os.open(use_file, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


# --- read-only files -------------------------------------------------------------------------


def test_published_files_are_read_only_and_copies_are_writable(
    cache: WeightCache, make_image_dir, tmp_path: Path
) -> None:
    entry = cache.ensure(make_image_dir())
    assert {stat.S_IMODE(path.stat().st_mode) for path in entry.files} == {0o444}
    assert all(os.access(path.parent, os.W_OK) for path in entry.files)  # directories stay removable
    copied = cache.link(entry, tmp_path / "copy", mode="copy")
    assert all(os.access(copied / record.path, os.W_OK) for record in entry.manifest.files)
    hardlinked = cache.link(entry, tmp_path / "hard", mode="hardlink")
    assert stat.S_IMODE((hardlinked / entry.manifest.files[0].path).stat().st_mode) == 0o444


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A directory owned by ``nobody`` that it can reach (pytest's tmp_path is private to root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to act as another user")
    path = Path(tempfile.mkdtemp(prefix="weightcache-ro-"))
    path.chmod(0o755)
    os.chown(path, NOBODY, NOBODY)
    yield path
    shutil.rmtree(path)


def test_a_user_cannot_write_through_a_link_but_repair_gc_and_rm_still_work(nobody_dir: Path) -> None:
    def scenario() -> str:
        source = nobody_dir / "model"
        source.mkdir()
        (source / "weights.bin").write_bytes(b"v1" * 1000)
        cache = WeightCache(nobody_dir / "store")
        old = cache.ensure(source)
        link = cache.link(old, nobody_dir / "app")
        try:
            (link / "weights.bin").write_bytes(b"corrupt")
            return "wrote through the link"
        except PermissionError:
            pass
        (source / "weights.bin").write_bytes(b"v2" * 1000)
        new = cache.ensure(source)
        repaired = cache.ensure(source, repair=True)
        removed = [item.key for item in cache.gc(keep=1).removed]
        cache.remove(new)
        return f"{removed == [old.key]} {repaired.key == new.key} {cache.list() == []}"

    assert as_nobody(scenario) == "True True True"


# --- Entry as a path ---------------------------------------------------------------------------


def test_entry_works_wherever_a_path_does(cache: WeightCache, make_image_dir) -> None:
    entry = cache.ensure(make_image_dir())
    assert os.fspath(entry) == str(entry.path)
    assert isinstance(entry, os.PathLike)
    with open(entry / "configs/sam2.yaml", "rb") as handle:
        assert handle.read() == b"model: sam2\n"
    assert sorted(os.listdir(entry)) == ["configs", "groundingdino_swint_ogc.pth", "sam2_hiera_large.pt"]
    assert Path(entry) == entry.path


def test_a_missing_file_is_a_key_error(cache: WeightCache, make_image_dir) -> None:
    entry = cache.ensure(make_image_dir())
    with pytest.raises(KeyError) as caught:
        entry.file("nope.bin")
    assert isinstance(caught.value, EntryFileNotFoundError) and isinstance(caught.value, EntryNotFoundError)
    assert str(caught.value).startswith("entry ")  # a sentence, not KeyError's quoted repr


# --- in-use holds --------------------------------------------------------------------------------


def test_a_new_version_releases_the_one_it_superseded(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir({"weights.bin": b"one"})
    old = cache.ensure(source)
    assert _held_by_someone(cache, old.key)
    (source / "weights.bin").write_bytes(b"two!")
    new = cache.ensure(source)
    assert new.key != old.key
    assert not _held_by_someone(cache, old.key) and _held_by_someone(cache, new.key)
    forced = cache.ensure(source, force=True)
    assert forced.key == new.key and _held_by_someone(cache, new.key)


def test_a_version_probed_through_a_stale_ref_is_not_held(cache: WeightCache, tmp_path: Path) -> None:
    from tests.reliability.sources import StreamSource, write_tree

    root = tmp_path / "repo"
    old = cache.ensure(StreamSource(write_tree(root, {"w.bin": b"1"})))
    cache.release(old)
    shutil.rmtree(old.path)  # the remembered version is unusable, so ensure asks the source
    write_tree(root, {"w.bin": b"22"})
    new = cache.ensure(StreamSource(root))
    assert new.key != old.key
    assert not _held_by_someone(cache, old.key) and _held_by_someone(cache, new.key)


def test_use_holds_the_entry_for_the_block_only(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir({"weights.bin": b"w"})
    with cache.use(source) as entry:
        assert _held_by_someone(cache, entry.key)
        assert (entry / "weights.bin").read_bytes() == b"w"
    assert not _held_by_someone(cache, entry.key)


# --- error types -----------------------------------------------------------------------------------


def test_bad_arguments_are_value_errors(cache: WeightCache, make_image_dir, tmp_path: Path) -> None:
    entry = cache.ensure(make_image_dir())
    with pytest.raises(ValueError, match="at least one") as caught:
        cache.gc(keep=0)
    assert isinstance(caught.value, InvalidArgumentError)
    with pytest.raises(ValueError, match="unknown link mode"):
        cache.link(entry, tmp_path / "app", mode="reflink")  # type: ignore[arg-type]


def test_a_lost_lease_is_its_own_error(tmp_path: Path) -> None:
    lock = LeaseLock(tmp_path / "k.lock", timeout=1, description="k")

    class Compromised:
        reason = "refreshed too late"

    with lock, pytest.MonkeyPatch.context() as patch:
        patch.setattr(type(lock._lease), "compromise", property(lambda _self: Compromised()))
        with pytest.raises(LeaseLostError, match="lost the populate lease"):
            lock.check()
