"""The core commands: ensure, ls, status, verify, rm, gc, demo."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..layout import is_valid_key
from ..linking import LINK_MODES
from .app import DebugOpt, JsonOpt, ModalVolumeOpt, StoreOpt, command, open_cache
from .progress import RichProgress
from .render import (
    EntryInfo,
    demo_table,
    entries_table,
    gc_table,
    human_bytes,
    print_json,
    stderr,
    stdout,
    verify_table,
)


@command()
def ensure(
    source: Annotated[
        str, typer.Argument(help="dir:///abs/path, hf://org/name[@rev], https://..., or a local path.")
    ],
    store: StoreOpt = None,
    link: Annotated[Path | None, typer.Option("--link", help="Link the files into this directory.")] = None,
    mode: Annotated[str, typer.Option("--mode", help=f"How to link: {', '.join(LINK_MODES)}.")] = "symlink",
    whole: Annotated[
        bool, typer.Option("--whole", help="Make --link itself the entry, not a directory of links.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a non-empty directory in the way.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Fetch again even if cached.")] = False,
    repair: Annotated[
        bool, typer.Option("--repair", help="Rehash a cached entry; fetch again if damaged.")
    ] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Ask a remote source for its latest version.")
    ] = False,
    hf_cache: Annotated[
        Path | None,
        typer.Option(
            "--hf-cache", help="Also lay an hf:// entry out here as a Hugging Face cache (HF_HUB_CACHE)."
        ),
    ] = None,
    json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Make SOURCE available in the store (fetch it on a miss) and print where it is."""
    if mode not in LINK_MODES:
        raise typer.BadParameter(f"use one of {', '.join(LINK_MODES)}", param_hint="--mode")
    cache = open_cache(store)
    started = time.perf_counter()
    with RichProgress(stderr) as progress:
        entry = cache.ensure(
            source, force=force, repair=repair, refresh=refresh, progress=progress, hf_cache=hf_cache
        )
    if link is not None:
        cache.link(entry, link, mode=mode, whole=whole, overwrite=overwrite)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    if json:
        print_json(
            {
                **EntryInfo.of(entry).model_dump(),
                "seconds": round(seconds, 4),
                "linked_to": str(link) if link else None,
                **({"hf_cache": str(hf_cache)} if hf_cache else {}),
            }
        )
        return
    outcome = "[green]hit[/]" if entry.hit else "[yellow]populated[/]"
    stdout.print(
        f"{outcome} {entry.key}: {len(entry.manifest.files)} files, "
        f"{human_bytes(entry.total_bytes)} in {seconds:.2f}s"
    )
    stdout.print(f"path: {escape(str(entry.path))}", highlight=False)
    if link is not None:
        stdout.print(f"linked ({mode}) into {escape(str(link))}", highlight=False)
    if hf_cache is not None:
        stdout.print(f"Hugging Face cache view in {escape(str(hf_cache))}", highlight=False)


@command("ls")
def list_entries(
    store: StoreOpt = None,
    modal_volume: ModalVolumeOpt = None,
    json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """List the entries in the store (or on a Modal Volume)."""
    if modal_volume:
        from .modal_commands import remote_entries  # imported here so the core commands are listed first

        entries = remote_entries(modal_volume)
    else:
        entries = open_cache(store).list()
    if json:
        print_json([EntryInfo.of(entry) for entry in entries])
    elif entries:
        stdout.print(entries_table(entries))
    else:
        stdout.print("no entries")


@command()
def status(
    source: Annotated[str, typer.Argument(help="The source, as given to ensure.")],
    store: StoreOpt = None,
    json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Tell whether SOURCE is cached, without fetching (exit 1 if not)."""
    report = open_cache(store).status(source)
    if json:
        print_json(report)
    else:
        state = "[green]cached[/]" if report.cached else "[yellow]not cached[/]"
        stdout.print(
            f"{state} {escape(report.source)} @ {report.version} (from {report.version_from})",
            highlight=False,
        )
        stdout.print(
            f"key: {report.key}" + (f"  path: {escape(report.path)}" if report.path else ""), highlight=False
        )
        for problem in report.problems:
            stdout.print(f"[red]problem:[/] {escape(problem)}", highlight=False)
    if not report.cached:
        raise typer.Exit(1)


@command()
def verify(
    target: Annotated[
        str | None, typer.Argument(help="An entry key or a source; all entries if omitted.")
    ] = None,
    deep: Annotated[bool, typer.Option("--deep", help="Rehash every file (else: stat sizes only).")] = False,
    store: StoreOpt = None,
    modal_volume: ModalVolumeOpt = None,
    json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Check entries against their manifests (exit 1 if any is damaged); on a Volume, --deep downloads."""
    cache = open_cache(store)
    if modal_volume:
        from .modal_commands import remote_reports

        reports = remote_reports(modal_volume, target, deep=deep)
    elif target is None:
        reports = cache.verify_all(deep=deep)
    else:
        key = target if is_valid_key(target) and cache.store.layout.entry_dir(target).is_dir() else None
        reports = [cache.verify(key or cache.get(cache.status(target).key), deep=deep)]
    if json:
        print_json(reports)
    elif reports:
        stdout.print(verify_table(reports))
    else:
        stdout.print("no entries")
    if not all(report.ok for report in reports):
        raise typer.Exit(1)


@command("rm")
def remove(
    key: Annotated[str, typer.Argument(help="The key of the entry to remove (see ls).")],
    force: Annotated[
        bool, typer.Option("--force", help="Remove it even while another process uses it.")
    ] = False,
    store: StoreOpt = None,
    json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Remove one entry (refused while another process uses it, unless --force)."""
    open_cache(store).remove(key, force=force)
    if json:
        print_json({"removed": key})
    else:
        stdout.print(f"removed {key}")


@command()
def gc(
    keep: Annotated[int, typer.Option("--keep", min=1, help="Versions to keep per source.")] = 1,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be removed; remove nothing.")
    ] = False,
    store: StoreOpt = None,
    json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Remove old versions, incomplete entries and abandoned staging."""
    report = open_cache(store).gc(keep=keep, dry_run=dry_run)
    if json:
        print_json(report)
    else:
        stdout.print(gc_table(report))


@command()
def demo(
    size_mb: Annotated[int, typer.Option("--size-mb", min=8, help="Size of the synthetic model.")] = 256,
    store: Annotated[
        Path | None, typer.Option("--store", help="Store directory (default: a temporary one).")
    ] = None,
    json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Show the cold-start story offline: populate, warm hit, link, crash, corruption and repair."""
    from ..demo import run_demo

    logger = logging.getLogger("weightcache")
    level = logger.level
    if not debug:  # the demo damages an entry on purpose; its warning would only distract
        logger.setLevel(logging.ERROR)
    try:
        with RichProgress(stderr) as progress:
            report = run_demo(store, size_mb=size_mb, progress=progress)
    finally:
        logger.setLevel(level)
    if json:
        print_json(report)
    else:
        stdout.print(demo_table(report))
