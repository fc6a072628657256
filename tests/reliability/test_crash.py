"""SIGKILL at any point never leaves a bad entry: the fault-injection suite for crashes.

Each trial forks a real process that populates (a new version, ``force``, ``repair``), runs
``gc`` or ``rm`` on a shared store, and SIGKILLs it when it reaches a named point (see
:mod:`crash`): a chosen one, or whichever comes n-th. After every trial: every entry listed is
complete and byte-exact, no directory under ``entries/`` lacks a valid manifest, every ref is
whole. Every few trials and at the end: the next ``ensure`` of each source succeeds and
deep-verifies, and ``gc`` reclaims all abandoned staging and trash.

Kills wait for the point, never for a time, so the trials do the same on a fast or a loaded
machine. The random choices come from the ``seed`` fixture (derived from the test's id;
``WEIGHTCACHE_TEST_SEED`` replays or varies them). The default run is quick; the soak run,
``WEIGHTCACHE_CRASH_TRIALS=1200 pytest -m crash``, also kills after random delays to land
between the named points. The test prints how many trials it ran and how they ended.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import blake3
import pytest

from tests.reliability.crash import ANY, POINTS, Outcome, run_child
from tests.reliability.sources import KIND_NAMES, SourceKind, source_kind
from weightcache import Manifest, WeightCache
from weightcache._core.refs import Ref
from weightcache._core.registry import SourceLike, parse_source
from weightcache.manifest import load_manifest
from weightcache.testing import FileServer

TRIALS = int(os.environ.get("WEIGHTCACHE_CRASH_TRIALS", "25"))
SOAK = "WEIGHTCACHE_CRASH_TRIALS" in os.environ  # a long run: random delays too
REMOVE_POINTS = ["entry-to-trash", "drop-refs", "remove-tree"]
NEW_ENTRY_POINTS = [point for point in POINTS if point not in ("entry-to-trash", "drop-refs")]
REPLACE_POINTS = [*NEW_ENTRY_POINTS, "entry-to-trash"]
FILE_NAMES = ["a.bin", "b/c.bin", "b/d/e.safetensors", "f.json", "g.bin"]


class Scenario:
    """A store, two sources with changing versions, and what every version must contain."""

    def __init__(self, kind: SourceKind, root: Path, rng: random.Random) -> None:
        self.kind, self.root, self.rng = kind, root, rng
        self.store = root / "store"
        self.expected: dict[str, dict[str, str]] = {}  # version -> {path: blake3}
        self.sources: dict[str, SourceLike] = {}
        self.files: dict[str, dict[str, bytes]] = {}
        # Files the test corrupted on purpose, by inode: every entry sharing one (hardlinked by an
        # incremental update, which trusts the earlier manifest) holds the damage until repaired.
        self.damaged_inodes: set[int] = set()
        # How many named points each action passed when it last ran to the end: ANY kills aim inside.
        self.passed: dict[str, int] = {}
        for name in ("alpha", "beta"):
            self.new_version(name)

    def new_version(self, name: str) -> None:
        """Serve a new version of source ``name``: some files changed, some kept, some new."""
        files = dict(self.files.get(name, {}))
        for _ in range(self.rng.randint(1, 3)):
            size = self.rng.choice([0, 1, 4096, 70_000, 150_000, 400_000])
            files[self.rng.choice(FILE_NAMES)] = self.rng.randbytes(size)
        self.files[name] = files
        source = self.kind.serve(name, files)
        self.sources[name] = source
        parsed = parse_source(source)
        version = parsed.pinned_version() or parsed.resolve().version
        self.expected[version] = {path: blake3.blake3(data).hexdigest() for path, data in files.items()}

    def cache(self) -> WeightCache:
        """A fresh cache object on the store, as a new process would make."""
        return WeightCache(self.store)

    def check(self) -> None:
        """What must hold after any kill: nothing incomplete or wrong is an entry, refs are whole."""
        layout = self.cache().store.layout
        entry_dirs = sorted(layout.entries_dir.iterdir()) if layout.entries_dir.is_dir() else []
        for entry_dir in entry_dirs:
            manifest = load_manifest(layout, entry_dir.name)
            assert manifest is not None, f"{entry_dir.name} is under entries/ without a valid manifest"
            assert {record.path: record.blake3 for record in manifest.files} == self.expected[
                manifest.version
            ]
            if not any(
                os.stat(entry_dir / "files" / record.path).st_ino in self.damaged_inodes
                for record in manifest.files
            ):
                report = self.cache().verify(entry_dir.name, deep=True)
                assert report.ok, report.problems
        for ref_file in layout.refs_dir.glob("*.json") if layout.refs_dir.is_dir() else []:
            Ref.model_validate_json(ref_file.read_bytes())  # never half-written

    def recover(self) -> None:
        """The next ensure of every source succeeds and deep-verifies; gc then leaves no leftovers."""
        cache = self.cache()
        for source in self.sources.values():
            entry = cache.ensure(source, refresh=True, repair=True)  # repair: the test damages some
            assert cache.verify(entry, deep=True).ok
            assert _hashes(entry.manifest) == self.expected[entry.version]
            cache.release(entry)
        cache.gc(keep=1)
        layout = cache.store.layout
        assert list(layout.staging_dir.iterdir()) == [] and list(layout.trash_dir.iterdir()) == []
        damaged = [entry for entry in cache.list() if not cache.verify(entry, deep=True).ok]
        self.damaged_inodes &= {path.stat().st_ino for entry in damaged for path in entry.files}
        self.check()

    def trial(self) -> tuple[str, Outcome]:
        """Run one operation in a child and kill it somewhere; return what was done and how it ended."""
        name = self.rng.choice(list(self.sources))
        action = self.rng.choice(["new-version", "new-version", "force", "repair", "gc", "rm"])
        if action == "repair" and not self._damage(name):
            action = "force"
        if action in ("gc", "rm") and not self.cache().gc(keep=1, dry_run=True).removed:
            action = "new-version"  # nothing to remove: a kill would land nowhere
        if action == "new-version":
            self.new_version(name)
        operation = self._operation(action, name)
        mode = self.rng.random()
        if SOAK and mode < 0.2:
            # Between the named points too: a delay up to about how long an operation takes here.
            return action, run_child(operation, delay=self.rng.uniform(0, 0.3), rng=self.rng)
        if mode < 0.5:
            occurrence = self.rng.randint(1, max(1, self.passed.get(action, 4)))
            outcome = run_child(operation, point=ANY, occurrence=occurrence, rng=self.rng)
            # Every operation passes a named point first thing (the lease, or moving an entry aside).
            assert outcome.how == "point" or occurrence > 1, (action, outcome)
        else:
            outcome = self._kill_at_a_named_point(action, operation)
        if outcome.how == "finished":
            self.passed[action] = outcome.passed
        return action, outcome

    def _kill_at_a_named_point(self, action: str, operation) -> Outcome:  # type: ignore[no-untyped-def]
        points = {"gc": REMOVE_POINTS, "rm": REMOVE_POINTS, "new-version": NEW_ENTRY_POINTS}.get(
            action, REPLACE_POINTS
        )
        points = [point for point in points if point not in self.kind.never_reaches]
        point = self.rng.choice(points)
        occurrence = self.rng.randint(1, 6 if point == "write-chunk" else 2)
        return run_child(operation, point=point, occurrence=occurrence, rng=self.rng)

    def _operation(self, action: str, name: str):  # type: ignore[no-untyped-def]
        source, cache = self.sources[name], self.cache()
        listed = [entry.key for entry in cache.list()]
        victim = self.rng.choice(listed) if listed else None
        force = self.rng.random() < 0.5
        return {
            "new-version": lambda: cache.ensure(source, refresh=True),
            "force": lambda: cache.ensure(source, force=True),
            "repair": lambda: cache.ensure(source, repair=True),
            "gc": lambda: cache.gc(keep=1),
            "rm": lambda: victim and cache.remove(victim, force=force),
        }[action]

    def _damage(self, name: str) -> bool:
        """Flip a byte of the source's cached entry in place (every entry sharing that inode is hit)."""
        status = self.cache().status(self.sources[name])
        if not status.cached or not status.bytes:
            return False
        entry = self.cache().get(status.key)
        victim = next(path for path in entry.files if path.stat().st_size)
        with open(victim, "r+b") as handle:
            byte = handle.read(1)
            handle.seek(0)
            handle.write(bytes([byte[0] ^ 0xFF]))
        self.damaged_inodes.add(victim.stat().st_ino)
        return True


