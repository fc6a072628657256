"""FakeModalVolume behaves like a Modal Volume: per-container views, commit/reload, the laptop API."""

from __future__ import annotations

import ctypes
import io
import mmap
import os
import signal
from pathlib import Path

import modal.exception
import modal.volume
import pytest

from tests.helpers import run_python
from weightcache.testing import FakeModalVolume


@pytest.fixture
def volume(tmp_path: Path) -> FakeModalVolume:
    return FakeModalVolume(tmp_path / "volume", name="weights")


def test_writes_stay_in_their_container_until_commit(volume: FakeModalVolume) -> None:
    writer, reader = volume.container("writer"), volume.container("reader")
    (writer.mount_path / "model.bin").write_bytes(b"weights")
    assert not (reader.mount_path / "model.bin").exists()
    assert not (volume.container("before-commit").mount_path / "model.bin").exists()

    writer.commit()
    assert not (reader.mount_path / "model.bin").exists()  # a running container sees its start state...
    reader.reload()
    assert (reader.mount_path / "model.bin").read_bytes() == b"weights"  # ...until it reloads
    assert (volume.container("after-commit").mount_path / "model.bin").read_bytes() == b"weights"


def test_commit_merges_last_writer_wins_per_file(volume: FakeModalVolume) -> None:
    seed = volume.container("seed")
    for name in ("shared.txt", "mine.txt", "doomed.txt"):
        (seed.mount_path / name).write_text("v0")
    seed.exit()
    first, second = volume.container("first"), volume.container("second")
    (first.mount_path / "shared.txt").write_text("first")
    (first.mount_path / "mine.txt").write_text("first")
    (second.mount_path / "shared.txt").write_text("second")
    (second.mount_path / "doomed.txt").unlink()
    first.commit()
    second.commit()  # did not touch mine.txt, so it keeps first's version

    after = volume.container("after").mount_path
    assert (after / "shared.txt").read_text() == "second"
    assert (after / "mine.txt").read_text() == "first"
    assert not (after / "doomed.txt").exists()


def test_reload_commits_first_and_crash_loses_uncommitted_writes(volume: FakeModalVolume) -> None:
    container, other = volume.container("container"), volume.container("other")
    (other.mount_path / "theirs.txt").write_text("theirs")
    other.commit()
    (container.mount_path / "mine.txt").write_text("mine")
    container.reload()  # Modal may commit uncommitted changes on reload; the fake always does
    assert (container.mount_path / "theirs.txt").read_text() == "theirs"
    assert (container.mount_path / "mine.txt").read_text() == "mine"
    other.reload()
    assert (other.mount_path / "mine.txt").read_text() == "mine"

    (container.mount_path / "lost.txt").write_text("lost")
    container.crash()
    assert not container.mount_path.exists()
    with pytest.raises(RuntimeError, match="has ended"):
        container.commit()
    assert [entry.path for entry in volume.listdir("/")] == ["mine.txt", "theirs.txt"]


def test_a_sync_keeps_local_changes_and_takes_later_commits(volume: FakeModalVolume) -> None:
    seed = volume.container("seed")
    for name in ("edited-here.txt", "edited-there.txt", "deleted-there.txt"):
        (seed.mount_path / name).write_text("v0")
    seed.exit()
    here, there = volume.container("here"), volume.container("there")
    (there.mount_path / "edited-there.txt").write_text("there")
    (there.mount_path / "deleted-there.txt").unlink()
    there.commit()
    (here.mount_path / "edited-here.txt").write_text("here")
    here.reload()
    assert sorted(os.listdir(here.mount_path)) == ["edited-here.txt", "edited-there.txt"]
    assert (here.mount_path / "edited-here.txt").read_text() == "here"
    assert (here.mount_path / "edited-there.txt").read_text() == "there"


def test_context_manager_exits_with_a_final_commit(volume: FakeModalVolume) -> None:
    with volume.container() as container:
        (container.mount_path / "final.txt").write_text("saved on exit")
    assert b"".join(volume.read_file("final.txt")) == b"saved on exit"


