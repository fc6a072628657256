"""The core commands: ensure, ls, status, verify, rm, gc, demo."""

from __future__ import annotations

import logging
import os
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from .._core.constants import ENV_CONNECTIONS, HTTP_CONNECTIONS
from .._core.layout import is_valid_key
from .._core.verify import VerifyReport
from ..cache import WeightCache
from ..errors import EntryNotFoundError
from .app import ModalVolumeOpt, command, open_cache, options
from .listing import print_entries
from .progress import RichProgress
from .render import (
    EntryInfo,
    demo_table,
    gc_table,
    human_bytes,
    plural,
    print_json,
    show,
    stderr,
    stdout,
    verify_table,
)


class LinkModeChoice(str, Enum):
    """``--mode``: how ``ensure --link`` places the files (:data:`weightcache._core.linking.LINK_MODES`)."""

    symlink = "symlink"
    hardlink = "hardlink"
    copy = "copy"


@command
def ensure(
    source: Annotated[
        str, typer.Argument(help="dir:///abs/path, hf://org/name[@rev], https://..., or a local path.")
    ],
    link: Annotated[Path | None, typer.Option("--link", help="Link the files into this directory.")] = None,
    mode: Annotated[LinkModeChoice, typer.Option("--mode", help="How to link.")] = LinkModeChoice.symlink,
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
    connections: Annotated[
        int | None,
        typer.Option(
            "--connections",
            min=1,
            help=f"Most connections a download opens (default ${ENV_CONNECTIONS}, else {HTTP_CONNECTIONS}).",
        ),
    ] = None,
) -> None:
    """Make SOURCE available in the store (fetch it on a miss) and print where it is."""
    if connections is not None:
        # Sources read the budget from the environment when they download (any scheme, any URI).
        os.environ[ENV_CONNECTIONS] = str(connections)
    cache = open_cache()
    started = time.perf_counter()
    with RichProgress(stderr) as progress:
        entry = cache.ensure(
            source, force=force, repair=repair, refresh=refresh, progress=progress, hf_cache=hf_cache
        )
    if link is not None:
        cache.link(entry, link, mode=mode.value, whole=whole, overwrite=overwrite)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    if options().json:
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
        f"{outcome} {entry.key}: {plural(len(entry.manifest.files), 'file')}, "
        f"{human_bytes(entry.total_bytes)} in {seconds:.2f}s"
    )
    stdout.print(f"path: {show(str(entry.path))}", highlight=False)
    if link is not None:
        stdout.print(f"linked ({mode.value}) into {show(str(link))}", highlight=False)
    if hf_cache is not None:
        stdout.print(f"Hugging Face cache view in {show(str(hf_cache))}", highlight=False)


@command
def list_entries(
    modal_volume: ModalVolumeOpt = None,
) -> None:
    """List the entries in the store (or on a Modal Volume)."""
    if modal_volume:
        from .modal_commands import remote_entries  # imported here so the core commands are listed first

        entries = remote_entries(modal_volume)
    else:
        entries = open_cache(must_exist=True).list()
    if options().json:
        print_json([EntryInfo.of(entry) for entry in entries])
    elif entries:
        print_entries(stdout, entries)
    else:
        stdout.print("no entries")


@command
def status(
    source: Annotated[str, typer.Argument(help="The source, as given to ensure.")],
) -> None:
    """Tell whether SOURCE is cached, without fetching (exit 1 if not)."""
    report = open_cache(must_exist=True).status(source)
    if options().json:
        print_json(report)
    else:
        state = "[green]cached[/]" if report.cached else "[yellow]not cached[/]"
        if report.version is None:
            stdout.print(f"{state} {show(report.source)} (no version of it in the store)", highlight=False)
        else:
            stdout.print(
                f"{state} {show(report.source)} @ {show(report.version)} (from {report.version_from})",
                highlight=False,
            )
            stdout.print(
                f"key: {report.key}" + (f"  path: {show(report.path)}" if report.path else ""),
                highlight=False,
            )
        for problem in report.problems:
            stdout.print(f"[red]problem:[/] {show(problem)}", highlight=False)
    if not report.cached:
        raise typer.Exit(1)


@command
def verify(
    target: Annotated[
        str | None, typer.Argument(help="An entry key or a source; all entries if omitted.")
    ] = None,
    deep: Annotated[bool, typer.Option("--deep", help="Rehash every file (else: stat sizes only).")] = False,
    modal_volume: ModalVolumeOpt = None,
) -> None:
    """Check entries against their manifests (exit 1 if any is damaged); on a Volume, --deep downloads."""
    if modal_volume:
        from .modal_commands import remote_reports

        reports = remote_reports(modal_volume, target, deep=deep)
    elif target is None:
        reports = open_cache(must_exist=True).verify_all(deep=deep)
    else:
        reports = [_verify_one(open_cache(must_exist=True), target, deep=deep)]
    if options().json:
        print_json(reports)
    elif reports:
        stdout.print(verify_table(reports))
    else:
        stdout.print("no entries")
    if not all(report.ok for report in reports):
        raise typer.Exit(1)


def _verify_one(cache: WeightCache, target: str, *, deep: bool) -> VerifyReport:
    """Verify the entry directory named ``target``, else the entry of the source ``target``."""
    if is_valid_key(target) and os.path.lexists(cache.store.layout.entry_dir(target)):
        return cache.verify(target, deep=deep)
    if "://" not in target and not os.path.lexists(target):  # neither an entry nor a local source
        raise EntryNotFoundError(
            f"no entry {target!r} in store {cache.store.describe()}; see `weightcache ls` for the keys"
        )
    status = cache.status(target)
    if status.key is None or status.path is None:  # no manifest for it: nothing to verify
        raise EntryNotFoundError(
            f"{status.source} is not cached in store {cache.store.describe()}; "
            f"run `weightcache ensure {target}` first"
        )
    return cache.verify(status.key, deep=deep)


@command
def remove(
    key: Annotated[str, typer.Argument(help="The key of the entry to remove (see ls).")],
    force: Annotated[
        bool, typer.Option("--force", help="Remove it even while another process uses it.")
    ] = False,
) -> None:
    """Remove one entry (refused while another process uses it, unless --force)."""
    open_cache(must_exist=True).remove(key, force=force)
    if options().json:
        print_json({"removed": key})
    else:
        stdout.print(f"removed {key}")


@command
def gc(
    keep: Annotated[int, typer.Option("--keep", min=1, help="Versions to keep per source.")] = 1,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be removed; remove nothing.")
    ] = False,
) -> None:
    """Remove old versions, incomplete entries and abandoned staging."""
    report = open_cache(must_exist=True).gc(keep=keep, dry_run=dry_run)
    if options().json:
        print_json(report)
    else:
        stdout.print(gc_table(report))


@command
def demo(
    size_mb: Annotated[int, typer.Option("--size-mb", min=8, help="Size of the synthetic model.")] = 256,
) -> None:
    """Show the cold-start story offline: populate, warm hit, link, crash, corruption and repair."""
    from .demo import run_demo

    logger = logging.getLogger("weightcache")
    level = logger.level
    if not options().debug:  # the demo damages an entry on purpose; its warning would only distract
        logger.setLevel(logging.ERROR)
    try:
        with RichProgress(stderr) as progress:
            report = run_demo(options().store, size_mb=size_mb, progress=progress)
    finally:
        logger.setLevel(level)
    if options().json:
        print_json(report)
    else:
        stdout.print(demo_table(report))
