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
``reload()`` brings in other containers' commits and, like Modal's, refuses while a file
of the Volume is open; ``commit()`` reloads after committing, as Modal's does; a crash loses
what was not committed. Open the
same ``root`` in several processes to simulate containers on several machines. What
differs from Modal is listed in docs/modal.md.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING

from .._core.constants import CHUNK_BYTES
from .._transport.fsutil import remove_tree
from ._fake_container import OPEN_FILES_MESSAGE, FakeVolumeContainer
from ._volume_state import CommittedState, View, copy_into, empty_view, scan

if TYPE_CHECKING:
    from modal.volume import FileEntry

__all__ = ["OPEN_FILES_MESSAGE", "FakeModalVolume", "FakeUploadBatch", "FakeVolumeContainer"]

#: Modal's published inode limit for v1 Volumes (files, directories and symlinks); v2 has none.
V1_MAX_INODES = 500_000


class FakeModalVolume:
    """A Modal Volume kept in the directory ``root`` (created if missing).

    The object itself is the laptop's view of the Volume: its methods read and change the
    committed state, like a ``modal.Volume`` used outside Modal. :meth:`container` starts a
    simulated container, whose object stands in for the ``modal.Volume`` inside it.
    ``version`` (1 or 2) sets the inode limit commits are held to, unless ``max_inodes`` is given.
    ``link_files`` shares file data between containers by hard links instead of copies, so a
    reload costs what Modal's does (metadata, not bytes); then a write *in place* into a file
    that came from the Volume reaches every container at once (files replaced by a rename, as
    weightcache writes them, stay isolated). Every process opening ``root`` must agree on it.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        name: str = "fake-volume",
        version: int = 1,
        max_inodes: int | None = None,
        link_files: bool = False,
    ) -> None:
        if version not in (1, 2):
            raise ValueError(f"version must be 1 or 2, not {version!r}")
        self.root = Path(root).absolute()
        self.name = name
        #: Commits past this many inodes fail: ``max_inodes`` if given, else Modal's published limit
        #: for the version (500,000 for v1; v2 has none).
        self.max_inodes = max_inodes if max_inodes is not None else (V1_MAX_INODES if version == 1 else None)
        self._state = CommittedState(self.root, max_inodes=self.max_inodes, link_files=link_files)

    def __repr__(self) -> str:
        return f"FakeModalVolume({str(self.root)!r}, name={self.name!r})"

    def container(
        self,
        container_id: str | None = None,
        *,
        mount_path: str | os.PathLike[str] | None = None,
        skip_reload: bool = False,
        background_commit_seconds: float | None = None,
    ) -> FakeVolumeContainer:
        """Start a simulated container that sees the Volume as committed now.

        Its view lives at ``mount_path`` (default ``<root>/containers/<container_id>``); whatever
        was there is replaced, as a new container starts fresh. ``skip_reload`` makes its commits
        not reload (as when Modal's server answers ``skip_reload``); ``background_commit_seconds``
        turns on Modal's periodic background commits.
        """
        container_id = container_id or f"container-{os.getpid()}-{secrets.token_hex(3)}"
        mount = Path(mount_path) if mount_path is not None else self.root / "containers" / container_id
        empty_view(mount)
        return FakeVolumeContainer(
            self,
            container_id,
            View(self._state, mount.absolute()),
            skip_reload=skip_reload,
            background_commit_seconds=background_commit_seconds,
        )

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
        with self._state.locked():
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
        with self._state.locked():
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
        with self._state.locked():
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
        with self._state.locked():
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