def test_reload_refused_while_a_file_is_open_with_modals_message(volume: FakeModalVolume) -> None:
    container = volume.container()
    weights = container.mount_path / "checkpoints" / "model.bin"
    weights.parent.mkdir()
    weights.write_bytes(b"x" * 4096)
    container.commit()
    with open(weights, "rb"):
        with pytest.raises(RuntimeError) as refused:
            container.reload()
        # The annotation is what the real SDK's helper computes for the same mount.
        annotation = modal.volume._open_files_error_annotation(str(container.mount_path))
    assert str(refused.value) == f"there are open files preventing the operation: {annotation}"
    assert annotation == "path checkpoints/model.bin is open"
    container.reload()  # closed: fine again


def test_reload_refused_while_a_file_is_mapped(volume: FakeModalVolume) -> None:
    container = volume.container()
    weights = container.mount_path / "model.safetensors"
    weights.write_bytes(b"x" * 4096)
    # Map it and close the descriptor, as safetensors' loader does (Python's mmap would keep a dup).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    descriptor = os.open(weights, os.O_RDONLY)
    address = libc.mmap(None, 4096, mmap.PROT_READ, mmap.MAP_SHARED, descriptor, 0)
    os.close(descriptor)
    try:
        with pytest.raises(RuntimeError, match=r"^there are open files preventing the operation$"):
            container.reload()
    finally:
        libc.munmap(ctypes.c_void_p(address), ctypes.c_size_t(4096))
    container.reload()


def test_reload_refused_while_cwd_is_inside(volume: FakeModalVolume, monkeypatch: pytest.MonkeyPatch) -> None:
    container = volume.container()
    monkeypatch.chdir(container.mount_path)
    with pytest.raises(RuntimeError, match="cwd is inside volume"):
        container.reload()


def test_fail_next_commits(volume: FakeModalVolume) -> None:
    container = volume.container()
    (container.mount_path / "a.txt").write_text("a")
    container.fail_next_commits(1)
    with pytest.raises(RuntimeError):
        container.commit()
    assert volume.listdir("/") == []
    container.commit()
    assert [entry.path for entry in volume.listdir("/")] == ["a.txt"]


def test_laptop_listdir_and_read_file(volume: FakeModalVolume) -> None:
    with volume.container() as container:
        (container.mount_path / "dir" / "sub").mkdir(parents=True)
        (container.mount_path / "dir" / "sub" / "f.bin").write_bytes(b"12345")
        (container.mount_path / "top.txt").write_text("t")

    root = volume.listdir("/")
    assert all(isinstance(entry, modal.volume.FileEntry) for entry in root)
    assert [(entry.path, entry.type) for entry in root] == [
        ("dir", modal.volume.FileEntryType.DIRECTORY),
        ("top.txt", modal.volume.FileEntryType.FILE),
    ]
    assert [entry.path for entry in volume.listdir("dir", recursive=True)] == ["dir/sub", "dir/sub/f.bin"]
    [single] = volume.listdir("/dir/sub/f.bin")
    assert (single.path, single.size) == ("dir/sub/f.bin", 5)
    assert [entry.path for entry in volume.iterdir("dir")] == ["dir/sub", "dir/sub/f.bin"]
    assert b"".join(volume.read_file("/dir/sub/f.bin")) == b"12345"

    with pytest.raises(modal.exception.NotFoundError):
        volume.listdir("missing")
    chunks = volume.read_file("missing")  # a generator: the error comes on first use, as in Modal
    with pytest.raises(FileNotFoundError):
        next(chunks)


