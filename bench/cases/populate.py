"""Case 2: populate the store from an image directory, against the copies people write by hand."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from functools import partial
from pathlib import Path

from weightcache import LocalStore, WeightCache
from weightcache._core.constants import CHUNK_BYTES, IO_THREADS
from weightcache._transport.parallel import run_parallel

from .. import pagecache, units
from ..harness import Case, CaseResult, Context, Goal, Stats, Table, time_runs

FLOOR = "floor: write the same bytes, fsync (nothing read)"
WEIGHTCACHE = "weightcache ensure(dir://…), a miss"
CP = "cp -r"
CP_SYNC = "cp -r && sync"
COPYTREE = "shutil.copytree"

#: (contender, durable when it returns?)
CONTENDERS: dict[str, bool] = {FLOOR: True, WEIGHTCACHE: True, CP_SYNC: True, CP: False, COPYTREE: False}

Copy = Callable[[Path, Path], object]


def run(ctx: Context) -> CaseResult:
    """Copy the same model with each contender into an empty destination, source warm then cold."""
    source = ctx.data.model_dir(ctx.settings.model_bytes)
    total = sum(path.stat().st_size for path in source.rglob("*") if path.is_file())
    states = {"source in page cache": pagecache.flush}
    if ctx.settings.cold and pagecache.drop():
        states["source cold (page cache dropped)"] = pagecache.drop
    rates: dict[str, dict[str, float]] = {label: {} for label in CONTENDERS}
    for state, reset in states.items():
        for label, copy in _copies().items():
            if label == FLOOR and state != next(iter(states)):
                continue  # the floor reads nothing, so the source's cache state cannot change it
            ctx.say(f"case 2: {label}, {state}")
            stats = _time_copy(ctx, copy, source, reset)
            rates[label][state] = units.rate(total, stats.median)
    table = Table(
        f"Populate {units.size(total)} in {len(list(source.iterdir()))} files, GB/s (median of "
        f"{ctx.settings.runs})",
        ["copy", "durable on return", *states],
    )
    for label, durable in CONTENDERS.items():
        cells = [units.gbps(rates[label][state]) if state in rates[label] else "—" for state in states]
        table.rows.append([label, "yes" if durable else "no", *cells])
    return CaseResult(
        measures=(
            "Throughput of copying a sharded safetensors model from an image directory into an empty "
            "store, as the fashion_crop seed does on its first container start. weightcache also hashes "
            "every byte (BLAKE3), fsyncs every file, writes the manifest and publishes atomically."
        ),
        floor="writing the same number of bytes to the destination filesystem and fsyncing them: "
        "no durable populate can be faster.",
        conditions=[
            "Before every run the previous copy is deleted and all dirty pages are flushed (`sync`), so "
            "no run pays for another's writeback.",
            "`cp -r` and `shutil.copytree` return with the data still in the page cache (not on disk); "
            "with this much free RAM they measure memory copying. `cp -r && sync` is the same copy made "
            "durable, the fair comparison for weightcache.",
            *(
                ["Cold rows: the page cache was dropped before each run, so the source is read from disk."]
                if len(states) > 1
                else ["No cold rows: the page cache could not be dropped (needs root), or --quick."]
            ),
            "On Modal the image directory and the Volume are network filesystems: absolute numbers "
            "there differ; the ratios show the cost of what weightcache adds to a copy.",
        ],
        tables=[table],
        goals=[_goal(rates, next(iter(states)))],
    )


def _copies() -> dict[str, Copy]:
    return {
        FLOOR: _write_floor,
        WEIGHTCACHE: lambda src, dest: WeightCache(LocalStore(dest)).ensure(f"dir://{src}"),
        CP_SYNC: lambda src, dest: (_cp(src, dest), os.sync()),
        CP: _cp,
        COPYTREE: lambda src, dest: shutil.copytree(src, dest / src.name),
    }


def _time_copy(ctx: Context, copy: Copy, source: Path, reset: Callable[[], object]) -> Stats:
    dest = ctx.scratch("populate")

    def before() -> None:
        shutil.rmtree(dest)
        dest.mkdir()
        reset()

    stats = time_runs(partial(copy, source, dest), runs=ctx.settings.runs, before=before)
    shutil.rmtree(dest)
    return stats


def _cp(src: Path, dest: Path) -> None:
    subprocess.run(["cp", "-r", os.fspath(src), os.fspath(dest)], check=True)


def _write_floor(src: Path, dest: Path) -> None:
    files = [path for path in src.iterdir() if path.is_file()]
    run_parallel(
        [partial(_write_zeros, dest / path.name, path.stat().st_size) for path in files], threads=IO_THREADS
    )


def _write_zeros(path: Path, size: int) -> None:
    chunk = memoryview(bytes(CHUNK_BYTES))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        remaining = size
        while remaining:
            remaining -= os.write(fd, chunk[: min(remaining, CHUNK_BYTES)])
        os.fsync(fd)
    finally:
        os.close(fd)


def _goal(rates: dict[str, dict[str, float]], state: str) -> Goal:
    ours, cp, cp_sync = rates[WEIGHTCACHE][state], rates[CP][state], rates[CP_SYNC][state]
    floor = rates[FLOOR][state]
    return Goal(
        "populate, durable on return, at least 1.0x `cp -r`",
        ours >= cp,
        f"{units.gbps(ours)} vs `cp -r` {units.gbps(cp)} ({units.ratio(ours / cp)}) and vs "
        f"`cp -r && sync` {units.gbps(cp_sync)} ({units.ratio(ours / cp_sync)}), {state}; writing the "
        f"bytes durably with nothing read (the floor) runs at {units.gbps(floor)}, "
        f"{units.ratio(floor / cp)} `cp -r`: the ceiling of any durable copy here, and "
        f"{units.ratio(ours / floor)} of it reached",
    )


CASE = Case(2, "Populate from an image directory", run)
