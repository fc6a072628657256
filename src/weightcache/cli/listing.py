"""The ``ls`` listing: a table that fits the terminal, or tab-separated rows when stdout is not one.

On a terminal the key is never shortened (it is what ``rm``, ``verify`` and ``export`` take); the
source and version are shortened in the middle, so both ends stay readable, and the ``created`` and
``files`` columns are dropped, in that order, when the source would otherwise get too little room.
When even that leaves no room (long keys on a narrow terminal), each entry takes three lines: its
key, its source, then the rest. Piped, every value is printed whole, one entry per line, tab-separated after a
header line. An entry restored by ``import`` ends its source with ``[imported]``: its bytes came from
an archive, not from the source itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .._core.display import human_bytes, plural, safe_display
from ..entry import Entry

COLUMNS = ("key", "source", "version", "files", "size", "created")
_DROPPABLE = ("created", "files")  # dropped in this order on a narrow terminal
_MIN_SOURCE_WIDTH = 24  # below this the source gets room by dropping a column
_MIN_SHORTENED = 12  # a value is never shortened below this
_GAP = 2  # columns are separated by two spaces (no box)


def print_entries(console: Console, entries: Sequence[Entry]) -> None:
    """Print ``entries`` for ``ls``: a fitted table on a terminal, tab-separated rows otherwise."""
    rows = [_row(entry) for entry in entries]
    if console.is_terminal:
        table = entries_table(rows, console.width)
        if table is None:
            for line in stacked_lines(rows, console.width):
                console.print(escape(line), highlight=False, no_wrap=True, overflow="ellipsis")
        else:
            console.print(table)
        return
    for row in [dict(zip(COLUMNS, COLUMNS, strict=True)), *rows]:
        print("\t".join(row[column] for column in COLUMNS), file=console.file)


def _row(entry: Entry) -> dict[str, str]:
    manifest = entry.manifest
    return {
        "key": entry.key,
        "source": safe_display(manifest.source) + (" [imported]" if entry.imported_from else ""),
        "version": safe_display(manifest.version),
        "files": str(len(manifest.files)),
        "size": human_bytes(manifest.total_bytes),
        "created": manifest.created_at.strftime("%Y-%m-%d %H:%M"),
    }


def entries_table(rows: Sequence[dict[str, str]], width: int) -> Table | None:
    """The ``ls`` table for ``rows`` (see :func:`_row`) fitted to ``width``; ``None`` if none fits."""
    widths = {column: max(len(column), *(len(row[column]) for row in rows)) for column in COLUMNS}
    shown = list(COLUMNS)

    def room_for_source_and_version() -> int:
        fixed = sum(widths[column] for column in shown if column not in ("source", "version"))
        return width - fixed - _GAP * (len(shown) - 1)

    for column in _DROPPABLE:
        if room_for_source_and_version() - min(widths["version"], _MIN_SHORTENED) >= _MIN_SOURCE_WIDTH:
            break
        shown.remove(column)
    room = room_for_source_and_version()
    if room < 2 * _MIN_SHORTENED:
        return None
    version_width = min(widths["version"], max(_MIN_SHORTENED, room // 3))
    source_width = min(widths["source"], room - version_width)
    version_width = min(widths["version"], room - source_width)  # what the source did not need
    table = Table(box=None, pad_edge=False, padding=(0, 1), show_edge=False, header_style="bold")
    for column in shown:
        table.add_column(column, no_wrap=True, justify="right" if column in ("files", "size") else "left")
    for row in rows:
        fitted = {**row, "source": shorten_middle(row["source"], source_width)}
        fitted["version"] = shorten_middle(row["version"], version_width)
        table.add_row(*(escape(fitted[column]) for column in shown))
    return table


def stacked_lines(rows: Sequence[dict[str, str]], width: int) -> list[str]:
    """Three lines per entry, for terminals too narrow for the table: the key, the source, the rest."""
    lines = []
    for row in rows:
        version = shorten_middle(row["version"], _MIN_SHORTENED)
        details = f"{version}  {plural(int(row['files']), 'file')}  {row['size']}  {row['created']}"
        source = shorten_middle(row["source"], max(_MIN_SHORTENED, width - 2))
        lines += [row["key"], f"  {source}", f"  {details}"]
    return lines


def shorten_middle(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters by replacing its middle with ``…`` (both ends stay)."""
    if len(text) <= width:
        return text
    head = width // 2
    tail = width - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")