def test_batch_upload_is_all_or_nothing_and_refuses_overwrites(
    volume: FakeModalVolume, tmp_path: Path
) -> None:
    local = tmp_path / "local"
    (local / "nested").mkdir(parents=True)
    (local / "a.bin").write_bytes(b"a")
    (local / "nested" / "b.bin").write_bytes(b"b")

    with pytest.raises(KeyError), volume.batch_upload() as batch:
        batch.put_directory(local, "/model")
        raise KeyError("interrupted")
    with pytest.raises(modal.exception.NotFoundError):
        volume.listdir("model")

    with volume.batch_upload() as batch:
        batch.put_directory(local, "/model")
        batch.put_file(io.BytesIO(b"{}"), "model/config.json")
    assert [entry.path for entry in volume.listdir("model", recursive=True)] == [
        "model/a.bin",
        "model/config.json",
        "model/nested",
        "model/nested/b.bin",
    ]
    with pytest.raises(FileExistsError), volume.batch_upload() as batch:
        batch.put_file(local / "nested" / "b.bin", "model/a.bin")
    assert b"".join(volume.read_file("model/a.bin")) == b"a"
    with volume.batch_upload(force=True) as batch:
        batch.put_file(local / "nested" / "b.bin", "model/a.bin")
    assert b"".join(volume.read_file("model/a.bin")) == b"b"
    with pytest.raises(ValueError, match="cannot end with /"), volume.batch_upload() as batch:
        batch.put_file(local / "a.bin", "model/")

    # Containers started afterwards see the upload.
    assert (volume.container().mount_path / "model" / "nested" / "b.bin").read_bytes() == b"b"


def test_remove_file(volume: FakeModalVolume, tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"x")
    with volume.batch_upload() as batch:
        batch.put_file(tmp_path / "x", "d/x")
        batch.put_file(tmp_path / "x", "y")
    with pytest.raises(IsADirectoryError):
        volume.remove_file("d")
    volume.remove_file("d", recursive=True)
    volume.remove_file("/y")
    assert volume.listdir("/") == []
    with pytest.raises(FileNotFoundError):
        volume.remove_file("y")


CHILD_COMMITS = """
import sys
from weightcache.testing import FakeModalVolume
container = FakeModalVolume(sys.argv[1]).container()
(container.mount_path / "from-child.txt").write_text("hello from another process")
container.exit()
"""


def test_containers_in_other_processes_share_the_volume(volume: FakeModalVolume) -> None:
    container = volume.container()
    done = run_python(CHILD_COMMITS, str(volume.root))
    assert done.returncode == 0, done.stderr
    assert not (container.mount_path / "from-child.txt").exists()
    container.reload()
    assert (container.mount_path / "from-child.txt").read_text() == "hello from another process"
    assert os.listdir(volume.root / "containers") == [container.container_id]  # the child's view is gone


def _commit_killed_at_replace(volume: FakeModalVolume, nth: int) -> bool:
    """In a forked child, change the Volume and commit, SIGKILLed at its ``nth`` os.replace; say if it was."""
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            # A volume object of its own: file locks are not inherited across fork.
            container = FakeModalVolume(volume.root).container("killed")
            (container.mount_path / "a.txt").write_text("new")
            (container.mount_path / "sub").mkdir()
            (container.mount_path / "sub" / "b.txt").write_text("new")
            (container.mount_path / "c.txt").unlink()
            calls, replace = [0], os.replace

            def dying_replace(*args: object, **kwargs: object) -> None:
                calls[0] += 1
                if calls[0] == nth:
                    os.kill(os.getpid(), signal.SIGKILL)
                replace(*args, **kwargs)  # type: ignore[arg-type]

            os.replace = dying_replace  # type: ignore[assignment]
            container.commit()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WIFSIGNALED(status)


def test_a_container_killed_mid_commit_leaves_all_or_nothing(tmp_path: Path) -> None:
    """Modal applies a commit whole (one VolumeCommitRequest): a kill never leaves half of one."""
    old = {"a.txt": "old", "c.txt": "old"}
    new = {"a.txt": "new", "sub/b.txt": "new"}
    outcomes = set()
    for nth in range(1, 100):
        volume = FakeModalVolume(tmp_path / f"volume-{nth}")
        with volume.container("seed") as seed:
            for name, text in old.items():
                (seed.mount_path / name).write_text(text)
        killed = _commit_killed_at_replace(volume, nth)
        after = volume.container("after").mount_path
        files = [path for path in after.rglob("*") if path.is_file()]
        seen = {path.relative_to(after).as_posix(): path.read_text() for path in files}
        assert seen in (old, new), (nth, seen)
        outcomes.add("old" if seen == old else "new")
        committed = sorted(entry.path for entry in volume.listdir("/", recursive=True))
        expected = sorted([*seen, *(["sub"] if seen == new else [])])
        assert committed == expected, (nth, committed)  # no stray file
        if not killed:
            break
    assert outcomes == {"old", "new"}  # the kills landed both before and after the commit took effect
