"""Case 5: deep verify, rehashing every byte of a cached model: our hash against SHA-256."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Protocol

import blake3

from weightcache import WeightCache
from weightcache._core.constants import IO_THREADS
from weightcache._transport.cpus import usable_cpus
from weightcache._transport.hashing import hash_file, iter_file_chunks
from weightcache._transport.parallel import run_parallel

from .. import pagecache, units
from ..harness import MISSING_PEER, Case, CaseResult, Context, Goal, Table, peer, time_runs

FLOOR = "floor: read every file, no hashing"
WEIGHTCACHE = "weightcache verify(deep=True): BLAKE3"
POOCH = "pooch retrieve(known_hash=sha256) of each file"
SHA256_ONE = "SHA-256, one thread (hashlib, as sha256sum)"
#: Rows measured cold too: the disk bounds them all there, so the rest would only repeat it.
COLD_METHODS = (FLOOR, WEIGHTCACHE, SHA256_ONE)


class _Hasher(Protocol):
    def update(self, data: memoryview, /) -> object:
        """Feed the next chunk."""


def run(ctx: Context) -> CaseResult:
    """Hash the same cached files with each method, page cache warm, then cold when it can be dropped."""
    cache, entry = ctx.data.model_entry(ctx.settings.model_bytes)
    paths, total = entry.files, entry.total_bytes
    methods = _methods(cache, entry.key, paths)
    states = {"page cache warm": pagecache.flush}
    if ctx.settings.cold and pagecache.drop():
        states["cold (page cache dropped)"] = pagecache.drop
    rates: dict[str, dict[str, float]] = {}
    warm = next(iter(states))
    for state, reset in states.items():
        for label, (_threads, method) in methods.items():
            if isinstance(method, str) or (state != warm and label not in COLD_METHODS):
                continue
            ctx.say(f"case 5: {label}, {state}")
            stats = time_runs(method, runs=ctx.settings.runs, before=reset)
            rates.setdefault(label, {})[state] = units.rate(total, stats.median)
    table = Table(
        f"Rehash {units.size(total)} in {len(paths)} files, GB/s (median of {ctx.settings.runs})",
        ["method", "threads", *states, f"x floor, {warm}"],
    )
    for label, (threads, method) in methods.items():
        if isinstance(method, str):
            table.rows.append([label, threads, *(method for _ in states), ""])
            continue
        cells = [units.gbps(rates[label][state]) if state in rates[label] else "—" for state in states]
        table.rows.append([label, threads, *cells, units.ratio(rates[label][warm] / rates[FLOOR][warm])])
    return CaseResult(
        measures=(
            "Throughput of rehashing every byte of a cached model and comparing it with the recorded hash: "
            "`weightcache verify --deep`, `ensure(repair=True)`, and what pooch does on every warm call."
        ),
        floor="reading the files with no hashing, on the same threads: a rehash cannot beat its own reads.",
        conditions=[
            f"weightcache hashes up to {IO_THREADS} files at once, and BLAKE3 itself uses several threads "
            "per file; the one-thread rows show each algorithm's speed per core.",
            "Warm: the files are in the page cache, so this measures the CPU. Cold (when the page cache "
            "can be dropped) the disk bounds every method, so only three are measured there.",
        ],
        tables=[table],
        goals=[_floor_goal(rates, warm)],
        notes=[_comparison(rates, warm)],
    )


def _methods(
    cache: WeightCache, key: str, paths: list[Path]
) -> dict[str, tuple[str, Callable[[], object] | str]]:
    pooch = peer("pooch")
    sha256s = {path: hash_file(path, sha256=True).sha256 for path in paths} if pooch else {}

    def weightcache_verify() -> None:
        if not cache.verify(key, deep=True).ok:
            raise RuntimeError(f"entry {key} failed deep verify: the benchmark's data is broken")

    def pooch_check() -> None:
        for path, sha256 in sha256s.items():
            pooch.retrieve(  # type: ignore[union-attr]
                "http://127.0.0.1:9/unused", known_hash=f"sha256:{sha256}", fname=path.name, path=path.parent
            )

    return {
        FLOOR: (str(IO_THREADS), partial(_each_file, paths, _Discard, IO_THREADS)),
        WEIGHTCACHE: (f"{IO_THREADS} files x BLAKE3's own", weightcache_verify),
        "BLAKE3, one thread": ("1", partial(_each_file, paths, blake3.blake3, 1)),
        SHA256_ONE: ("1", partial(_each_file, paths, hashlib.sha256, 1)),
        f"SHA-256, {IO_THREADS} files at once": (
            str(IO_THREADS),
            partial(_each_file, paths, hashlib.sha256, IO_THREADS),
        ),
        POOCH: ("1", pooch_check if pooch is not None else MISSING_PEER),
    }


class _Discard:
    """Reads without hashing: the floor."""

    def update(self, data: memoryview, /) -> None:
        """Drop the chunk."""


def _each_file(paths: list[Path], make_hasher: Callable[[], _Hasher], threads: int) -> None:
    run_parallel([partial(_hash_one, path, make_hasher) for path in paths], threads=threads)


def _hash_one(path: Path, make_hasher: Callable[[], _Hasher]) -> None:
    hasher = make_hasher()
    for chunk in iter_file_chunks(path):
        hasher.update(chunk)


def _floor_goal(rates: dict[str, dict[str, float]], warm: str) -> Goal:
    # With the files in memory both the reads and the hashing are CPU work: the most the usable CPUs
    # can hash is their count times BLAKE3's one-thread rate, which bounds any deep verify here.
    ours, floor = rates[WEIGHTCACHE][warm], rates[FLOOR][warm]
    cpus = usable_cpus()
    ceiling = cpus * rates["BLAKE3, one thread"][warm]
    return Goal(
        "deep verify, page cache warm, at least 0.8x the read floor",
        ours >= 0.8 * floor,
        f"{units.ratio(ours / floor)} ({units.gbps(ours)} vs {units.gbps(floor)}); the CPU ceiling, "
        f"{cpus} usable CPU{'s' if cpus > 1 else ''} x one-thread BLAKE3, is {units.gbps(ceiling)} = "
        f"{units.ratio(ceiling / floor)} the floor, and the reads take their share of the same CPUs",
    )


def _comparison(rates: dict[str, dict[str, float]], warm: str) -> str:
    ours = rates[WEIGHTCACHE][warm]
    sha_one = rates[SHA256_ONE][warm]
    sha_parallel = rates[f"SHA-256, {IO_THREADS} files at once"][warm]
    return (
        f"With the page cache warm, weightcache's deep verify runs at {units.ratio(ours / sha_one)} the "
        f"speed of one-thread SHA-256 and {units.ratio(ours / sha_parallel)} that of SHA-256 on the same "
        "number of threads."
    )


CASE = Case(5, "Deep verify", run)
