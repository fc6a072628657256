"""Modal containers SIGKILLed at every named point of a populate, on a shared (fake) Volume.

A container killed on Modal loses what it did not commit, but Modal's background commits may
already have committed part of its staging or (after the publish) its entry, and its lease
stays in the Dict, never released. Each trial forks a process that starts a container (with
background commits every 50 ms), populates a new version under a fast lease, and is killed at
a named point (or after a random delay). Then a fresh container must: list
only complete, byte-exact entries; take over the dead holder's lease and succeed; and leave no
staging on the Volume once the lease has lapsed and gc ran.

Quick by default (each named point once); the soak run (``WEIGHTCACHE_CRASH_TRIALS=N``) adds
random delays up to N.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import blake3
import pytest

from tests.reliability.crash import POINTS, run_child
from tests.reliability.test_crash import SOAK, TRIALS
from weightcache import LeaseSettings, ModalVolumeStore, WeightCache
from weightcache.testing import FakeModalDict, FakeModalVolume

FAST = LeaseSettings(lease_seconds=0.5, heartbeat_seconds=0.1, poll_seconds=0.05)
POPULATE_POINTS = [point for point in POINTS if point not in ("adopt-hash", "reuse-link", "drop-refs")]


def _cache(volume: FakeModalVolume):  # type: ignore[no-untyped-def]
    container = volume.container(background_commit_seconds=0.05)
    leases = FakeModalDict(volume.root / "leases.dict")
    store = ModalVolumeStore(container, container.mount_path, lease=FAST, lease_dict=leases)
    return container, WeightCache(store)


def _check_and_recover(volume: FakeModalVolume, source: Path, expected: dict[str, dict[str, str]]) -> bool:
    """A fresh container lists only whole entries and gets the source; return whether it fetched."""
    container, cache = _cache(volume)
    for entry in cache.list():
        assert cache.verify(entry, deep=True).ok, entry.key
        assert {record.path: record.blake3 for record in entry.manifest.files} == expected[entry.version]
    entry = cache.ensure(source)
    assert cache.verify(entry, deep=True).ok
    assert {record.path: record.blake3 for record in entry.manifest.files} == expected[entry.version]
    cache.release(entry)
    container.exit()
    return not entry.hit


@pytest.mark.crash
def test_a_container_killed_anywhere_in_a_populate(tmp_path: Path, make_image_dir, seed: int, capsys) -> None:
    rng = random.Random(seed)
    volume = FakeModalVolume(tmp_path / "volume")
    source = make_image_dir({"a.bin": b"0"}, name="model")
    expected: dict[str, dict[str, str]] = {}
    # Every named point once in the quick run (a kill costs the next container a lapsed lease,
    # about a second); a long run (WEIGHTCACHE_CRASH_TRIALS set) adds random delays up to TRIALS.
    plan: list[str | float] = list(POPULATE_POINTS)
    if SOAK:
        plan += [rng.uniform(0, 0.3) for _ in range(max(0, TRIALS - len(plan)))]
    fetched, ends = 0, Counter()
    for step in plan:
        files = {"a.bin": rng.randbytes(200_000), "sub/b.bin": rng.randbytes(rng.choice([0, 1, 70_000]))}
        for name, data in files.items():
            (source / name).parent.mkdir(exist_ok=True)
            (source / name).write_bytes(data)
        version = WeightCache(tmp_path / "unused").status(source).version
        expected[version] = {name: blake3.blake3(data).hexdigest() for name, data in files.items()}

        def populate() -> None:
            container, cache = _cache(FakeModalVolume(volume.root))  # this process's own lock objects
            cache.ensure(source)
            container.exit()

        if isinstance(step, str):
            outcome = run_child(populate, point=step, occurrence=rng.randint(1, 2), rng=rng)
        else:
            outcome = run_child(populate, delay=step, rng=rng)
        assert outcome.how != "error", outcome
        ends[outcome.how] += 1
        fetched += _check_and_recover(volume, source, expected)
    _collect_until_leases_lapse(volume)
    assert volume.listdir(".weightcache/staging") == [] and volume.listdir(".weightcache/trash") == []
    with capsys.disabled():
        print(f"\n[crash:modal] {len(plan)} containers: {dict(ends)}; {fetched} refetched")


def _collect_until_leases_lapse(volume: FakeModalVolume) -> None:
    """gc skips what a (dead) holder's lease still covers: repeat until nothing is busy."""
    deadline = time.monotonic() + 30
    while True:
        container, cache = _cache(volume)
        report = cache.gc(keep=1)
        container.exit()
        if not report.skipped_busy or time.monotonic() > deadline:
            assert not report.skipped_busy, report
            return
        time.sleep(FAST.poll_seconds)
