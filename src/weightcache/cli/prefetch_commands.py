"""``weightcache prefetch``: read cached weights into the page cache before a loader needs them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

from .._core.layout import is_valid_key
from ..cache import WeightCache
from ..entry import Entry
from ..errors import EntryNotFoundError
from ..prefetch import PrefetchHandle, prefetch_in_background
from .app import command, open_cache, options
from .progress import BinarySpeedColumn
from .render import human_bytes, plural, print_json, stderr, stdout


@command
def prefetch(
    targets: Annotated[
        list[str],
        typer.Argument(
            help="Paths (files or directories), entry keys, or cached sources (dir://, hf://...)."
        ),
    ],
    threads: Annotated[
        int | None,
        typer.Option("--threads", min=1, help="Concurrent reads (default: sized to the usable CPUs)."),
    ] = None,
) -> None:
    """Read the files of cached entries (or of paths) into the page cache, in parallel."""
    cache = open_cache()
    resolved = [_resolve(cache, target) for target in targets]
    handle = prefetch_in_background(resolved, threads=threads)
    _show_progress(handle)
    report = handle.wait()
    if options().json:
        print_json(
            {
                "targets": [str(item.path if isinstance(item, Entry) else item) for item in resolved],
                "files": report.files,
                "bytes": report.bytes,
                "seconds": round(report.seconds, 4),
                "gb_per_s": round(report.gb_per_s, 3),
                "threads": report.threads,
            }
        )
        return
    stdout.print(
        f"prefetched {plural(report.files, 'file')}, {human_bytes(report.bytes)} in {report.seconds:.2f}s "
        f"({human_bytes(report.bytes / max(report.seconds, 1e-9))}/s, {plural(report.threads, 'thread')})"
    )


def _resolve(cache: WeightCache, target: str) -> Entry | Path:
    """A path that exists is itself; else an entry key; else a source, which must be cached already."""
    if Path(target).exists():
        return Path(target)
    if is_valid_key(target) and cache.store.layout.entry_dir(target).is_dir():
        return cache.get(target)
    status = cache.status(target)
    if not status.cached:
        raise EntryNotFoundError(
            f"{status.source} is not cached in store {cache.store.describe()}; "
            f"run `weightcache ensure {target}` first"
        )
    return cache.get(status.key)


def _show_progress(handle: PrefetchHandle) -> None:
    """A progress bar on stderr while the prefetch runs (only on a terminal)."""
    if not stderr.is_terminal:
        return
    columns = (TextColumn("prefetch"), BarColumn(), DownloadColumn(binary_units=True), BinarySpeedColumn())
    with Progress(*columns, console=stderr, transient=True) as progress:
        task = progress.add_task("prefetch", total=None)
        while not handle.done():
            progress.update(task, completed=handle.bytes_read, total=handle.total_bytes)
            time.sleep(0.1)