def _hashes(manifest: Manifest) -> dict[str, str]:
    return {record.path: record.blake3 for record in manifest.files}


@pytest.mark.crash
@pytest.mark.parametrize("kind_name", KIND_NAMES)
def test_sigkill_anywhere_never_leaves_a_bad_entry(kind_name: str, tmp_path: Path, seed: int, capsys) -> None:
    with source_kind(kind_name, tmp_path / "served") as kind:
        _run_trials(kind, tmp_path, random.Random(seed), capsys)


def _run_trials(kind: SourceKind, tmp_path: Path, rng: random.Random, capsys) -> None:  # type: ignore[no-untyped-def]
    scenario = Scenario(kind, tmp_path, rng)
    scenario.recover()
    ends: Counter[str] = Counter()
    reached: Counter[str] = Counter()
    for number in range(1, TRIALS + 1):
        action, outcome = scenario.trial()
        assert outcome.how != "error", (action, outcome)
        ends[outcome.how] += 1
        if outcome.how == "point":
            reached[outcome.detail] += 1
        scenario.check()
        if number % 10 == 0 or number == TRIALS:
            scenario.recover()
    with capsys.disabled():
        print(
            f"\n[crash:{kind.name}] {TRIALS} trials: {dict(ends)}; "
            f"killed at {len(reached)} of {len(POINTS)} named points: {dict(sorted(reached.items()))}"
        )


