"""Linking an entry into the path an application expects (the seeds' ``/root/data/weights``)."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Literal

from .._transport.fsutil import remove_tree, unique_suffix
from ..entry import Entry
from ..errors import InvalidArgumentError, LinkError

LinkMode = Literal["symlink", "hardlink", "copy"]
LINK_MODES: tuple[LinkMode, ...] = ("symlink", "hardlink", "copy")


def link_entry(
    entry: Entry,
    dest: str | os.PathLike[str],
    *,
    mode: LinkMode = "symlink",
    whole: bool = False,
    overwrite: bool = False,
) -> Path:
    """Make the entry's files appear at ``dest`` and return ``dest``.

    By default each file is linked into the directory ``dest`` (``dest/<relative path>``),
    leaving other files there alone. With ``whole=True``, ``dest`` itself becomes the entry
    (a symlink to ``entry.path``, or a tree of hardlinks or copies). Existing files and links
    are replaced atomically; parents are created; a non-empty real directory in the way is
    refused unless ``overwrite=True``. A destination inside the store, or an unknown
    ``mode``, raises :class:`InvalidArgumentError` (a ``ValueError``).

    Entry files are read-only; ``copy`` gives the application writable copies.
    """
    if mode not in LINK_MODES:
        raise InvalidArgumentError(f"unknown link mode {mode!r}; use one of {', '.join(LINK_MODES)}")
    target = Path(dest).expanduser().absolute()
    _refuse_inside_store(entry, target, whole=whole)
    try:
        if whole:
            _place_whole(entry, target, mode, overwrite)
        else:
            if target.exists() and not target.is_dir():
                raise LinkError(
                    f"{target} is a file; linking file by file needs a directory (or use whole=True)"
                )
            for record in entry.manifest.files:
                _place(entry.path / record.path, target / record.path, mode, overwrite)
    except OSError as exc:
        raise _link_error(exc, target, mode) from exc
    return target


def _refuse_inside_store(entry: Entry, target: Path, *, whole: bool) -> None:
    """A destination inside the store would replace cached files with links to themselves."""
    store_root = os.path.realpath(entry.path.parents[2])  # <root>/entries/<key>/files
    # whole=True replaces ``target`` itself (a link there is not followed); otherwise files go inside it.
    parent = os.path.realpath(target.parent)
    written = os.path.join(parent, target.name) if whole else os.path.realpath(target)
    if os.path.commonpath([written, store_root]) == store_root:
        raise InvalidArgumentError(
            f"cannot link into {target}: it is inside the store {store_root}; link to a directory outside it"
        )


def _place_whole(entry: Entry, target: Path, mode: LinkMode, overwrite: bool) -> None:
    if mode == "symlink":
        _place(entry.path, target, "symlink", overwrite)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    built = target.with_name(f".{target.name}.{unique_suffix()}.tmp")
    try:
        for record in entry.manifest.files:
            (built / record.path).parent.mkdir(parents=True, exist_ok=True)
            _make(entry.path / record.path, built / record.path, mode)
        _swap_into(built, target, overwrite)
    finally:
        remove_tree(built)


def _place(source: Path, target: Path, mode: LinkMode, overwrite: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{unique_suffix()}.tmp")
    try:
        _make(source, temp, mode)
        _swap_into(temp, target, overwrite)
    finally:
        remove_tree(temp)


def _make(source: Path, target: Path, mode: LinkMode) -> None:
    if mode == "symlink":
        os.symlink(source, target)
    elif mode == "hardlink":
        os.link(source, target)
    else:
        shutil.copyfile(source, target)


def _swap_into(new: Path, target: Path, overwrite: bool) -> None:
    """Rename ``new`` onto ``target``, clearing a directory in the way only when allowed."""
    if target.is_dir() and not target.is_symlink():
        if any(target.iterdir()) and not overwrite:
            raise LinkError(
                f"{target} is a non-empty directory; pass overwrite=True (--overwrite) to replace it"
            )
        aside = target.with_name(f".{target.name}.{unique_suffix()}.old")
        os.rename(target, aside)
        try:
            os.rename(new, target)
        except OSError:
            os.rename(aside, target)
            raise
        remove_tree(aside)
        return
    os.replace(new, target)


def _link_error(exc: OSError, target: Path, mode: LinkMode) -> LinkError:
    if exc.errno == errno.EXDEV:
        return LinkError(
            f"cannot hardlink into {target}: it is on another filesystem than the store; use symlink or copy"
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return LinkError(f"cannot write to {target} ({exc.strerror}); choose a writable destination")
    return LinkError(f"could not {mode} into {target}: {exc.strerror or exc}")
