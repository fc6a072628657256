"""Entries in use: another process's gc or rm never removes an entry a live process got from ensure()."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.reliability.workers import hear, start
from weightcache import EntryInUseError, WeightCache


def _new_version(source: Path) -> None:
    (source / "weights.bin").write_bytes(os.urandom(50_000 + len(os.listdir(source))))
    (source / f"v{len(os.listdir(source))}.txt").write_text("changed")


def test_gc_in_another_process_skips_an_entry_in_use(store_dir: Path, make_image_dir, tmp_path) -> None:
    source = make_image_dir({"weights.bin": os.urandom(100_000), "sub/config.json": b"{}"})
    user = start("hold", store_dir, source, tmp_path / "app")
    old_key = hear(user)["key"]
    _new_version(source)
    cache = WeightCache(store_dir)
    new_key = cache.ensure(source).key
    report = cache.gc(keep=1)
    assert report.removed == [] and report.skipped_busy == [old_key]
    user.stdin.write("read\n")  # type: ignore[union-attr]
    user.stdin.flush()  # type: ignore[union-attr]
    assert hear(user) == {"open_file_ok": True, "links_ok": True}
    assert user.wait(timeout=60) == 0
    assert [item.key for item in cache.gc(keep=1).removed] == [old_key]  # its user exited
    assert [entry.key for entry in cache.list()] == [new_key]


def test_rm_refuses_an_entry_in_use_and_force_removes_it(
    store_dir: Path, make_image_dir, tmp_path, cli
) -> None:
    source = make_image_dir({"weights.bin": os.urandom(100_000)})
    user = start("hold", store_dir, source, tmp_path / "app")
    key = hear(user)["key"]
    cache = WeightCache(store_dir)
    with pytest.raises(EntryInUseError, match="in use by another process") as caught:
        cache.remove(key)
    assert "--force" in str(caught.value) and "\n" not in str(caught.value)
    refused = cli("rm", key, "--store", store_dir)
    assert refused.exit_code == 1 and "in use" in refused.stderr
    assert cache.get(key).key == key

    assert cli("rm", key, "--force", "--store", store_dir).exit_code == 0
    assert cache.list() == []
    user.stdin.write("read\n")  # type: ignore[union-attr]
    user.stdin.flush()  # type: ignore[union-attr]
    # What --force costs, as documented: open files stay readable, symlinks dangle.
    assert hear(user) == {"open_file_ok": True, "links_ok": False}
    user.wait(timeout=60)


def test_a_killed_user_does_not_pin_its_entry(store_dir: Path, make_image_dir, tmp_path) -> None:
    source = make_image_dir({"weights.bin": os.urandom(10_000)})
    user = start("hold", store_dir, source, tmp_path / "app")
    key = hear(user)["key"]
    with pytest.raises(EntryInUseError):
        WeightCache(store_dir).remove(key)
    user.send_signal(signal.SIGKILL)
    user.wait(timeout=60)
    WeightCache(store_dir).remove(key)  # the kernel dropped the dead process's hold
    assert WeightCache(store_dir).list() == []


def test_release_and_own_process_removal(store_dir: Path, make_image_dir) -> None:
    source = make_image_dir({"weights.bin": os.urandom(10_000)})
    cache = WeightCache(store_dir)
    first = cache.ensure(source)
    _new_version(source)
    second = cache.ensure(source)
    # This process holds both; its own gc is deliberate, so its own holds do not block it.
    assert [item.key for item in cache.gc(keep=1).removed] == [first.key]
    cache.release(second)
    cache.remove(second)
    assert cache.list() == []


def test_readers_never_lose_files_under_gc_and_new_versions(store_dir: Path, make_image_dir) -> None:
    """Readers loop (ensure, read all, release) while versions change and gc runs without pause."""
    source = make_image_dir({"weights.bin": os.urandom(200_000), "a/b.bin": os.urandom(1000)})
    stop = store_dir.parent / "stop"
    collector = start("gc_loop", store_dir, stop)
    readers = [start("read_loop", store_dir, source, stop) for _ in range(3)]
    assert [hear(reader) for reader in readers] == [{"ready": True}] * 3
    for _ in range(20):
        staged = source.parent / "next.bin"
        staged.write_bytes(os.urandom(200_000 + len(os.listdir(source))))
        os.replace(staged, source / "weights.bin")  # readers copy the old file or the new, never a mix
        time.sleep(0.05)  # spreads the versions over the readers' rounds; no assertion depends on it
    stop.touch()
    results = [hear(reader) for reader in readers]
    collected = hear(collector)
    assert all(result["problems"] == [] for result in results), results
    assert collected["removed"] > 0 and collected["busy"] > 0, collected  # gc and readers did meet
    cache = WeightCache(store_dir)
    cache.gc(keep=1)
    assert len(cache.list()) == 1 and all(cache.verify(entry, deep=True).ok for entry in cache.list())
