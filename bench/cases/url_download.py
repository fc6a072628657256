"""Case 4: downloading one large file from a server that caps each connection, with and without a drop."""

from __future__ import annotations

import math
import shutil
import statistics
from collections.abc import Callable
from functools import partial

from weightcache._core.constants import HTTP_CONNECTIONS
from weightcache._transport.http_parts import part_bytes_for

from .. import units
from ..child import ChildFailed, measure_in_child
from ..harness import MISSING_PEER, Case, CaseResult, Context, Goal, Table, peer
from ..servers import file_serving

PATH = "/model.bin"
ONE_STREAM = "one stream (urllib; after a drop, resumes with Range like `curl -C -`)"
POOCH = "pooch retrieve(known_hash=sha256): requests, one stream"
WEIGHTCACHE = "weightcache ensure(http://…#sha256=…): byte ranges in parallel"

#: A client: given the file's URL and SHA-256 and a fresh directory, the child op and its arguments.
Client = Callable[[str, str, str], tuple[str, ...]]
CONDITIONS = [
    "weightcache's `FileServer` on 127.0.0.1 serves the file from disk (page cache warm) and sleeps "
    "after each 64 KiB it sends to hold the cap; every client runs in its own process.",
    "Single streams are run once: the cap, not the machine, sets their time (compare the floor). "
    "weightcache and pooch check the SHA-256 (weightcache also computes BLAKE3); the plain stream "
    "checks nothing.",
    "The drop cuts one response half-way through the transfer: the stream at half the file, one of "
    "weightcache's ranges (all in flight at once) at half its length. What a drop costs is the difference "
    "of two medians (of single runs for single streams): a few hundred ms either way is noise.",
]

CLIENTS: dict[str, Client] = {
    ONE_STREAM: lambda url, sha256, dest: ("one-stream", url, f"{dest}/model.bin"),
    POOCH: lambda url, sha256, dest: ("pooch", url, sha256, dest),
    WEIGHTCACHE: lambda url, sha256, dest: ("populate", f"{url}#sha256={sha256}", dest),
}


def run(ctx: Context) -> CaseResult:
    """Time each client on the same throttled server, then again with one connection cut half-way."""
    size, throttle = ctx.settings.download_bytes, ctx.settings.throttle_bytes_per_second
    part = part_bytes_for(size, HTTP_CONNECTIONS)
    ranges = min(HTTP_CONNECTIONS, math.ceil(size / part))
    plain, dropped = _measure(ctx)
    speed = Table(
        f"Download {units.size(size)}, server capped at {throttle / 1e6:.0f} MB/s per connection "
        f"(weightcache: median of {ctx.settings.runs}; single streams: one run)",
        ["client", "connections", "time", "x one stream"],
    )
    speed.rows.append(["floor: one connection at the cap", "1", units.duration(size / throttle), ""])
    if ranges > 1:
        floor = units.duration(size / throttle / ranges)
        speed.rows.append([f"floor: {ranges} connections at the cap", str(ranges), floor, ""])
    for label, seconds in plain.items():
        connections = str(ranges) if label == WEIGHTCACHE else "1"
        speed.rows.append(
            [label, connections, units.duration(seconds), units.ratio(plain[ONE_STREAM] / seconds)]
        )
    if POOCH not in plain:
        speed.rows.append([POOCH, "1", MISSING_PEER, ""])
    drop = Table("The same download with one connection cut half-way", ["client", "time", "lost to the drop"])
    for label, outcome in dropped.items():
        lost = "" if isinstance(outcome, str) else units.duration(outcome - plain[label])
        drop.rows.append([label, outcome if isinstance(outcome, str) else units.duration(outcome), lost])
    return CaseResult(
        measures=(
            "Wall time to download one large file, with its SHA-256 known, from a local HTTP server that "
            "caps every connection (as CDNs and object stores do), and the time one dropped connection costs."
        ),
        floor=f"the file's size divided by the cap, times the connections a client uses "
        f"(weightcache: up to {HTTP_CONNECTIONS} byte ranges of {units.size(part)}).",
        conditions=CONDITIONS,
        tables=[speed, drop],
        goals=[
            Goal(
                "parallel ranges at least 3x a single stream",
                plain[WEIGHTCACHE] * 3 <= plain[ONE_STREAM],
                f"{units.ratio(plain[ONE_STREAM] / plain[WEIGHTCACHE])}: "
                f"{units.duration(plain[WEIGHTCACHE])} vs {units.duration(plain[ONE_STREAM])}",
            ),
            _floor_goal(plain[WEIGHTCACHE], size / throttle / ranges, ranges),
        ],
    )


def _floor_goal(seconds: float, floor: float, ranges: int) -> Goal:
    # Throughput as a share of the floor's: 80 % means taking at most 1.25x the floor's time.
    return Goal(
        "a download at least 80 % of the floor's throughput",
        floor / seconds >= 0.8,
        f"{floor / seconds:.0%}: {units.duration(seconds)} vs the floor's {units.duration(floor)} "
        f"({ranges} connection{'s' if ranges > 1 else ''} at the cap)",
    )


def _measure(ctx: Context) -> tuple[dict[str, float], dict[str, float | str]]:
    """Each installed client's median time, without and with one drop (or how it failed)."""
    size = ctx.settings.download_bytes
    path, sha256 = ctx.data.blob(size)
    plain: dict[str, float] = {}
    dropped: dict[str, float | str] = {}
    with file_serving({"model.bin": path}, throttle=ctx.settings.throttle_bytes_per_second) as (server, url):
        for label, client in CLIENTS.items():
            if label == POOCH and peer("pooch") is None:
                continue
            download = partial(_download, ctx, client, url, sha256)
            runs = ctx.settings.runs if label == WEIGHTCACHE else 1  # the cap sets a single stream's time
            ctx.say(f"case 4: {label}")
            plain[label] = _median(runs, download)
            # Cut half-way through the transfer: one of weightcache's ranges (all run at once), or the stream.
            part = part_bytes_for(size, HTTP_CONNECTIONS)
            cut = min(size, part) // 2 if label == WEIGHTCACHE else size // 2
            ctx.say(f"case 4: {label}, one drop")
            dropped[label] = _with_drop(runs, partial(server.drop, PATH, after=cut), download)
    return plain, dropped


def _download(ctx: Context, client: Client, url: str, sha256: str) -> float:
    dest = ctx.scratch("download")
    try:
        return measure_in_child(*client(url, sha256, str(dest))).seconds
    finally:
        shutil.rmtree(dest)


def _median(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def _with_drop(runs: int, arm: Callable[[], None], download: Callable[[], float]) -> float | str:
    def measure() -> float:
        arm()
        return download()

    try:
        return _median(runs, measure)
    except ChildFailed as failure:
        return f"fails: {failure.last_line.split(':')[0]}"


CASE = Case(4, "URL download", run)
