"""Case 9: the warm start in a fresh process, ``import weightcache`` plus one ``ensure()`` hit, against a
bare interpreter's start-up, measured side by side."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

from .. import units
from ..child import REPO_ROOT
from ..harness import Case, CaseResult, Context, Goal, Table

FILES = 20
BARE = "bare interpreter: python -c pass"
IMPORT = "python -c 'import weightcache'"
OURS = {
    "dir://…": "weightcache: import + ensure(dir://…), a hit",
    "hf://…@sha": "weightcache: import + ensure(hf://…@sha), a hit",
}
#: Modules a hit has no use for: their presence after the call is reported.
HEAVY = ("pydantic", "filelock", "rich", "typer", "huggingface_hub", "httpx", "modal", "torch", "blake3")

_IMPORT = """
import json, sys, weightcache
print(json.dumps([name for name in {heavy!r} if name in sys.modules]))
"""
_HIT = """
import json, sys, weightcache
entry = weightcache.WeightCache(weightcache.LocalStore({store!r})).ensure({uri!r})
assert entry.hit, "expected a hit"
print(json.dumps([name for name in {heavy!r} if name in sys.modules]))
"""


def run(ctx: Context) -> CaseResult:
    """Start each process in turn, round after round, so that load on the machine hits them alike."""
    files = ctx.data.file_set(FILES)
    commands = {
        BARE: "pass",
        IMPORT: _IMPORT.format(heavy=HEAVY),
        OURS["dir://…"]: _HIT.format(store=str(files.store_dir), uri=files.source_uri, heavy=HEAVY),
        OURS["hf://…@sha"]: _HIT.format(store=str(files.hub_store_dir), uri=files.hub_uri, heavy=HEAVY),
    }
    rounds = 1 if ctx.settings.quick else 15
    ctx.say(f"case 9: {rounds} rounds of {len(commands)} fresh processes")
    seconds: dict[str, list[float]] = {label: [] for label in commands}
    imported: dict[str, list[str]] = {}
    for _ in range(rounds):
        for label, code in commands.items():
            elapsed, output = _start(code)
            seconds[label].append(elapsed)
            if output:
                imported[label] = json.loads(output.splitlines()[-1])
    # Per round, so a burst of load shifts both sides: (process - bare) / bare.
    overheads = {
        label: statistics.median(
            (mine - bare) / bare for mine, bare in zip(seconds[label], seconds[BARE], strict=True)
        )
        for label in commands
        if label != BARE
    }
    table = Table(
        f"Wall time of a fresh process, median of {rounds} rounds",
        ["process", "wall time", "overhead (x the bare start)", "heavy modules imported"],
    )
    for label, samples in seconds.items():
        table.rows.append(
            [
                label,
                units.duration(statistics.median(samples)),
                "-" if label == BARE else units.ratio(overheads[label]),
                ", ".join(imported.get(label, [])) or "-",
            ]
        )
    breakdown = _import_breakdown(commands[OURS["dir://…"]])
    return CaseResult(
        measures=(
            "Wall time of a whole fresh process, from spawn to exit, as a container start pays it: a bare "
            f"interpreter, `import weightcache`, and `import weightcache` plus one `ensure()` hit of {FILES} "
            "cached files (each with the interpreter's own start)."
        ),
        floor="the bare interpreter's start-up (`python -c pass`, same interpreter and environment).",
        conditions=[
            "Page cache warm (the same processes run round after round); the processes take turns, so "
            "load from other work on the machine falls on all of them alike.",
            "Overhead is (process - bare) / bare per round, then the median over the rounds.",
        ],
        tables=[table, breakdown],
        goals=[
            Goal(
                f"warm start overhead (import + one {source} hit) at most 3x the bare interpreter's start-up",
                overheads[label] <= 3,
                f"{units.ratio(overheads[label])} (bare {units.duration(statistics.median(seconds[BARE]))}, "
                f"this {units.duration(statistics.median(seconds[label]))})",
            )
            for source, label in OURS.items()
        ],
    )


#: Imports a hit pays for, by what they are for (cumulative times from ``python -X importtime``).
BREAKDOWN = {
    "weightcache.cache": "`WeightCache` and everything its module imports",
    "pydantic": "pydantic itself (the manifest and entry models)",
    "pydantic.plugin._loader": "pydantic's plugin scan of installed distributions (at the first model)",
    "weightcache.manifest": "the manifest module, its models built (pydantic included when first)",
    "weightcache._core.gc": "gc and populate: miss-path code `weightcache.cache` imports up front",
}


def _import_breakdown(code: str) -> Table:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], cwd=REPO_ROOT, capture_output=True, text=True
    )
    cumulative: dict[str, int] = {}
    everything = 0
    for line in done.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            cumulative.setdefault(parts[2].strip(), int(parts[1]))
            everything += int(parts[0])
    table = Table(
        "Where the hit's imports go (one process, `python -X importtime`, cumulative)",
        ["module", "what it is", "import time"],
    )
    table.rows.append(
        [
            "(all)",
            "every module the process imported, the interpreter's own too",
            units.duration(everything / 1e6),
        ]
    )
    for module, what in BREAKDOWN.items():
        found = cumulative.get(module)
        table.rows.append(
            [module, what, units.duration(found / 1e6) if found is not None else "not imported"]
        )
    return table


def _start(code: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"a warm-start process failed:\n{done.stderr.strip()}")
    return elapsed, done.stdout


CASE = Case(9, "Warm start in a fresh process", run)
