"""FakeModalVolume follows modal 1.6's Volume code: commit reloads, errors, background commits, inodes."""

from __future__ import annotations

import inspect
import logging
import os
import time
from pathlib import Path

import modal.volume
import pytest

from weightcache.testing import FakeModalVolume
from weightcache.testing.fake_modal import OPEN_FILES_MESSAGE, V1_MAX_INODES


@pytest.fixture
def volume(tmp_path: Path) -> FakeModalVolume:
    return FakeModalVolume(tmp_path / "volume", name="weights")


def test_the_sdk_commit_reloads_unless_skip_reload() -> None:
    # What the fake models, read from the installed SDK rather than restated.
    source = inspect.getsource(modal.volume._Volume.commit)
    assert "if not resp.skip_reload:" in source and "_do_reload" in source
    assert (
        "except (ConflictError, NotFoundError) as exc:\n                raise RuntimeError(str(exc))"
        in source
    )
    assert OPEN_FILES_MESSAGE in inspect.getsource(modal.volume._Volume.reload)


def test_commit_reloads_so_the_container_sees_earlier_commits(volume: FakeModalVolume) -> None:
    first, second = volume.container("first"), volume.container("second")
    (first.mount_path / "theirs.txt").write_text("theirs")
    first.commit()
    (second.mount_path / "mine.txt").write_text("mine")
    second.commit()
    assert (second.mount_path / "theirs.txt").read_text() == "theirs"


def test_skip_reload_commits_without_reloading(volume: FakeModalVolume) -> None:
    first, second = volume.container("first"), volume.container("second", skip_reload=True)
    (first.mount_path / "theirs.txt").write_text("theirs")
    first.commit()
    (second.mount_path / "mine.txt").write_text("mine")
    second.commit()
    assert not (second.mount_path / "theirs.txt").exists()
    assert sorted(entry.path for entry in volume.listdir("/")) == ["mine.txt", "theirs.txt"]


def test_a_commit_with_open_files_persists_then_raises_like_the_sdk(volume: FakeModalVolume) -> None:
    container = volume.container()
    weights = container.mount_path / "model.bin"
    weights.write_bytes(b"weights")
    with open(weights, "rb"), pytest.raises(RuntimeError) as refused:
        container.commit()
    # The SDK's commit does not annotate the reload's refusal; its reload() does.
    assert str(refused.value) == OPEN_FILES_MESSAGE
    assert b"".join(volume.read_file("model.bin")) == b"weights"  # the data stayed committed
    assert (volume.container("later").mount_path / "model.bin").read_bytes() == b"weights"


def test_background_commits_publish_without_an_explicit_commit(volume: FakeModalVolume) -> None:
    container = volume.container(background_commit_seconds=0.05)
    (container.mount_path / "half-written.part").write_bytes(b"partial")
    deadline = time.monotonic() + 60  # waits for the condition, however slow the machine
    while not volume.listdir("/") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [entry.path for entry in volume.listdir("/")] == ["half-written.part"]
    container.crash()


def test_the_final_commit_at_exit_logs_its_failure(volume: FakeModalVolume, caplog) -> None:
    container = volume.container("failing")
    (container.mount_path / "lost.txt").write_text("lost")
    container.fail_next_commits(1)
    with caplog.at_level(logging.ERROR):
        container.exit()  # Modal logs a failed exit commit; it does not raise
    assert "the final commit of failing failed" in caplog.text
    assert volume.listdir("/") == []


def test_inodes_count_files_directories_and_symlinks(tmp_path: Path) -> None:
    assert FakeModalVolume(tmp_path / "v1").max_inodes == V1_MAX_INODES == 500_000
    assert FakeModalVolume(tmp_path / "v2", version=2).max_inodes is None
    volume = FakeModalVolume(tmp_path / "small", max_inodes=3)
    container = volume.container()
    (container.mount_path / "dir").mkdir()
    (container.mount_path / "dir" / "a").write_text("a")
    (container.mount_path / "b").write_text("b")
    container.commit()  # 3 inodes: at the limit
    (container.mount_path / "link").symlink_to("b")
    with pytest.raises(RuntimeError, match="would hold 4 inodes"):
        container.commit()
    (container.mount_path / "link").unlink()
    (container.mount_path / "dir" / "c").write_text("c")
    with pytest.raises(RuntimeError, match="past its limit of 3"):
        container.commit()
    assert sorted(entry.path for entry in volume.listdir("/", recursive=True)) == ["b", "dir", "dir/a"]


def test_linked_files_keep_containers_apart_for_writes_by_rename(tmp_path: Path) -> None:
    volume = FakeModalVolume(tmp_path / "volume", link_files=True)
    with volume.container("seed") as seed:
        (seed.mount_path / "model.bin").write_bytes(b"v1")
    reader, writer = volume.container("reader"), volume.container("writer")
    assert os.path.samefile(reader.mount_path / "model.bin", volume.root / "committed" / "model.bin")
    (writer.mount_path / "model.tmp").write_bytes(b"v2")
    os.replace(writer.mount_path / "model.tmp", writer.mount_path / "model.bin")
    writer.commit()
    assert (reader.mount_path / "model.bin").read_bytes() == b"v1"  # until it reloads
    reader.reload()
    assert (reader.mount_path / "model.bin").read_bytes() == b"v2"
    reader.commit()  # linking changed nothing it must publish again
    assert volume._state.load().files == {"model.bin": 2}  # the writer's commit, not published again
