"""Case 1: the warm check, the cost every container start pays before it can load weights."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from pathlib import Path

from huggingface_hub import snapshot_download

from weightcache import LocalStore, WeightCache

from .. import units
from ..child import measure_in_child
from ..datasets import FileSet
from ..harness import MISSING_PEER, Case, CaseResult, Context, Goal, Table, peer, time_interleaved

FLOOR = "floor: os.stat of each cached file"
DIR_FLOOR = "floor for dir://: os.stat of each source file and each cached file"
WEIGHTCACHE = "weightcache ensure(dir://…), a hit"
WEIGHTCACHE_HUB = "weightcache ensure(hf://…@sha), a hit"
#: Our rows -> the source each one names in its goals, and the floor each is measured against.
OURS = {WEIGHTCACHE_HUB: "hf://…@sha", WEIGHTCACHE: "dir://…"}
FLOORS = {WEIGHTCACHE_HUB: FLOOR, WEIGHTCACHE: DIR_FLOOR}
#: How far above its floor a hit may be (issue 16).
GOAL_RATIO = 1.5
SEEDS = "the seeds: os.path.exists of each file"
HF = "huggingface_hub snapshot_download(local_files_only=True)"
POOCH = "pooch retrieve(known_hash=sha256) of each file"
PEERS = (HF, POOCH)

#: What a container start imports to make each check (the lazy modules are touched via the attribute).
IMPORTS = {
    "weightcache": "weightcache:WeightCache",
    "huggingface_hub": "huggingface_hub:snapshot_download",
    "pooch": "pooch:retrieve",
}

Call = Callable[[], object]


def run(ctx: Context) -> CaseResult:
    """Time each check on the same cached files at each file count; then the import each one needs."""
    counts = ctx.settings.file_counts
    medians: dict[str, dict[int, float]] = {}
    missing: dict[str, str] = {}
    for count in counts:
        ctx.say(f"case 1: {count} files")
        checks = _checks(ctx.data.file_set(count))
        missing.update({label: call for label, call in checks.items() if isinstance(call, str)})
        runnable = {label: call for label, call in checks.items() if not isinstance(call, str)}
        for label, stats in time_interleaved(runnable, seconds=ctx.settings.call_seconds).items():
            medians.setdefault(label, {})[count] = stats.median
    table = Table(
        "Median time of one warm check (x its floor: the dir:// floor for dir://, else the cached files)",
        ["check", *(f"{count:,} files" for count in counts)],
    )
    for label, by_count in medians.items():
        floor = medians[FLOORS.get(label, FLOOR)]
        table.rows.append(
            [
                label,
                *(f"{units.duration(by_count[c])} ({units.ratio(by_count[c] / floor[c])})" for c in counts),
            ]
        )
    table.rows += [[label, *(reason for _ in counts)] for label, reason in missing.items()]
    return CaseResult(
        measures=(
            "Wall time of one warm check: everything a container start does to confirm the weights are "
            "already cached, on the same files, in one warm process (median of repeated calls). "
            f"Files are {units.size(ctx.data.small_file_bytes)} each; only pooch's time grows with "
            "their size (case 5 shows it on a whole model)."
        ),
        floor="one `os.stat` per cached file: any check that the files are there and complete costs "
        "this much; for `dir://`, whose version is a fingerprint of the source's names, sizes and "
        "mtimes, one more per source file.",
        conditions=[
            "Page cache and dentry cache warm (the files were just written and are checked repeatedly).",
            "The checks take turns, one call each per round, so load from other work on the machine "
            "falls on all of them alike.",
            "weightcache's hit of a Hub repository pinned to a commit reads and validates the manifest "
            "(once per process and manifest file state: later hits compare the file's inode, size, "
            "mtime and ctime and re-parse only when they changed) "
            "and stats each cached file; a hit of an image directory (`dir://`) also stats the "
            "directory's files first, since its version is a fingerprint of their names, sizes and mtimes.",
            "huggingface_hub's in-memory tree-listing cache is cleared before each call, as in a fresh "
            "container process; it then reads `refs/main`, the listing, and checks each file exists.",
            "pooch rehashes each whole file on every call (SHA-256).",
            "The seeds' check is listed for reference: it checks existence only, not size or completeness.",
        ],
        tables=[table, _import_table(ctx)],
        goals=_goals(medians, counts),
    )


def _checks(files: FileSet) -> dict[str, Call | str]:
    paths = [os.fspath(path) for path in files.entry.files]
    source_paths = [os.path.join(files.image_dir, record.path) for record in files.entry.manifest.files]
    pooch = peer("pooch")

    def seeds_check() -> None:
        if not all(os.path.exists(path) for path in paths):
            raise RuntimeError("the seeds' check found files missing: the benchmark's data is broken")

    def hf_check() -> None:
        _forget_hf_listings()
        snapshot_download(files.hf_repo_id, cache_dir=files.hf_cache, local_files_only=True)

    def pooch_check() -> None:
        for name, sha256 in files.sha256s.items():
            # The URL is never contacted: each file is present, so pooch only rehashes it.
            pooch.retrieve(  # type: ignore[union-attr]
                f"http://127.0.0.1:9/{name}", known_hash=f"sha256:{sha256}", fname=name, path=files.entry.path
            )

    return {
        FLOOR: lambda: [os.stat(path) for path in paths],
        # dir:// versions are a fingerprint of the source's names, sizes and mtimes: a hit stats both sides.
        DIR_FLOOR: lambda: ([os.stat(path) for path in source_paths], [os.stat(path) for path in paths]),
        WEIGHTCACHE_HUB: _weightcache_hit(files.hub_store_dir, files.hub_uri),
        WEIGHTCACHE: _weightcache_hit(files.store_dir, files.source_uri),
        SEEDS: seeds_check,
        HF: hf_check,
        POOCH: pooch_check if pooch is not None else MISSING_PEER,
    }


def _weightcache_hit(store: Path, source_uri: str) -> Call:
    cache = WeightCache(LocalStore(store))

    def hit() -> None:
        if not cache.ensure(source_uri).hit:
            raise RuntimeError(f"weightcache missed {source_uri}: the benchmark's store is broken")

    return hit


def _forget_hf_listings() -> None:
    from huggingface_hub import _tree_cache

    # A container start has an empty in-process cache; repeated calls here would not.
    _tree_cache._IN_MEMORY_TREE_CACHE.clear()


def _import_table(ctx: Context) -> Table:
    table = Table(
        "Import, once per container start (median wall time in a fresh process)", ["module", "import time"]
    )
    for name, target in IMPORTS.items():
        if peer(name) is None:
            table.rows.append([name, MISSING_PEER])
            continue
        seconds = statistics.median(
            measure_in_child("import", target).seconds for _ in range(ctx.settings.runs)
        )
        table.rows.append([target.replace(":", " → "), units.duration(seconds)])
    return table


def _goals(medians: dict[str, dict[int, float]], counts: tuple[int, ...]) -> list[Goal]:
    goals = []
    for label, source in OURS.items():
        ours = medians[label]
        ratios = [ours[count] / medians[FLOORS[label]][count] for count in counts]
        # The goal is set at the most files (1,000 in a full run): smaller sets show the fixed cost.
        goals.append(
            Goal(
                f"a hit of {source} at {counts[-1]:,} files within {GOAL_RATIO:g}x of its floor",
                ratios[-1] <= GOAL_RATIO,
                ", ".join(
                    f"{units.ratio(value)} at {count:,} files"
                    for value, count in zip(ratios, counts, strict=True)
                ),
            )
        )
        goals.append(_peers_goal(medians, counts, ours, source))
    return goals


def _peers_goal(
    medians: dict[str, dict[int, float]], counts: tuple[int, ...], ours: dict[int, float], source: str
) -> Goal:
    measured = [label for label in PEERS if label in medians]
    beaten = [
        f"{label.split()[0]} at {count:,} files ({units.ratio(medians[label][count] / ours[count])} ours)"
        for label in measured
        for count in counts
        if medians[label][count] <= ours[count]
    ]
    everything = len(measured) == len(PEERS)
    return Goal(
        f"a hit of {source} faster than every peer (huggingface_hub, pooch)",
        False if beaten else (True if everything else None),
        f"peers faster or equal: {'; '.join(beaten)}"
        if beaten
        else "faster than every measured peer at every size"
        + ("" if everything else " (pooch not installed)"),
    )


CASE = Case(1, "Warm check", run)
