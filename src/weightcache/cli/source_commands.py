"""Commands about sources that move: ``outdated``."""

from __future__ import annotations

from collections.abc import Sequence

import typer
from rich.table import Table

from .._core.outdated import UpdateCheck
from .app import command, open_cache, options
from .render import print_json, show, stdout


@command
def outdated() -> None:
    """Ask the source of each cached branch or unpinned URL whether it moved (exit 1 if one cannot)."""
    checks = open_cache().outdated()
    if options().json:
        print_json(checks)
    elif checks:
        stdout.print(_updates_table(checks))
        if any(check.outdated for check in checks):
            stdout.print("update one with: weightcache ensure --refresh SOURCE", highlight=False)
    else:
        stdout.print("no cached branch or unpinned URL to check")
    if any(check.error for check in checks):
        raise typer.Exit(1)


def _updates_table(checks: Sequence[UpdateCheck]) -> Table:
    table = Table(title="outdated", title_justify="left")
    for column in ("source", "cached", "latest", "state"):
        table.add_column(column, overflow="fold")
    for check in checks:
        if check.error:
            state = f"[red]cannot check:[/] {show(check.error)}"
        else:
            state = "[yellow]outdated[/]" if check.outdated else "[green]up to date[/]"
        latest = (check.latest_version or "")[:12]
        table.add_row(show(check.source), show(check.cached_version[:12]), show(latest), state)
    return table
