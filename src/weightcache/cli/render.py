"""How CLI results reach people (rich tables) and programs (one JSON document on stdout).

Every name that came from outside (file names, sources, paths) goes through :func:`show`: escape
sequences written out (:func:`~weightcache._core.display.safe_display`) and rich markup escaped.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .._core.display import human_bytes, plural, safe_display
from ..entry import Entry

if TYPE_CHECKING:  # only annotations: the demo, say, is imported by the demo command alone
    from .._core.gc import GcReport
    from .._core.verify import VerifyReport
    from .demo import DemoReport

__all__ = ["human_bytes", "plural"]  # re-exported: the command modules format sizes and counts through here

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


class EntryInfo(BaseModel):
    """An entry as ``ensure``, ``ls`` and ``pull`` print it with ``--json``."""

    key: str
    path: str
    hit: bool
    source: str
    version: str
    files: int
    bytes: int
    created_at: str
    populate_seconds: float
    imported_from: str | None = None

    @classmethod
    def of(cls, entry: Entry) -> EntryInfo:
        """Summarise an entry."""
        manifest = entry.manifest
        return cls(
            key=entry.key,
            path=str(entry.path),
            hit=entry.hit,
            source=manifest.source,
            version=manifest.version,
            files=len(manifest.files),
            bytes=manifest.total_bytes,
            created_at=manifest.created_at.isoformat(),
            populate_seconds=manifest.populate_seconds,
            imported_from=entry.imported_from,
        )


def print_json(value: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> None:
    """Print one JSON document on stdout."""
    if isinstance(value, BaseModel):
        data: Any = value.model_dump(mode="json")
    elif isinstance(value, dict):
        data = value
    else:
        data = [item.model_dump(mode="json") for item in value]
    print(json.dumps(data, indent=2))


def print_error_json(kind: str, message: str) -> None:
    """Print the JSON document of a failed command: ``{"error": {"type": ..., "message": ...}}``."""
    print_json({"error": {"type": kind, "message": message}})


def show(text: str) -> str:
    """``text`` from outside, ready for ``console.print``: escape sequences written out, markup escaped."""
    return escape(safe_display(text))


def verify_table(reports: Sequence[VerifyReport]) -> Table:
    """The ``verify`` table: one row per entry, one per problem."""
    table = Table(title="verify", title_justify="left")
    table.add_column("key", no_wrap=True)
    for column in ("result", "files", "checked", "problem"):
        table.add_column(column)
    for report in reports:
        result = "[green]ok[/]" if report.ok else "[red]FAILED[/]"
        checked = "rehashed" if report.deep else "stat"
        first = report.problems[0] if report.problems else None
        table.add_row(show(report.key), result, str(report.files_checked), checked, _problem(first))
        for problem in report.problems[1:]:
            table.add_row("", "", "", "", _problem(problem))
    return table


def gc_table(report: GcReport) -> Table:
    """The ``gc`` table."""
    verb = "would remove" if report.dry_run else "removed"
    table = Table(title=f"gc: {verb} {human_bytes(report.freed_bytes)}", title_justify="left")
    table.add_column("key", no_wrap=True)
    for column in ("reason", "size", "source"):
        table.add_column(column)
    for item in report.removed:
        table.add_row(show(item.key), item.reason, human_bytes(item.bytes), show(item.source or ""))
    for key in report.skipped_busy:
        table.add_row(show(key), "[yellow]skipped: busy[/]", "", "")
    return table


def _problem(problem: Any) -> str:
    if problem is None:
        return ""
    return show(f"{problem.path}: {problem.detail}" if problem.path else problem.detail)


def demo_table(report: DemoReport) -> Table:
    """The demo's summary table."""
    table = Table(
        title=f"weightcache demo: {human_bytes(report.model_bytes)} model, store {show(report.store)}",
        title_justify="left",
    )
    for column in ("step", "outcome", "time", "what happened"):
        table.add_column(column, justify="right" if column == "time" else "left")
    for step in report.steps:
        table.add_row(step.name, step.outcome, _duration(step.seconds), show(step.detail))
    return table


def _duration(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"
