"""A rich progress display driven by weightcache's progress events."""

from __future__ import annotations

import threading
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from .._core.display import human_bytes, plural
from ..progress import ProgressEvent
from .render import show


class BinarySpeedColumn(ProgressColumn):
    """Transfer speed in binary units (``MiB/s``), like every size the CLI prints.

    rich's own TransferSpeedColumn is decimal only (``MB/s``), which would put two unit families
    side by side.
    """

    def render(self, task: Task) -> Text:
        """The speed of ``task``."""
        speed = task.finished_speed or task.speed
        return Text("?" if speed is None else f"{human_bytes(speed)}/s", style="progress.data.speed")


class RichProgress:
    """Per-file bars and an overall bar (bytes, speed, ETA) on stderr; silent when it is not a terminal."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            BinarySpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self._overall: TaskID | None = None
        self._files: dict[str, TaskID] = {}
        self._lock = threading.Lock()

    def __call__(self, event: ProgressEvent) -> None:
        """Handle one event (called from copy threads)."""
        with self._lock:
            if event.kind == "plan":
                self._overall = self._progress.add_task(
                    f"total ({plural(event.files or 0, 'file')})", total=event.total_bytes
                )
            elif event.kind == "advance" and event.path is not None:
                task = self._files.get(event.path)
                if task is None:
                    task = self._files[event.path] = self._progress.add_task(
                        show(event.path), total=event.file_size
                    )
                self._progress.advance(task, event.nbytes)
                if self._overall is not None:
                    self._progress.advance(self._overall, event.nbytes)
            elif event.kind == "file_done" and event.path in self._files:
                self._progress.remove_task(self._files.pop(event.path))

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()