def test_lease_file_left_empty_by_a_kill_does_not_block_forever(store_dir: Path, make_image_dir) -> None:
    """A kill between creating the lease file and writing its record leaves it empty (found by the trials)."""
    source = make_image_dir({"a.bin": b"weights"})
    cache = WeightCache(store_dir, lock_timeout=20)
    key = cache.status(source).key
    cache.store.prepare_for_writes()
    lease = cache.store.layout.locks_dir / f"{key}.lock"
    lease.parent.mkdir(parents=True)
    lease.touch()  # what the killed process left: filelock takes an empty marker for a live old holder
    entry = cache.ensure(source)
    assert not entry.hit and cache.verify(entry, deep=True).ok


CLI_FILE = bytes(range(256)) * 16384  # 4 MiB: a fraction of a second at full speed, 2 s throttled


@pytest.mark.crash
@pytest.mark.parametrize("event", ["started", "mid-file", "published"])
def test_sigkill_of_the_cli_in_a_fresh_interpreter(store_dir: Path, event: str) -> None:
    """The same, for `weightcache ensure` started from scratch (no fork), killed when an event is seen:
    just started, part of the file in staging, the entry published. The server sends 2 MiB/s, so the
    first two events last seconds; the test waits for each event, never for a time."""
    with FileServer(throttle=2 << 20) as server:
        url = server.add("/model.bin", CLI_FILE)
        command = [sys.executable, "-m", "weightcache", "ensure", url, "--store", str(store_dir)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if event != "started":
                _wait_for(lambda: _seen(store_dir, event), process)
        finally:
            process.kill()
            process.wait()
        server.throttle = None  # the recovery below needs no slow wire
        cache = WeightCache(store_dir)
        assert all(cache.verify(entry, deep=True).ok for entry in cache.list())
        entry = cache.ensure(url)
        assert cache.verify(entry, deep=True).ok and entry.files[0].read_bytes() == CLI_FILE
        assert list(cache.store.layout.staging_dir.iterdir()) == []
        cache.release(entry)


def _seen(store_dir: Path, event: str) -> bool:
    """Whether the store shows ``event``: staging holds the file's first 64 KiB, or an entry exists."""
    if event == "published":
        entries = store_dir / "entries"
        return entries.is_dir() and any(entries.iterdir())
    staged = [path for path in (store_dir / ".weightcache/staging").glob("*/**/*") if path.is_file()]
    for path in staged:
        with open(path, "rb") as handle:
            if handle.read(1 << 16) == CLI_FILE[: 1 << 16]:
                return True
    return False


def _wait_for(happened: Callable[[], bool], process: subprocess.Popen) -> None:
    """Poll until ``happened()``; the child exiting or hanging first is a failure that says so."""
    deadline = time.monotonic() + 60  # a hang guard only: the event comes within seconds
    while not happened():
        assert process.poll() is None, "the CLI exited before the event the test waits for"
        assert time.monotonic() < deadline, "the event never came"
        time.sleep(0.002)
