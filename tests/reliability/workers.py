"""Child processes for the reliability tests: ``python -m tests.reliability.workers ROLE ARGS...``.

Real processes, because what is tested (locks, SIGKILL, in-use holds) is about processes.
Each role reports on stdout, one JSON document per line.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import blake3

from tests.reliability import sources  # noqa: F401 - registers the teststream:// scheme
from weightcache import SourceChangedError, WeightCache

ROOT = Path(__file__).resolve().parents[2]


def start(role: str, *args: object, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start a worker process (from the parent's side), with pipes to talk to it; ``env`` adds variables."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.workers", role, *map(str, args)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def hear(process: subprocess.Popen[str]) -> dict:
    """The next report of a worker (fails the test with its stderr if it died instead)."""
    line = process.stdout.readline() if process.stdout else ""
    assert line, f"worker died: {process.stderr.read() if process.stderr else ''}"
    return json.loads(line)


def say(**fields: object) -> None:
    """Report one line to the parent."""
    print(json.dumps(fields), flush=True)


def hold(store: str, source: str, link: str) -> None:
    """Ensure and link an entry, open its first file, report; on a line from stdin, read everything back."""
    entry = WeightCache(store).ensure(source, link_to=link)
    opened = open(entry.files[0], "rb")  # noqa: SIM115 - held open across the parent's gc/rm on purpose
    say(key=entry.key)
    sys.stdin.readline()
    via_links = {}
    for record in entry.manifest.files:
        try:
            via_links[record.path] = blake3.blake3((Path(link) / record.path).read_bytes()).hexdigest()
        except FileNotFoundError:
            via_links[record.path] = None
    say(
        open_file_ok=blake3.blake3(opened.read()).hexdigest() == entry.manifest.files[0].blake3,
        links_ok=all(via_links[record.path] == record.blake3 for record in entry.manifest.files),
    )


def read_loop(store: str, source: str, stop_file: str) -> None:
    """Until ``stop_file`` exists: ensure, read every file back and compare with the manifest, release.

    Reports ``ready`` after the first round, then the rounds done and every failure seen.
    """
    cache = WeightCache(store)
    problems, rounds = [], 0
    while rounds == 0 or not Path(stop_file).exists():
        try:
            entry = cache.ensure(source)
        except SourceChangedError:
            continue  # the source was rewritten while being copied: documented, so try again
        time.sleep(0.01)  # an application loading its model: widens the window a gc could hit
        for record in entry.manifest.files:
            try:
                if blake3.blake3((entry.path / record.path).read_bytes()).hexdigest() != record.blake3:
                    problems.append(f"{entry.key}/{record.path}: content differs")
            except OSError as error:
                problems.append(f"{entry.key}/{record.path}: {error.strerror}")
        cache.release(entry)
        rounds += 1
        if rounds == 1:
            say(ready=True)
    say(rounds=rounds, problems=problems)


def ensure_all(store: str, start_at: str, *uris: str) -> None:
    """From ``start_at`` (a time.time()), ensure every source in random order; report bytes fetched each."""
    cache = WeightCache(store)
    uris_in_order = random.sample(uris, len(uris))
    while time.time() < float(start_at):
        time.sleep(0.001)
    report = {}
    for uri in uris_in_order:
        copied = [0]

        def progress(event, copied=copied):  # type: ignore[no-untyped-def]
            if event.kind == "file_done":  # counts adopted files too, whose bytes another client wrote
                copied[0] += event.file_size

        entry = cache.ensure(uri, progress=progress)
        report[uri] = {"key": entry.key, "hit": entry.hit, "copied": copied[0]}
    say(**report)


def gc_loop(store: str, stop_file: str) -> None:
    """Collect garbage until ``stop_file`` exists; report how much was removed and skipped as busy."""
    cache = WeightCache(store)
    removed = busy = runs = 0
    while not Path(stop_file).exists():
        report = cache.gc(keep=1)
        removed += len(report.removed)
        busy += len(report.skipped_busy)
        runs += 1
        time.sleep(0.001)  # leave the readers some CPU on a 2-core machine
    say(runs=runs, removed=removed, busy=busy)


if __name__ == "__main__":
    roles = {"hold": hold, "read_loop": read_loop, "gc_loop": gc_loop, "ensure_all": ensure_all}
    roles[sys.argv[1]](*sys.argv[2:])
