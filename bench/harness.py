"""The harness: run settings, timing, and what a case hands back for the report.

A case is one module in :mod:`bench.cases` exposing ``CASE = Case(number, title, run)``;
``run(ctx)`` measures and returns a :class:`CaseResult`. Nothing here knows about any case.
"""

from __future__ import annotations

import importlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType

from rich.console import Console

from .datasets import Datasets

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class Settings:
    """How big and how often: ``full()`` for the real run, ``quick_run()`` to keep the harness alive in CI."""

    quick: bool
    model_bytes: int
    file_counts: tuple[int, ...]
    small_file_bytes: int
    runs: int
    call_seconds: float
    cold: bool
    download_bytes: int
    throttle_bytes_per_second: int
    herd_bytes: int
    herd_containers: int

    @classmethod
    def full(cls, size_gib: float, *, cold: bool) -> Settings:
        """The real run: a ``size_gib`` model, 3 runs of each throughput, cold-cache rows if ``cold``."""
        return cls(
            quick=False,
            model_bytes=int(size_gib * GIB),
            file_counts=(10, 100, 1000),
            small_file_bytes=64 * 1024,
            runs=3,
            call_seconds=0.5,
            cold=cold,
            download_bytes=256 * MIB,
            throttle_bytes_per_second=32 * 10**6,
            herd_bytes=256 * MIB,
            herd_containers=8,
        )

    @classmethod
    def quick_run(cls) -> Settings:
        """Tiny data, one run each, no cache dropping: checks the harness works, not how fast anything is."""
        return cls(
            quick=True,
            # Shards of 6 MiB, above HTTP_MIN_PART_BYTES: the Hub's large files still come in ranges.
            model_bytes=24 * MIB,
            file_counts=(10, 50),
            small_file_bytes=4 * 1024,
            runs=1,
            call_seconds=0.02,
            cold=False,
            download_bytes=4 * MIB,
            throttle_bytes_per_second=64 * 10**6,
            herd_bytes=4 * MIB,
            herd_containers=2,  # one fetches, one waits on its lease: the smallest herd
        )


@dataclass
class Context:
    """What every case gets: the settings, shared test data, and a console for progress lines."""

    settings: Settings
    data: Datasets
    console: Console

    def say(self, message: str) -> None:
        """One progress line on stderr."""
        self.console.log(message, markup=False, highlight=False)

    def scratch(self, name: str) -> Path:
        """A fresh, empty directory for one measurement (removed with the data directory)."""
        return self.data.fresh_dir(name)


@dataclass(frozen=True)
class Stats:
    """Wall times (seconds) of repeated runs of one measurement."""

    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        """The median run."""
        return statistics.median(self.runs)


def time_runs(run: Callable[[], object], *, runs: int, before: Callable[[], object] | None = None) -> Stats:
    """Time ``run`` ``runs`` times; ``before`` (untimed) resets state before each run."""
    times = []
    for _ in range(runs):
        if before is not None:
            before()
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return Stats(tuple(times))


def time_interleaved(
    calls: dict[str, Callable[[], object]], *, seconds: float, min_rounds: int = 5
) -> dict[str, Stats]:
    """Time fast calls in turn, round after round, for about ``seconds`` (after one warm-up each).

    Taking turns puts a burst of load from other work on the machine on every call alike, so the
    ratios between them hold where back-to-back timings of each would not.
    """
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {label: [] for label in calls}
    deadline = time.perf_counter() + seconds * len(calls)
    while len(next(iter(times.values()))) < min_rounds or time.perf_counter() < deadline:
        for label, call in calls.items():
            started = time.perf_counter()
            call()
            times[label].append(time.perf_counter() - started)
    return {label: Stats(tuple(samples)) for label, samples in times.items()}


@dataclass
class Table:
    """One table of a case: column names and rows of already formatted cells."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)


@dataclass(frozen=True)
class Goal:
    """A goal from the issue and what this run found (``met`` is ``None`` when it was not measured)."""

    text: str
    met: bool | None
    evidence: str


@dataclass
class CaseResult:
    """Everything the report shows for one case."""

    measures: str
    floor: str | None
    conditions: list[str]
    tables: list[Table]
    goals: list[Goal]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Case:
    """A benchmark case: its number in the issue, its title, and the function that runs it."""

    number: int
    title: str
    run: Callable[[Context], CaseResult]


def peer(module: str) -> ModuleType | None:
    """Import an optional peer package (the ``bench`` extra), or ``None`` when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def peer_version(distribution: str) -> str:
    """The installed version of a distribution, or ``not installed``."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


MISSING_PEER = "not installed (pip install -e '.[bench]')"
