"""The on-disk machinery behind :class:`~weightcache.testing.FakeModalVolume`.

A Volume is a *committed tree* (a directory) plus an index giving each committed file the
generation of the commit that last wrote it. A simulated container works in a *view*: a
directory holding a copy of the committed tree as of its start or last sync, and a *base*
remembering, per file, the generation it was copied from and its stat signature.
Comparing the view with its base tells what the container changed, which is exactly what
a commit merges into the committed tree (last writer wins, per file, deletions included);
comparing the base with the index tells what other containers changed, which is what a
sync brings in.
Everything that touches the committed tree holds one file lock, so commits from many
processes are atomic with respect to each other and to reloads.

A commit is also atomic when its process is killed half-way, as Modal's is: the container sends
one ``VolumeCommitRequest`` (``_Volume.commit`` in modal/volume.py) and the server applies it
whole. The fake copies what changed into a pending directory outside the tree, writes a journal
naming every change, then applies it; whoever takes the lock next finishes a journal a killed
process left (and discards a pending directory no journal names), so the tree is never seen
half-committed and no stray file is left in it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from filelock import FileLock

from .._transport.fsutil import remove_tree, unique_suffix

#: (inode, size, mtime_ns, ctime_ns): any write to a file, or its replacement, changes it.
FileSignature = tuple[int, int, int, int]


def signature(info: os.stat_result, *, ctime: bool = True) -> FileSignature:
    """The signature of a file from its ``lstat`` (without ctime, which a new hard link changes)."""
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns if ctime else 0)


@dataclass
class Tree:
    """The regular files (with signatures) and directories under a root, as relative POSIX paths."""

    files: dict[str, FileSignature] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    links: set[str] = field(default_factory=set)


def scan(root: Path, *, ctime: bool = True) -> Tree:
    """Walk ``root``; files that vanish during the walk (another thread renaming them) are skipped."""
    tree = Tree()
    for dirpath, dirnames, filenames in os.walk(root):
        relative = os.path.relpath(dirpath, root)
        prefix = "" if relative == "." else relative.replace(os.sep, "/") + "/"
        tree.links.update(prefix + name for name in dirnames if os.path.islink(os.path.join(dirpath, name)))
        dirnames[:] = [name for name in dirnames if not os.path.islink(os.path.join(dirpath, name))]
        tree.dirs.update(prefix + name for name in dirnames)
        for name in filenames:
            try:
                info = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode):
                tree.files[prefix + name] = signature(info, ctime=ctime)
            elif stat.S_ISLNK(info.st_mode):
                tree.links.add(prefix + name)
    return tree


def make_room(dest: Path) -> None:
    """Prepare ``dest`` to receive a file by rename: its parents exist, a directory there is gone."""
    if dest.is_dir() and not dest.is_symlink():
        remove_tree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)


def copy_into(src: Path, dest: Path) -> None:
    """Copy a file so that readers of ``dest`` see the old content or the new, never a mix."""
    make_room(dest)
    tmp = dest.with_name(f".fakevolume-{unique_suffix()}.tmp")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def link_into(src: Path, dest: Path) -> None:
    """Hard-link ``src`` at ``dest``, replacing what was there in one rename (a copy across filesystems)."""
    make_room(dest)
    tmp = dest.with_name(f".fakevolume-{unique_suffix()}.tmp")
    try:
        os.link(src, tmp)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        copy_into(src, dest)
        return
    os.replace(tmp, dest)


def replace_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling and a rename: a kill leaves old or new.

    No fsync: the fake models processes killed, not machines losing power, and a SIGKILL
    leaves the page cache intact; an fsync per commit would make every reload milliseconds slower.
    """
    tmp = path.with_name(f".{path.name}.{unique_suffix()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def is_mount_point(path: Path) -> bool:
    """Whether ``path`` is a mount point; bind mounts too, which ``os.path.ismount`` misses."""
    from ..providers.stores._modal_mounts import mount_points

    return os.path.realpath(path) in mount_points()


def empty_view(mount: Path) -> None:
    """Make ``mount`` an empty directory; a mount point (a container simulation's) is emptied, not removed."""
    if is_mount_point(mount):
        for child in list(mount.iterdir()):
            remove_tree(child)
        return
    remove_tree(mount)
    mount.mkdir(parents=True)


def remove_empty_dirs(root: Path, relpaths: set[str]) -> None:
    """Remove these directories under ``root``, deepest first, where they are empty."""
    for relpath in sorted(relpaths, key=lambda path: path.count("/"), reverse=True):
        with contextlib.suppress(OSError):
            (root / relpath).rmdir()


class InodeLimitError(Exception):
    """A commit would take the Volume past its inode limit (nothing of it was applied)."""


@dataclass
class Index:
    """The committed generation counter and the generation that last wrote each committed file."""

    generation: int = 0
    files: dict[str, int] = field(default_factory=dict)


@dataclass
class Changes:
    """One commit's changes to the committed tree, as its journal records them.

    ``moved`` files wait in ``pending`` (a directory name under the state's pending root);
    ``generation`` is the generation the commit creates and every moved file gets.
    """

    pending: str
    generation: int
    moved: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    made_dirs: list[str] = field(default_factory=list)
    removed_dirs: list[str] = field(default_factory=list)


class CommittedState:
    """A Volume's committed tree and index under ``root``, shared by every process that opens it."""

    def __init__(self, root: Path, *, max_inodes: int | None = None, link_files: bool = False) -> None:
        #: Files, directories and symlinks a commit may leave on the Volume (``None``: no limit).
        self.max_inodes = max_inodes
        #: Share file data between the committed tree and views by hard links instead of copies.
        self.link_files = link_files
        self.tree = root / "committed"
        self.tree.mkdir(parents=True, exist_ok=True)
        self._root = root
        self._index_path = root / "index.json"
        self._journal_path = root / "journal.json"
        self._pending_root = root / "pending"
        #: Held by everything that reads or changes the committed tree; take it with :meth:`locked`.
        self.lock = FileLock(root / "volume.lock")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold :attr:`lock`, first finishing (or discarding) a commit a killed process left."""
        with self.lock:
            self._recover()
            yield

    def pending_dir(self) -> Path:
        """A new directory, outside the tree, where one commit stages the files it changes."""
        path = self._pending_root / unique_suffix()
        path.mkdir(parents=True)
        return path

    def apply(self, changes: Changes) -> None:
        """Make ``changes`` the tree's and the index's, all or nothing (call inside :meth:`locked`)."""
        replace_bytes(self._journal_path, json.dumps(asdict(changes)).encode())
        self._roll_forward(changes)

    def _roll_forward(self, changes: Changes) -> None:
        # Idempotent: a move already done has left nothing in pending, a delete nothing to delete.
        pending = self._pending_root / changes.pending
        for relpath in changes.moved:
            staged, dest = pending / relpath, self.tree / relpath
            if not os.path.lexists(staged):
                continue
            make_room(dest)
            os.replace(staged, dest)
        for relpath in changes.deleted:
            with contextlib.suppress(FileNotFoundError):
                (self.tree / relpath).unlink()
        for relpath in changes.made_dirs:
            (self.tree / relpath).mkdir(parents=True, exist_ok=True)
        remove_empty_dirs(self.tree, set(changes.removed_dirs))
        index = self.load()
        if index.generation < changes.generation:
            index.files.update(dict.fromkeys(changes.moved, changes.generation))
            for relpath in changes.deleted:
                index.files.pop(relpath, None)
            index.generation = changes.generation
            self.save(index)
        self._journal_path.unlink()
        remove_tree(pending)

    def _recover(self) -> None:
        if self._journal_path.exists():
            self._roll_forward(Changes(**json.loads(self._journal_path.read_bytes())))
        if self._pending_root.is_dir():
            for leftover in list(self._pending_root.iterdir()):  # killed before its journal was written
                remove_tree(leftover)
        for leftover in self._root.glob(".*.tmp"):  # a journal or index write killed before its rename
            leftover.unlink(missing_ok=True)

    def load(self) -> Index:
        """The index as last saved (call with :attr:`lock` held)."""
        try:
            data = json.loads(self._index_path.read_bytes())
        except FileNotFoundError:
            return Index()
        return Index(generation=data["generation"], files=data["files"])

    def save(self, index: Index) -> None:
        """Save the index atomically (call with :attr:`lock` held)."""
        data = {"generation": index.generation, "files": index.files}
        replace_bytes(self._index_path, json.dumps(data).encode())

    def transfer(self, src: Path, dest: Path) -> None:
        """Put ``src``'s content at ``dest``: a copy, or a hard link with :attr:`link_files`."""
        (link_into if self.link_files else copy_into)(src, dest)

    def scan(self, root: Path) -> Tree:
        """:func:`scan` with the signatures this state compares (no ctime when files are linked)."""
        return scan(root, ctime=not self.link_files)


class View:
    """One container's copy of the committed tree at ``mount``, and what it was copied from."""

    def __init__(self, state: CommittedState, mount: Path) -> None:
        self.state = state
        self.mount = mount
        self._base_files: dict[str, tuple[int, FileSignature]] = {}
        self._base_dirs: set[str] = set()

    def sync(self) -> None:
        """Bring into the view what other containers committed since it last synced.

        Files this container created, changed or deleted since are left as they are (a
        commit publishes them); a file another container changed too is replaced by the
        committed version, which is the later write.
        """
        with self.state.locked():
            index = self.state.load()
            local = self.state.scan(self.mount)
            committed_dirs = self.state.scan(self.state.tree).dirs
            for relpath, (_generation, sig) in list(self._base_files.items()):
                if relpath not in index.files:  # deleted by another container
                    if local.files.get(relpath) == sig:
                        (self.mount / relpath).unlink()
                    del self._base_files[relpath]
            for relpath, generation in index.files.items():
                base = self._base_files.get(relpath)
                if base is None or base[0] != generation:
                    self.state.transfer(self.state.tree / relpath, self.mount / relpath)
                    info = os.lstat(self.mount / relpath)
                    self._base_files[relpath] = (generation, signature(info, ctime=not self.state.link_files))
            for relpath in committed_dirs:
                (self.mount / relpath).mkdir(parents=True, exist_ok=True)
            remove_empty_dirs(self.mount, self._base_dirs - committed_dirs)
            self._base_dirs = committed_dirs

    def commit(self) -> None:
        """Merge what the container changed since its last sync into the committed tree, all or nothing."""
        with self.state.locked():
            index = self.state.load()
            local = self.state.scan(self.mount)
            self._check_inodes(index, local)
            pending = self.state.pending_dir()
            changes = Changes(pending=pending.name, generation=index.generation + 1)
            copied: dict[str, FileSignature] = {}
            for relpath, sig in local.files.items():
                base = self._base_files.get(relpath)
                if base is not None and base[1] == sig:
                    continue
                try:
                    self.state.transfer(self.mount / relpath, pending / relpath)
                except FileNotFoundError:
                    continue  # renamed away since the scan; the next commit sees where it went
                # The signature from before the copy: a write racing the copy shows as a change next time.
                copied[relpath] = sig
            changes.moved = sorted(copied)
            changes.deleted = sorted(path for path in self._base_files if path not in local.files)
            changes.made_dirs = sorted(local.dirs - self._base_dirs)
            changes.removed_dirs = sorted(self._base_dirs - local.dirs)
            if not (changes.moved or changes.deleted or changes.made_dirs or changes.removed_dirs):
                remove_tree(pending)  # nothing changed: nothing to commit
                return
            self.state.apply(changes)
            for relpath, sig in copied.items():
                self._base_files[relpath] = (changes.generation, sig)
            for relpath in changes.deleted:
                del self._base_files[relpath]
            self._base_dirs = local.dirs

    def _check_inodes(self, index: Index, local: Tree) -> None:
        """Refuse a commit whose result would pass the limit; symlinks count though the fake drops them."""
        if self.state.max_inodes is None:
            return
        deleted = {path for path in self._base_files if path not in local.files}
        files = (set(index.files) - deleted) | set(local.files)
        dirs = self.state.scan(self.state.tree).dirs | local.dirs
        inodes = len(files) + len(dirs) + len(local.links)
        if inodes > self.state.max_inodes:
            raise InodeLimitError(
                f"Volume would hold {inodes} inodes (files, directories and symlinks), past its limit "
                f"of {self.state.max_inodes}; remove files before committing"
            )
