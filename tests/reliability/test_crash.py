"""SIGKILL at any point never leaves a bad entry: the fault-injection suite for crashes.

Each trial forks a real process that populates (a new version, ``force``, ``repair``), runs
``gc`` or ``rm`` on a shared store, and SIGKILLs it at a named point (see :mod:`crash`) or
after a random delay. After every trial: every entry listed is complete and byte-exact, no
directory under ``entries/`` lacks a valid manifest, every ref is whole. Every few trials and at
the end: the next ``ensure`` of each source succeeds and deep-verifies, and ``gc`` reclaims
all abandoned staging and trash.

``WEIGHTCACHE_CRASH_TRIALS=500 pytest -m crash`` runs the long version (the default is quick);
the test prints how many trials it ran, how they ended, and the seed to replay them.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import blake3
import pytest

from tests.reliability.crash import POINTS, Outcome, run_child
from tests.reliability.sources import KIND_NAMES, SourceKind, source_kind
from weightcache import Manifest, WeightCache
from weightcache.refs import Ref
from weightcache.registry import SourceLike, parse_source
from weightcache.verify import load_manifest

TRIALS = int(os.environ.get("WEIGHTCACHE_CRASH_TRIALS", "25"))
SEED = int(os.environ.get("WEIGHTCACHE_CRASH_SEED", str(time.time_ns() % 1_000_000)))
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
        self.seconds: dict[str, float] = {}  # how long each operation took when not killed
        for name in ("alpha", "beta"):
            self.new_version(name)

    def new_version(self, name: str) -> None:
        """Serve a new version of source ``name``: some files changed, some kept, some new."""
        files = dict(self.files.get(name, {}))
        for _ in range(self.rng.randint(1, 3)):
            size = self.rng.choice([0, 1, 4096, 70_000, 150_000, 400_000])
            files[self.rng.choice(["a.bin", "b/c.bin", "b/d/e.safetensors", "f.json", "g.bin"])] = os.urandom(
                size
            )
        self.files[name] = files
        source = self.kind.serve(name, files)
        self.sources[name] = source
        parsed = parse_source(source)
        version = parsed.pinned_version() or parsed.resolve()
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
        if self.rng.random() < 0.35:
            # Up to how long this operation took last time, so the kill lands inside it.
            delay = self.rng.uniform(0, self.seconds.get(action, 0.05))
            return action, run_child(operation, delay=delay, rng=self.rng)
        points = {"gc": REMOVE_POINTS, "rm": REMOVE_POINTS, "new-version": NEW_ENTRY_POINTS}.get(
            action, REPLACE_POINTS
        )
        points = [point for point in points if point not in self.kind.never_reaches]
        point = self.rng.choice(points)
        occurrence = self.rng.randint(1, 6 if point == "write-chunk" else 2)
        started = time.perf_counter()
        outcome = run_child(operation, point=point, occurrence=occurrence, rng=self.rng)
        if outcome.how == "finished":
            self.seconds[action] = time.perf_counter() - started
        return action, outcome

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
def test_sigkill_anywhere_never_leaves_a_bad_entry(kind_name: str, tmp_path: Path, capsys) -> None:
    with source_kind(kind_name, tmp_path / "served") as kind:
        _run_trials(kind, tmp_path, capsys)


def _run_trials(kind: SourceKind, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(f"{SEED}-{kind.name}")
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
            f"\n[crash:{kind.name}] {TRIALS} trials (seed {SEED}): {dict(ends)}; "
            f"killed at {len(reached)} of {len(POINTS)} named points: {dict(sorted(reached.items()))}"
        )
    assert ends["point"] + ends["delay"] >= TRIALS // 2  # most trials did kill something


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


@pytest.mark.crash
def test_sigkill_of_the_cli_in_a_fresh_interpreter(store_dir: Path, make_image_dir) -> None:
    """The same, for `weightcache ensure` started from scratch (no fork), killed at random moments."""
    rng = random.Random(SEED)
    source = make_image_dir({f"shard-{index}.bin": os.urandom(3_000_000) for index in range(4)})
    command = [sys.executable, "-m", "weightcache", "ensure", str(source), "--store", str(store_dir)]
    for delay in (0.05, *(rng.uniform(0.3, 1.5) for _ in range(3))):  # the first dies starting up
        shutil.rmtree(store_dir, ignore_errors=True)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=delay)  # interpreter start-up, then the populate
        process.kill()
        process.wait()
        cache = WeightCache(store_dir)
        assert all(cache.verify(entry, deep=True).ok for entry in cache.list())
        entry = cache.ensure(source)
        assert cache.verify(entry, deep=True).ok and list(cache.store.layout.staging_dir.iterdir()) == []
        cache.release(entry)
