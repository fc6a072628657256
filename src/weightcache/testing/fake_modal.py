"""``FakeModalVolume``: a Modal Volume simulated on local disk, across real processes.

Test code that runs inside Modal containers (``commit``/``reload``) and laptop code that
manages a Volume (``listdir``/``read_file``/``batch_upload``/``remove_file``) without a Modal
account::

    volume = FakeModalVolume(tmp_path / "volume")
    with volume.container() as container:            # a simulated container; commits when it exits
        store = ModalVolumeStore(container, container.mount_path)
        WeightCache(store).ensure(source)
    volume.listdir("entries")                        # the committed state, as a laptop sees it

It behaves like a Volume rather than recording calls: each container works in its own
directory (its mount path) holding the Volume as of its start; its writes stay there until
it commits (or reloads); a commit merges them last-writer-wins per file (deletions too);
``reload()`` brings in other containers' commits and, like Modal's, refuses while this
process has a file of the Volume open; a crash loses what was not committed. Open the
same ``root`` in several processes to simulate containers on several machines. What
differs from Modal is listed in docs/modal.md.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, TYPE_CHECKING

from ..constants import CHUNK_BYTES
from ..fsutil import remove_tree
from ._volume_state import CommittedState, View, copy_into, scan

if TYPE_CHECKING:
    from modal.volume import FileEntry

#: Modal's message when a reload meets open files (modal/volume.py, ``_Volume.reload``).
OPEN_FILES_MESSAGE = "there are open files preventing the operation"


class FakeModalVolume:
    """A Modal Volume kept in the directory ``root`` (created if missing).

    The object itself is the laptop's view of the Volume: its methods read and change the
    committed state, like a ``modal.Volume`` used outside Modal. :meth:`container` starts a
    simulated container, whose object stands in for the ``modal.Volume`` inside it.
    """

    def __init__(self, root: str | os.PathLike[str], *, name: str = "fake-volume") -> None:
        self.root = Path(root).absolute()
        self.name = name
        self._state = CommittedState(self.root)

    def __repr__(self) -> str:
        return f"FakeModalVolume({str(self.root)!r}, name={self.name!r})"

    def container(
        self, container_id: str | None = None, *, mount_path: str | os.PathLike[str] | None = None
    ) -> FakeVolumeContainer:
        """Start a simulated container that sees the Volume as committed now.

        Its view lives at ``mount_path`` (default ``<root>/containers/<container_id>``); whatever
        was there is replaced, as a new container starts fresh.
        """
        container_id = container_id or f"container-{os.getpid()}-{secrets.token_hex(3)}"
        mount = Path(mount_path) if mount_path is not None else self.root / "containers" / container_id
        remove_tree(mount)
        mount.mkdir(parents=True)
        return FakeVolumeContainer(self, container_id, View(self._state, mount.absolute()))

    # --- the laptop-side API of modal.Volume, over the committed state -----------------------

    def iterdir(self, path: str, *, recursive: bool = True) -> Iterator[FileEntry]:
        """Describe the file at ``path``, or what a directory holds (everything below it if ``recursive``).

        Paths in the results are relative to the Volume's root; a missing path raises
        ``modal.exception.NotFoundError``, as the Modal SDK does.
        """
        yield from self.listdir(path, recursive=recursive)

    def listdir(self, path: str, *, recursive: bool = False) -> list[FileEntry]:
        """:meth:`iterdir` as a list (``recursive`` defaults to ``False``, as in Modal)."""
        from modal.exception import NotFoundError

        relpath = _volume_path(path)
        with self._state.lock:
            target = self._state.tree / relpath
            if target.is_file():
                return [_file_entry(relpath, target)]
            if not target.is_dir():
                raise NotFoundError(f"No such file or directory: {path}")
            if recursive:
                tree = scan(target)
                names = sorted(tree.dirs | set(tree.files))
            else:
                names = sorted(os.listdir(target))
            prefix = f"{relpath}/" if relpath else ""
            return [_file_entry(prefix + name, target / name) for name in names]

    def read_file(self, path: str) -> Iterator[bytes]:
        """Yield the committed content of the file at ``path`` in chunks.

        A generator, as in Modal: a missing file raises :class:`FileNotFoundError` on first use.
        """
        relpath = _volume_path(path)
        with self._state.lock:
            try:
                handle = open(self._state.tree / relpath, "rb")  # noqa: SIM115  (closed below)
            except (FileNotFoundError, IsADirectoryError):
                raise FileNotFoundError(f"No such file: {path}") from None
        with handle:
            while chunk := handle.read(CHUNK_BYTES):
                yield chunk

    @contextlib.contextmanager
    def batch_upload(self, force: bool = False) -> Iterator[FakeUploadBatch]:
        """Collect uploads with ``put_file``/``put_directory``; apply them together when the block ends.

        As in Modal, nothing is uploaded if the block raises, and an existing file is an error
        (:class:`FileExistsError`) unless ``force``.
        """
        batch = FakeUploadBatch()
        yield batch
        with self._state.lock:
            index = self._state.load()
            for upload in batch.uploads:
                target = self._state.tree / upload.relpath
                if target.is_dir():
                    raise IsADirectoryError(f"cannot overwrite directory {upload.relpath} with a file")
                if target.exists() and not force:
                    raise FileExistsError(f"{upload.relpath} already exists; pass force=True to overwrite it")
            index.generation += 1
            for upload in batch.uploads:
                upload.apply(self._state.tree)
                index.files[upload.relpath] = index.generation
            self._state.save(index)

    def remove_file(self, path: str, recursive: bool = False) -> None:
        """Remove a file, or a directory (which needs ``recursive=True`` unless it is empty)."""
        relpath = _volume_path(path)
        with self._state.lock:
            target = self._state.tree / relpath
            if not relpath or not (target.is_file() or target.is_dir()):
                raise FileNotFoundError(f"No such file or directory: {path}")
            if target.is_dir() and any(target.iterdir()) and not recursive:
                raise IsADirectoryError(f"{path} is a non-empty directory; pass recursive=True")
            remove_tree(target)
            index = self._state.load()
            index.generation += 1
            index.files = {
                name: generation
                for name, generation in index.files.items()
                if name != relpath and not name.startswith(f"{relpath}/")
            }
            self._state.save(index)


class FakeVolumeContainer:
    """The Volume as one simulated container sees it: what ``modal.Volume`` is inside a container.

    Pass it where code expects the Volume (``ModalVolumeStore(container, container.mount_path)``).
    Use it as a context manager to :meth:`exit` at the end of the block.
    """

    def __init__(self, volume: FakeModalVolume, container_id: str, view: View) -> None:
        #: The Volume's name, like ``modal.Volume.name``.
        self.name = volume.name
        self.container_id = container_id
        self._view = view
        self._lock = threading.Lock()  # a heartbeat thread may commit while the main thread works
        self._failures_left = 0
        self._ended = False
        with self._lock:
            view.sync()

    @property
    def mount_path(self) -> Path:
        """The directory this container sees the Volume at."""
        return self._view.mount

    def __repr__(self) -> str:
        return f"FakeVolumeContainer({self.container_id!r}, mount_path={str(self.mount_path)!r})"

    def commit(self) -> None:
        """Make this container's changes visible to containers that start or reload afterwards."""
        with self._lock:
            self._check_running()
            if self._failures_left:
                self._failures_left -= 1
                raise RuntimeError("commit failed (simulated by FakeVolumeContainer.fail_next_commits)")
            self._view.commit()

    def reload(self) -> None:
        """Commit this container's changes, then bring in every other container's commits.

        Modal says a reload *may* commit uncommitted changes; the fake always does, so a
        reload never loses what another thread of this container is writing. Raises
        :class:`RuntimeError` with Modal's message while this process has a file of the view
        open (or mapped, or its working directory inside it), as Modal's ``reload()`` does.
        """
        with self._lock:
            self._check_running()
            blocked, annotation = _open_files(self.mount_path)
            if blocked:
                message = f"{OPEN_FILES_MESSAGE}: {annotation}" if annotation else OPEN_FILES_MESSAGE
                raise RuntimeError(message)
            self._view.commit()
            self._view.sync()

    def fail_next_commits(self, count: int) -> None:
        """Make the next ``count`` commits raise :class:`RuntimeError`, to test retry paths."""
        self._failures_left = count

    def exit(self) -> None:
        """End the container the way Modal does: a final commit, then the view is gone."""
        self.commit()
        self._end()

    def crash(self) -> None:
        """End the container abruptly (killed, preempted): uncommitted writes are lost."""
        self._end()

    def __enter__(self) -> FakeVolumeContainer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._ended:
            self.exit()

    def _end(self) -> None:
        with self._lock:
            self._ended = True
            remove_tree(self.mount_path)

    def _check_running(self) -> None:
        if self._ended:
            raise RuntimeError(f"container {self.container_id} has ended; start another with container()")


