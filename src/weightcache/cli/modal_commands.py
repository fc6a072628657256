"""Commands that move entries between stores: push and pull (Modal Volumes), export and import (archives).

``ls`` and ``verify`` take ``--modal-volume`` too; they call :func:`remote_entries` and
:func:`remote_reports` here. Modal is imported only by these commands, never by the others.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.markup import escape

from .._core.layout import is_valid_key
from .._core.verify import VerifyReport
from ..cache import WeightCache
from ..entry import Entry
from ..errors import EntryNotFoundError
from ..providers.stores import remote_volume
from ..providers.stores.remote_volume import RemoteVolumeStore, modal_errors
from .app import command, open_cache, options
from .progress import RichProgress
from .render import EntryInfo, human_bytes, plural, print_json, show, stderr, stdout

VolumeNameOpt = Annotated[
    str, typer.Option("--modal-volume", help="The Modal Volume's name.", show_default=False)
]


@command
def push(
    source: Annotated[str, typer.Argument(help="The source, as given to ensure.")],
    modal_volume: VolumeNameOpt,
) -> None:
    """Populate SOURCE locally, then upload it to a Modal Volume (created if missing) before deploying."""
    cache = open_cache()
    with RichProgress(stderr) as progress:
        entry = cache.ensure(source, progress=progress)
    if entry.hit:  # every container will trust these bytes: rehash them (and re-fetch if damaged)
        entry = cache.ensure(source, repair=True)
    size = human_bytes(entry.total_bytes)
    stderr.print(f"uploading {entry.key} ({size}) to Modal Volume {escape(modal_volume)}", highlight=False)
    with modal_errors(modal_volume):
        report = remote_volume.push(_volume(modal_volume, create=True), cache.store, entry)
    if options().json:
        print_json(report)
    elif report.already_present:
        stdout.print(f"{entry.key} is already on Modal Volume {escape(modal_volume)}; nothing uploaded")
    else:
        stdout.print(
            f"pushed {entry.key} to Modal Volume {escape(modal_volume)}: {plural(report.files, 'file')}, "
            f"{human_bytes(report.bytes)}",
            highlight=False,
        )


@command
def pull(
    key: Annotated[str, typer.Argument(help="The entry's key (see ls --modal-volume).")],
    modal_volume: VolumeNameOpt,
) -> None:
    """Copy entry KEY from a Modal Volume into the local store, every file checked against its manifest."""
    cache = open_cache()
    with modal_errors(modal_volume), RichProgress(stderr) as progress:
        entry = remote_volume.pull(_volume(modal_volume), cache, key, progress=progress)
    _print_copied(entry, "pulled")


@command
def export_command(
    key: Annotated[str, typer.Argument(help="The entry's key (see ls).")],
    output: Annotated[str, typer.Option("--output", "-o", help="The tar archive to write; - for stdout.")],
) -> None:
    """Write entry KEY to a tar archive (a backup that needs no Modal)."""
    from .._core.archive import export_entry, export_to_path

    cache = open_cache()
    if output == "-":
        if options().json:
            raise typer.BadParameter(
                "stdout carries the archive, so --json cannot be used", param_hint="--json"
            )
        export_entry(cache, key, sys.stdout.buffer)
        return
    entry = export_to_path(cache, key, output)  # a FIFO or device is written through, never replaced
    target = Path(output)
    if options().json:
        print_json({**EntryInfo.of(entry).model_dump(), "archive": str(target)})
    else:
        stdout.print(f"exported {key} to {show(str(target))}: {human_bytes(target.stat().st_size)}")


@command
def import_command(
    archive: Annotated[str, typer.Argument(help="A tar archive from export; - for stdin.")],
    trust: Annotated[
        bool,
        typer.Option(
            "--trust",
            help="Take the archive as its source's own bytes (else ensure checks them against the source).",
        ),
    ] = False,
) -> None:
    """Publish the entry in an archive, only if every file matches the manifest inside it."""
    from .._core.archive import import_archive

    cache = open_cache()
    with RichProgress(stderr) as progress, _open_input(archive) as stream:
        entry = import_archive(cache, stream, name=archive, trust=trust, progress=progress)
    _print_copied(entry, "imported")


def remote_entries(name: str) -> list[Entry]:
    """``ls --modal-volume NAME``: the valid entries on the Volume."""
    with modal_errors(name):
        return WeightCache(_volume(name)).list()


def remote_reports(name: str, key: str | None, *, deep: bool) -> list[VerifyReport]:
    """``verify --modal-volume NAME [KEY]``: check entries as committed on the Volume."""
    if key is not None and not is_valid_key(key):
        raise typer.BadParameter("with --modal-volume, give an entry key (see ls --modal-volume)")
    with modal_errors(name):
        cache = WeightCache(_volume(name))
        if key is None:
            return cache.verify_all(deep=deep)
        if key not in cache.store.entry_keys():
            raise EntryNotFoundError(f"no entry {key} on Modal Volume {name!r}; see ls --modal-volume {name}")
        return [cache.verify(key, deep=deep)]


def _volume(name: str, *, create: bool = False) -> RemoteVolumeStore:
    return RemoteVolumeStore(remote_volume.open_volume(name, create=create), name)


def _print_copied(entry: Entry, verb: str) -> None:
    if options().json:
        print_json(EntryInfo.of(entry))
    elif entry.hit:
        stdout.print(f"{entry.key} is already in the store; nothing copied")
    else:
        stdout.print(
            f"{verb} {entry.key}: {plural(len(entry.manifest.files), 'file')}, "
            f"{human_bytes(entry.total_bytes)}",
            highlight=False,
        )
        stdout.print(f"path: {show(str(entry.path))}", highlight=False)


@contextlib.contextmanager
def _open_input(archive: str) -> Iterator[IO[bytes]]:
    from .._core.archive import open_archive

    if archive == "-":
        yield sys.stdin.buffer
        return
    if not os.path.lexists(archive):
        raise typer.BadParameter(f"{archive} does not exist", param_hint="ARCHIVE")
    with open_archive(archive) as handle:  # a directory or unreadable path is one clear error
        yield handle
