"""Small filesystem helpers: safe relative paths, atomic writes, error translation."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from ..errors import StoreFullError, StoreNotWritableError, UnsafePathError, WeightCacheError

_READ_ONLY_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}


def safe_relpath(name: str) -> str:
    """Return ``name`` as a normalised relative POSIX path, or raise :class:`UnsafePathError`.

    Rejects what could escape an entry directory: absolute paths, ``..`` parts, empty
    names, NUL bytes and backslashes (a Windows separator that POSIX would keep in a name);
    and names that are not valid UTF-8, which a manifest (JSON) cannot record.
    """
    if not name or "\x00" in name or "\\" in name:
        raise UnsafePathError(f"file name {name!r} is not a usable relative path; rename the file")
    if not name.isascii():
        check_utf8(name)
    path = PurePosixPath(name)
    if path.is_absolute() or any(part in ("..", "") for part in path.parts):
        raise UnsafePathError(
            f"file name {name!r} would escape the entry directory; use a plain relative path"
        )
    parts = [part for part in path.parts if part != "."]
    if not parts:
        raise UnsafePathError(f"file name {name!r} names no file; use a plain relative path")
    return "/".join(parts)


def check_utf8(name: str) -> None:
    """Raise :class:`UnsafePathError` if ``name`` (as ``os`` decodes file names) is not valid UTF-8."""
    try:
        name.encode()
    except UnicodeEncodeError:
        raise UnsafePathError(
            f"file name {os.fsencode(name)!r} is not valid UTF-8, so a manifest cannot record it; "
            "rename the file"
        ) from None


def open_regular(path: str | os.PathLike[str]) -> int | None:
    """Open ``path`` for reading if it is a regular file; ``None`` if it is anything else.

    Opens without blocking (``O_NONBLOCK``) and checks the open file itself, so a FIFO or
    device swapped in for a file never blocks the caller, and no check-then-open race remains.
    ``O_NONBLOCK`` has no effect on reads of a regular file.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    if stat.S_ISREG(os.fstat(fd).st_mode):
        return fd
    os.close(fd)
    return None


def unique_suffix() -> str:
    """A short random token for temporary names that never collide between processes."""
    return f"{os.getpid()}-{secrets.token_hex(6)}"


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a rename inside it) to disk; best effort where unsupported."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_tree_dirs(root: Path) -> None:
    """Flush every directory under ``root`` (inclusive): the names of files just written survive a crash."""
    for dirpath, _dirs, _files in os.walk(root):
        fsync_dir(Path(dirpath))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old content or the new, never a mix.

    Writes a temporary sibling, fsyncs it, renames it over ``path`` and fsyncs the directory.
    """
    tmp = path.with_name(f".{path.name}.{unique_suffix()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def remove_tree(path: Path) -> None:
    """Remove a file, symlink or directory tree if it exists; missing is fine."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
        return
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return
    except PermissionError:
        # A read-only directory inside the tree (copied from a read-only image dir) blocks removal.
        for dirpath, _dirs, _files in os.walk(path):
            with contextlib.suppress(OSError):
                os.chmod(dirpath, 0o755)
        shutil.rmtree(path)


def tree_size(path: Path) -> int:
    """Total size in bytes of the regular files under ``path`` (0 if it does not exist)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


@contextlib.contextmanager
def store_write_errors(store: str, needed_bytes: Callable[[], int] | None = None) -> Iterator[None]:
    """Turn low-level write failures inside a store into clear weightcache errors.

    ``needed_bytes`` is asked, after a failure, how much the failed operation needed.
    """
    try:
        yield
    except WeightCacheError:
        raise
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            need = f"; this entry needs {needed_bytes():,} bytes" if needed_bytes and needed_bytes() else ""
            raise StoreFullError(
                f"store {store} ran out of space{need}; free space there or point --store elsewhere"
            ) from exc
        if exc.errno in _READ_ONLY_ERRNOS:
            raise not_writable_error(store, exc.strerror or "permission denied") from exc
        if exc.errno == errno.ENOTDIR:
            raise StoreNotWritableError(
                f"store {store} lies below something that is not a directory ({exc.filename}); "
                "choose a store path whose parents are directories"
            ) from exc
        raise


def not_writable_error(store: str, reason: str) -> StoreNotWritableError:
    """The error for a write refused by a read-only or unwritable store."""
    return StoreNotWritableError(
        f"store {store} is not writable ({reason}); cached entries can be read but a miss "
        "cannot be populated there, so mount it read-write or choose another store"
    )
