"""How CLI results reach people (rich tables) and programs (one JSON document on stdout)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..demo import DemoReport
from ..entry import Entry
from ..gc import GcReport
from ..verify import VerifyReport

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


def human_bytes(count: int) -> str:
    """``1536`` -> ``1.5 KiB``."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def entries_table(entries: Sequence[Entry]) -> Table:
    """The ``ls`` table."""
    table = Table(title="entries", title_justify="left")
    table.add_column("key", no_wrap=True)
    for column in ("source", "version", "files", "size", "created"):
        table.add_column(column, justify="right" if column in ("files", "size") else "left")
    for entry in entries:
        manifest = entry.manifest
        table.add_row(
            entry.key,
            manifest.source,
            manifest.version[:20],
            str(len(manifest.files)),
            human_bytes(manifest.total_bytes),
            manifest.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    return table


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
        table.add_row(report.key, result, str(report.files_checked), checked, _problem(first))
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
        table.add_row(item.key, item.reason, human_bytes(item.bytes), escape(item.source or ""))
    for key in report.skipped_busy:
        table.add_row(key, "[yellow]skipped: busy[/]", "", "")
    return table


def _problem(problem: Any) -> str:
    if problem is None:
        return ""
    return escape(f"{problem.path}: {problem.detail}" if problem.path else problem.detail)


def demo_table(report: DemoReport) -> Table:
    """The demo's summary table."""
    table = Table(
        title=f"weightcache demo: {human_bytes(report.model_bytes)} model, store {report.store}",
        title_justify="left",
    )
    for column in ("step", "outcome", "time", "what happened"):
        table.add_column(column, justify="right" if column == "time" else "left")
    for step in report.steps:
        table.add_row(step.name, step.outcome, _duration(step.seconds), step.detail)
    return table


def _duration(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"
