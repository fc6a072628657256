"""Case 6: peak memory of a populate and of a warm check, each in a fresh process."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from .. import units
from ..child import ChildResult, measure_in_child
from ..harness import Case, CaseResult, Context, Goal, Table
from ..servers import REPO_ID, file_serving, files_of, hub_serving

LIMIT_BYTES = 128 * 10**6


@dataclass(frozen=True)
class Served:
    """A source ready to populate from: its URI, and environment variables the child needs to reach it."""

    uri: str
    env: dict[str, str] = field(default_factory=dict)


#: A source kind: given the run and a model size, serve that model and yield how to reach it.
SourceKind = Callable[[Context, int], AbstractContextManager[Served]]


@contextlib.contextmanager
def _image_dir(ctx: Context, total_bytes: int) -> Iterator[Served]:
    yield Served(f"dir://{ctx.data.model_dir(total_bytes)}")


@contextlib.contextmanager
def _hub(ctx: Context, total_bytes: int) -> Iterator[Served]:
    with hub_serving(files_of(ctx.data.model_dir(total_bytes))) as (hub, _sha):
        yield Served(f"hf://{REPO_ID}", {"HF_ENDPOINT": hub.url})


@contextlib.contextmanager
def _urls(ctx: Context, total_bytes: int) -> Iterator[Served]:
    with file_serving(files_of(ctx.data.model_dir(total_bytes))) as (_server, uri):
        yield Served(uri)


SOURCE_KINDS: dict[str, SourceKind] = {
    "dir://": _image_dir,
    "hf:// (fake Hub)": _hub,
    "http:// (one URL per file)": _urls,
}


def run(ctx: Context) -> CaseResult:
    """Measure a bare import, populates of a small and a large model per source kind, and a warm check."""
    large = ctx.settings.model_bytes
    sizes = (large // 8, large)
    rows: list[tuple[str, ChildResult]] = []
    ctx.say("case 6: baseline")
    baseline = measure_in_child("baseline")
    rows.append(("import weightcache (baseline)", baseline))
    populates: dict[str, list[ChildResult]] = {kind: [] for kind in SOURCE_KINDS}
    for kind, serve in SOURCE_KINDS.items():
        for total in sizes:
            ctx.say(f"case 6: populate {kind} {units.size(total)}")
            store = ctx.scratch("memory-store")
            with serve(ctx, total) as served:
                result = measure_in_child("populate", served.uri, str(store), env=served.env)
            shutil.rmtree(store)
            populates[kind].append(result)
            rows.append((f"populate {kind}, {units.size(total)}", result))
    count = max(ctx.settings.file_counts)
    files = ctx.data.file_set(count)
    ctx.say(f"case 6: warm check, {count:,} files")
    warm = measure_in_child("warm", files.source_uri, str(files.store_dir))
    rows.append((f"warm ensure(dir://…), {count:,} files", warm))
    table = Table("Peak RSS of one fresh process", ["process", "peak RSS", "above baseline", "wall time"])
    for label, result in rows:
        above = (result.peak_rss_bytes - baseline.peak_rss_bytes) / 1e6
        table.rows.append(
            [label, _mb(result.peak_rss_bytes), f"{round(above):+d} MB", units.duration(result.seconds)]
        )
    return CaseResult(
        measures=(
            "Peak resident memory (`VmHWM`) of a fresh Python process that imports weightcache and "
            "makes one `ensure()` call: a populate into an empty store, or a hit."
        ),
        floor=None,
        conditions=[
            "Each measurement is its own process, so nothing else the run did is counted; the baseline "
            "row is the interpreter plus `import weightcache`.",
            "Page cache is not resident memory: file data read or written does not count here.",
            "The Hub and URL sources download from weightcache's fake Hub and file server on 127.0.0.1, "
            "run by the parent process (not counted; the fake Hub holds the model in the parent's memory).",
            f"Two model sizes, {units.size(sizes[0])} and {units.size(sizes[1])}: "
            "the peak must not grow with size.",
        ],
        tables=[table],
        goals=[_goal(populates, warm)],
    )


def _mb(nbytes: int) -> str:
    return f"{nbytes / 1e6:.0f} MB"


def _goal(populates: dict[str, list[ChildResult]], warm: ChildResult) -> Goal:
    peaks = [result.peak_rss_bytes for results in populates.values() for result in results]
    highest = max([*peaks, warm.peak_rss_bytes])
    growth = ", ".join(
        f"{kind.split()[0]} {round((results[-1].peak_rss_bytes - results[0].peak_rss_bytes) / 1e6):+d} MB"
        for kind, results in populates.items()
    )
    return Goal(
        f"peak RSS at most {_mb(LIMIT_BYTES)} for any source and size",
        highest <= LIMIT_BYTES,
        f"highest peak {_mb(highest)}; per source: "
        + ", ".join(
            f"{kind.split()[0]} {_mb(max(r.peak_rss_bytes for r in results))}"
            for kind, results in populates.items()
        )
        + f"; from the small to the large model: {growth}",
    )


CASE = Case(6, "Memory", run)
