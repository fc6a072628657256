"""``adopt-hf-cache``: an existing Hugging Face cache becomes weightcache entries, with no download."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..entry import Entry
from ..errors import StoreError
from .app import command, open_cache, options
from .progress import RichProgress
from .render import human_bytes, print_json, stderr, stdout

if TYPE_CHECKING:
    from .._hf_cache.adopt import AdoptReport
    from ..providers.base import Store

_STYLES = {"adopted": "green", "incomplete": "yellow", "skipped": "red"}


@command
def adopt_hf_cache_command(
    hf_cache: Annotated[
        Path, typer.Argument(help="The Hugging Face cache: the 'hub' directory (HF_HUB_CACHE, $HF_HOME/hub).")
    ],
    modal_volume: Annotated[
        str | None,
        typer.Option(
            "--modal-volume", help="Then upload what was adopted to this Modal Volume (from a laptop)."
        ),
    ] = None,
    move: Annotated[
        bool,
        typer.Option("--move", help="Where files cannot be hardlinked, move them and leave symlinks behind."),
    ] = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="Never ask the Hub which files a commit has.")
    ] = False,
) -> None:
    """Make every revision in a Hugging Face cache an entry, verified byte by byte, with no download.

    Exits 1 when a file was missing, truncated or corrupt (it was reported, and not adopted).
    """
    if not hf_cache.is_dir():
        raise typer.BadParameter(f"{hf_cache} is not a directory", param_hint="HF_CACHE")
    from .._hf_cache.adopt import adopt_hf_cache

    cache = open_cache()
    with RichProgress(stderr) as progress:
        report = adopt_hf_cache(cache.store, hf_cache, move=move, ask_hub=not offline, progress=progress)
    if modal_volume is not None:
        _push(cache.store, report, modal_volume)
    if options().json:
        print_json(report)
    else:
        stdout.print(_table(report))
    if not report.revisions:
        stderr.print(f"no revision found in {escape(str(hf_cache))}; give the 'hub' directory of the cache")
    if any(item.problems for item in report.revisions):  # like a verify that found damage
        raise typer.Exit(1)


def _push(store: Store, report: AdoptReport, name: str) -> None:
    """Upload what was adopted locally to the Modal Volume ``name`` (files, then refs and manifest)."""
    from ..providers.stores import remote_volume

    manifests = [store.load_manifest(item.key) for item in report.revisions if item.key]
    with remote_volume.modal_errors(name):
        remote = remote_volume.RemoteVolumeStore(remote_volume.open_volume(name, create=True), name)
        for manifest in filter(None, manifests):
            entry = Entry(key=manifest.key, path=store.files_path(manifest.key), manifest=manifest, hit=True)
            stderr.print(f"uploading {entry.key} to Modal Volume {escape(name)}", highlight=False)
            remote_volume.push(remote, store, entry)
    if not any(manifests):
        raise StoreError(f"nothing was adopted, so nothing was uploaded to Modal Volume {name!r}")


def _table(report: AdoptReport) -> Table:
    table = Table(title=f"adopted from {report.hf_cache}", title_justify="left")
    for column in ("repo", "revision", "refs", "status", "files", "size", "how / why"):
        table.add_column(column, overflow="fold")
    for item in report.revisions:
        counts = (("linked", item.linked), ("moved", item.moved), ("copied", item.copied))
        how = ", ".join(f"{n} {kind}" for kind, n in counts if n)
        why = "; ".join(filter(None, [item.reason, *item.problems[:3]]))
        table.add_row(
            escape(item.repo),
            item.revision[:12],
            ", ".join(item.refs),
            f"[{_STYLES[item.status]}]{item.status}[/]",
            str(item.files),
            human_bytes(item.bytes),
            escape("; ".join(filter(None, [how, why]))),
        )
    return table
