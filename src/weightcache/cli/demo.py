"""``weightcache demo``: the seeds' cold-start story, offline, in one screen.

It builds a synthetic model as an "image directory", then shows: a cold populate, a warm hit,
linking into the app's path, a populate killed with SIGKILL half-way (nothing partial is ever
listed, and the next call recovers), a silently corrupted file caught by deep verify and fixed
by repair, and gc of the old version.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from .._core.display import human_bytes, plural
from .._core.synthetic import make_synthetic_model
from ..cache import WeightCache
from ..errors import StoreNotEmptyError
from ..progress import ProgressCallback, ProgressEvent


class DemoStep(BaseModel):
    """One step of the demo and what it showed."""

    name: str
    outcome: str
    seconds: float
    detail: str


class DemoReport(BaseModel):
    """Everything the demo did."""

    store: str
    model_bytes: int
    steps: list[DemoStep]


def run_demo(
    store: str | os.PathLike[str] | None,
    *,
    size_mb: int = 256,
    progress: ProgressCallback | None = None,
) -> DemoReport:
    """Run the demo in a temporary directory (and a temporary store unless ``store`` is given).

    The demo corrupts, repairs and garbage-collects entries on purpose, so a ``store`` that already
    holds anything under ``entries/`` is refused with :class:`StoreNotEmptyError`: the demo never
    touches a user's entries.
    """
    if store is not None:
        _refuse_used_store(WeightCache(store))
    with tempfile.TemporaryDirectory(prefix="weightcache-demo-") as scratch:
        work = Path(scratch)
        cache = WeightCache(store or work / "store")
        image_dir = work / "image" / "initial_weights"
        steps: list[DemoStep] = []

        def record(name: str, outcome: str, started: float, detail: str) -> None:
            steps.append(
                DemoStep(
                    name=name, outcome=outcome, seconds=round(time.perf_counter() - started, 6), detail=detail
                )
            )

        started = time.perf_counter()
        make_synthetic_model(image_dir, total_bytes=size_mb * 1024 * 1024)
        record("build synthetic model", "ok", started, "safetensors shards + config, as baked into an image")

        started = time.perf_counter()
        entry = cache.ensure(image_dir, progress=progress)
        rate = entry.total_bytes / max(time.perf_counter() - started, 1e-9)
        record(
            "cold ensure",
            "hit" if entry.hit else "miss: populated",
            started,
            f"{plural(len(entry.files), 'file')} copied+hashed in one pass, "
            f"published ({human_bytes(rate)}/s)",
        )

        started = time.perf_counter()
        warm = cache.ensure(image_dir)
        record("warm ensure", "hit" if warm.hit else "miss", started, "manifest read + one stat per file")

        started = time.perf_counter()
        target = cache.link(warm, work / "root" / "data" / "weights")
        record(
            "link", "ok", started, f"{plural(len(warm.files), 'symlink')} in .../{target.relative_to(work)}"
        )

        record_crash(cache, image_dir, record)

        started = time.perf_counter()
        current = cache.ensure(image_dir)
        victim = max(current.files, key=lambda path: path.stat().st_size)
        _flip_one_byte(victim)
        report = cache.verify(current, deep=True)
        record(
            "corrupt one byte",
            "caught" if not report.ok else "missed",
            started,
            f"{victim.name}: same size, so only verify --deep sees it",
        )

        started = time.perf_counter()
        repaired = cache.ensure(image_dir, repair=True)
        fixed = cache.verify(repaired, deep=True).ok
        record(
            "ensure --repair",
            "repaired" if fixed else "still broken",
            started,
            "re-fetched from the image dir",
        )

        started = time.perf_counter()
        garbage = cache.gc(keep=1)
        record(
            "gc --keep 1",
            f"freed {human_bytes(garbage.freed_bytes)}",
            started,
            f"{plural(len(garbage.removed), 'old version')} removed; "
            f"{plural(len(cache.list()), 'entry', 'entries')} left",
        )

        return DemoReport(store=str(cache.store.root), model_bytes=entry.total_bytes, steps=steps)


def record_crash(cache: WeightCache, image_dir: Path, record: Callable[[str, str, float, str], None]) -> None:
    """Change the image dir, kill a child process half-way through populating it, then recover."""
    first = image_dir / sorted(os.listdir(image_dir))[0]
    os.utime(first, ns=(time.time_ns(), time.time_ns()))  # a rebuilt image: new fingerprint, new version
    before = len(cache.list())
    started = time.perf_counter()
    half = sum(path.stat().st_size for path in image_dir.iterdir()) // 2
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "from weightcache.cli.demo import crash_child; crash_child()",
            str(cache.store.root),
            str(image_dir),
            str(half),
        ],
        check=False,
    )
    listed = len(cache.list())
    leftovers = len(os.listdir(cache.store.layout.staging_dir))
    killed = child.returncode == -signal.SIGKILL
    record(
        "populate killed (SIGKILL)",
        "killed" if killed else f"exit {child.returncode}",
        started,
        f"half-way: {plural(listed, 'entry', 'entries')} listed (was {before}), "
        f"{plural(leftovers, 'abandoned staging dir')}",
    )
    started = time.perf_counter()
    entry = cache.ensure(image_dir)
    record(
        "next ensure",
        "hit" if entry.hit else "miss: populated",
        started,
        "abandoned staging reclaimed, new version published "
        f"({plural(len(cache.list()), 'entry', 'entries')})",
    )


def _refuse_used_store(cache: WeightCache) -> None:
    entries_dir = cache.store.layout.entries_dir
    try:
        used = any(entries_dir.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return
    if used:
        raise StoreNotEmptyError(
            f"store {cache.store.describe()} already holds entries, and the demo corrupts and deletes "
            "entries on purpose; give it a new or empty directory, or leave out --store for a temporary one"
        )


def crash_child() -> None:
    """Child process of the demo: populate, and SIGKILL itself once ``argv[3]`` bytes are written."""
    store, source, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    written = 0

    def progress(event: ProgressEvent) -> None:
        nonlocal written
        written += event.nbytes
        if written >= limit:
            os.kill(os.getpid(), signal.SIGKILL)

    WeightCache(store).ensure(source, progress=progress)


def _flip_one_byte(path: Path) -> None:
    os.chmod(path, 0o644)  # entries are published read-only; the demo damages one on purpose
    with open(path, "r+b") as handle:
        handle.seek(-1, os.SEEK_END)
        last = handle.read(1)
        handle.seek(-1, os.SEEK_END)
        handle.write(bytes([last[0] ^ 0xFF]))
