"""Case 3: a herd of containers cold-starting together on one (fake) Modal Volume."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass

from .. import units
from ..child import REPO_ROOT
from ..harness import Case, CaseResult, Context, Goal, Table
from ..servers import files_of, hub_bytes_requested, hub_serving

#: Row -> (herd pattern in bench.herd_container, whether the whole herd runs, how the report names it).
ROWS = {
    "alone": ("weightcache", False, "one container alone: weightcache ensure(hf://…)"),
    "weightcache": ("weightcache", True, "weightcache ensure(hf://…), lease on a Dict (default timings)"),
    "weightcache-no-dict": ("weightcache-no-dict", True, "weightcache ensure(hf://…), no lease Dict"),
    "modal-examples": (
        "modal-examples",
        True,
        "Modal's examples: Volume as HF cache, snapshot_download, commit",
    ),
}
#: The rows the time goal compares: each runs ``settings.runs`` times and reports its median.
REPEATED = ("alone", "weightcache")
GOAL_BYTES = 1.1
GOAL_TIME = 1.2


@dataclass(frozen=True)
class HerdResult:
    """One herd: bytes asked of the source, containers that did not hit, time until all had weights."""

    source_bytes: int
    fetchers: int
    seconds: float


def run(ctx: Context) -> CaseResult:
    """Start the same herd once per pattern, each on a fresh Volume, against one fake Hub.

    The goal's two rows (one container alone, the herd with the lease) run ``settings.runs``
    times, interleaved so that a change in the machine's load falls on both; each reports the
    run with the median time.
    """
    files = files_of(ctx.data.model_dir(ctx.settings.herd_bytes))
    model_bytes = sum(path.stat().st_size for path in files.values())
    size = ctx.settings.herd_containers
    order = [row for _ in range(ctx.settings.runs) for row in REPEATED]
    order += [row for row in ROWS if row not in REPEATED]
    runs: dict[str, list[HerdResult]] = defaultdict(list)
    with hub_serving(files) as (hub, _sha):
        for row in order:
            pattern, whole_herd, _label = ROWS[row]
            count = size if whole_herd else 1
            ctx.say(f"case 3: {count} containers, {row}")
            before = hub_bytes_requested(hub, files)
            fetchers, seconds = _herd(ctx, pattern, count, {"HF_ENDPOINT": hub.url})
            runs[row].append(HerdResult(hub_bytes_requested(hub, files) - before, fetchers, seconds))
    results = {
        row: sorted(results, key=lambda result: result.seconds)[len(results) // 2]
        for row, results in runs.items()
    }
    table = Table(
        f"{size} containers start at once, {units.size(model_bytes)} model, empty Volume",
        ["pattern", "containers that fetched", "bytes from the source", "x model", "until all have weights"],
    )
    for row, (_pattern, whole_herd, label) in ROWS.items():
        result = results[row]
        seconds = units.duration(result.seconds)
        if len(runs[row]) > 1:
            each = ", ".join(units.duration(run.seconds) for run in runs[row])
            seconds = f"{seconds} (median of {len(runs[row])}: {each})"
        table.rows.append(
            [
                label,
                f"{max(run.fetchers for run in runs[row])} of {size if whole_herd else 1}",
                units.size(max(run.source_bytes for run in runs[row])),
                units.ratio(max(run.source_bytes for run in runs[row]) / model_bytes),
                seconds,
            ]
        )
    ours = max(run.source_bytes for run in runs["weightcache"]) / model_bytes
    slowdown = results["weightcache"].seconds / results["alone"].seconds
    return CaseResult(
        measures=(
            f"{size} simulated Modal containers, each a real process with its own view of one "
            "`FakeModalVolume`, start together on an empty Volume and load the same Hub repository: "
            "the bytes the Hub served, and the time until every container has the weights."
        ),
        floor="the model's bytes, fetched once.",
        conditions=[
            "The Hub is weightcache's `FakeHub` on 127.0.0.1 (no cap per connection), run by the parent.",
            "Like Modal, a container sees the Volume as of its start plus its own writes; others' commits "
            "appear only after a reload. The fake's commit and reload hard-link files (metadata only, as a "
            "reload is on Modal), under one lock for the whole Volume.",
            "weightcache's lease is a `FakeModalDict` (a file: writes under a file lock, reads without) "
            "with modal.Dict's atomic create; waiters read the holder's record after a twentieth of the "
            "time waited (0.02-0.25 s) and reload the Volume once it is released. Without a Dict every "
            "container fetches (the third row).",
            "Each container imports its libraries and builds the Hub's HTTP client before the start signal "
            "(on Modal each container does that on its own CPUs; here the herd shares two cores).",
        ],
        tables=[table],
        goals=[
            Goal(
                f"a herd fetches at most {GOAL_BYTES}x the model's bytes",
                ours <= GOAL_BYTES,
                f"weightcache {units.ratio(ours)}; Modal's examples "
                f"{units.ratio(results['modal-examples'].source_bytes / model_bytes)}",
            ),
            Goal(
                f"every container of the herd has the weights within {GOAL_TIME}x one container alone",
                slowdown <= GOAL_TIME,
                f"{units.ratio(slowdown)} ({units.duration(results['weightcache'].seconds)} against "
                f"{units.duration(results['alone'].seconds)}{_medians(len(runs['alone']))})",
            ),
        ],
    )


def _medians(count: int) -> str:
    return f", medians of {count} runs each" if count > 1 else ""


def _herd(ctx: Context, pattern: str, size: int, env: dict[str, str]) -> tuple[int, float]:
    """Run ``size`` containers of ``pattern``; return how many did not hit, and seconds until all loaded."""
    volume, ready = ctx.scratch("volume"), ctx.scratch("ready")
    command = [sys.executable, "-m", "bench.herd_container", pattern, str(volume), str(ready)]
    containers = [
        subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(size)
    ]
    while len(list(ready.glob("*.ready"))) < size:
        if any(container.poll() is not None for container in containers):
            break  # one died before it was ready: communicate() below reports it
        time.sleep(0.01)
    started = time.time()
    (ready / "go").touch()
    outcomes = [_outcome(container) for container in containers]
    shutil.rmtree(volume)
    return sum(1 for outcome in outcomes if not outcome["hit"]), max(
        o["finished_at"] for o in outcomes
    ) - started


def _outcome(container: subprocess.Popen[str]) -> dict[str, object]:
    out, err = container.communicate(timeout=600)
    if container.returncode != 0:
        raise RuntimeError(f"a herd container failed:\n{err.strip()}")
    return json.loads(out.strip().splitlines()[-1])


CASE = Case(3, "Herd on a Modal Volume", run)