class FakeUploadBatch:
    """What ``FakeModalVolume.batch_upload()`` yields: ``put_file`` and ``put_directory``, as in Modal."""

    def __init__(self) -> None:
        self.uploads: list[_Upload] = []

    def put_file(
        self,
        local_file: str | os.PathLike[str] | IO[bytes],
        remote_path: str | PurePosixPath,
        mode: int | None = None,
    ) -> None:
        """Upload a local file (or a readable binary file object) to ``remote_path`` (with ``mode``)."""
        if str(remote_path).endswith("/"):
            raise ValueError(f"remote_path ({remote_path}) must refer to a file - cannot end with /")
        source = local_file if hasattr(local_file, "read") else Path(local_file)  # type: ignore[arg-type]
        self.uploads.append(_Upload(source, _volume_path(remote_path), mode))  # type: ignore[arg-type]

    def put_directory(
        self, local_path: str | os.PathLike[str], remote_path: str | PurePosixPath, recursive: bool = True
    ) -> None:
        """Upload every file of a local directory (and below, when ``recursive``) under ``remote_path``."""
        local = Path(local_path)
        if not local.is_dir():
            raise NotADirectoryError(f"{local} is not a directory")
        files = local.rglob("*") if recursive else local.glob("*")
        for path in sorted(files):
            if path.is_file():
                self.put_file(path, PurePosixPath(remote_path) / path.relative_to(local).as_posix())


