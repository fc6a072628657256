"""Real processes: many at once fetch once; a SIGKILLed populate leaves nothing that looks complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import run_python
from weightcache import WeightCache

# Each child counts the bytes *it* copied (progress events) and reports its entry as JSON.
ENSURE_CHILD = """
import json, sys, time
from weightcache import WeightCache
copied = 0
def progress(event):
    global copied
    copied += event.nbytes
    time.sleep(0.002)  # keep the populate going long enough for every child to arrive
start = float(sys.argv[3])
while time.time() < start:
    time.sleep(0.001)
entry = WeightCache(sys.argv[1]).ensure(sys.argv[2], progress=progress)
print(json.dumps({"key": entry.key, "hit": entry.hit, "copied": copied, "path": str(entry.path)}))
"""

KILL_CHILD = """
import os, signal, sys
from weightcache import WeightCache
limit, written = int(sys.argv[3]), 0
def progress(event):
    global written
    written += event.nbytes
    if written >= limit:
        os.kill(os.getpid(), signal.SIGKILL)
WeightCache(sys.argv[1]).ensure(sys.argv[2], progress=progress)
"""


def test_eight_processes_fetch_once(store_dir: Path, make_image_dir) -> None:
    source = make_image_dir({f"shard-{i}.bin": os.urandom(2_000_000) for i in range(4)})
    start_at = str(time.time() + 2.0)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", ENSURE_CHILD, str(store_dir), str(source), start_at],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        results.append(json.loads(out))
    assert len({result["key"] for result in results}) == 1
    assert sorted(result["hit"] for result in results) == [False] + [True] * 7
    assert sum(result["copied"] for result in results) == 8_000_000  # the model's bytes, copied once
    assert len(WeightCache(store_dir).list()) == 1


def test_sigkill_mid_populate_leaves_nothing_listed_and_next_call_succeeds(
    store_dir: Path, make_image_dir
) -> None:
    source = make_image_dir({f"shard-{i}.bin": os.urandom(4_000_000) for i in range(3)})
    for limit in (1, 3_000_000, 6_000_000, 11_000_000):
        killed = run_python(KILL_CHILD, str(store_dir), str(source), str(limit))
        assert killed.returncode == -signal.SIGKILL
        cache = WeightCache(store_dir)
        assert cache.list() == []
        assert not any((store_dir / "entries").glob("*/manifest.json"))
    staging = store_dir / ".weightcache" / "staging"
    assert list(staging.iterdir())  # abandoned staging is there...

    entry = WeightCache(store_dir).ensure(source)
    assert not entry.hit and WeightCache(store_dir).verify(entry, deep=True).ok
    assert list(staging.iterdir()) == []  # ...and reclaimed by the next populate


def test_killed_holder_does_not_block_waiters(store_dir: Path, make_image_dir) -> None:
    source = make_image_dir({"big.bin": os.urandom(8_000_000)})
    holder = subprocess.Popen(
        [sys.executable, "-c", ENSURE_CHILD.replace("0.002", "0.5"), str(store_dir), str(source), "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lock = store_dir / ".weightcache" / "locks"
    deadline = time.time() + 30
    while not (lock.is_dir() and any(lock.iterdir())) and time.time() < deadline:
        time.sleep(0.05)
    holder.kill()
    holder.wait()
    # A lease the dead holder still blocked would raise a lock timeout here; no time is measured.
    entry = WeightCache(store_dir, lock_timeout=30).ensure(source)
    assert not entry.hit and WeightCache(store_dir).verify(entry, deep=True).ok


def test_threads_in_one_process_fetch_once(cache: WeightCache, make_image_dir) -> None:
    from concurrent.futures import ThreadPoolExecutor

    source = make_image_dir({"a.bin": os.urandom(3_000_000)})
    with ThreadPoolExecutor(6) as pool:
        entries = list(pool.map(lambda _: cache.ensure(source), range(6)))
    assert sorted(entry.hit for entry in entries) == [False] + [True] * 5