def _volume_path(path: str | PurePosixPath) -> str:
    """A Volume path as a relative POSIX path (``""`` for the root); ``..`` is refused."""
    parts = [part for part in PurePosixPath(path).parts if part not in ("/", ".")]
    if ".." in parts:
        raise ValueError(f"Volume path {path!r} may not contain '..'")
    return "/".join(parts)


def _file_entry(relpath: str, path: Path) -> FileEntry:
    from modal.volume import FileEntry, FileEntryType

    info = path.stat()
    kind = FileEntryType.DIRECTORY if path.is_dir() else FileEntryType.FILE
    return FileEntry(path=relpath, type=kind, mtime=int(info.st_mtime), size=info.st_size)


@dataclass(frozen=True)
class _Upload:
    source: Path | IO[bytes]
    relpath: str
    mode: int | None

    def apply(self, tree: Path) -> None:
        dest = tree / self.relpath
        if isinstance(self.source, Path):
            copy_into(self.source, dest)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.upload")
            with open(tmp, "wb") as handle:
                shutil.copyfileobj(self.source, handle, CHUNK_BYTES)
            os.replace(tmp, dest)
        if self.mode is not None:
            os.chmod(dest, self.mode)


def _open_files(mount: Path) -> tuple[bool, str | None]:
    """Whether this process holds the view open, and Modal's annotation saying how.

    Like Modal's client, the annotation names an open descriptor or the working directory; a
    file that is only memory-mapped (an mmap'd checkpoint) blocks a reload too, unannotated.
    Needs ``/proc`` (Linux); elsewhere nothing is found.
    """
    root = os.path.realpath(mount)
    if not os.path.isdir("/proc/self/fd"):
        return False, None
    if _inside(os.path.realpath(os.getcwd()), root):
        return True, "cwd is inside volume"
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if _inside(target, root):
                return True, f"path {os.path.relpath(target, root)} is open"
    with open("/proc/self/maps") as maps:
        mapped = any(_inside(line.split(maxsplit=5)[-1].strip(), root) for line in maps if "/" in line)
    return mapped, None


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)
