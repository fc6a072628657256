"""Simulated Modal containers in real processes sharing one FakeModalVolume: herds, crashes, races."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from weightcache import ModalVolumeStore, WeightCache
from weightcache.testing import FakeModalDict, FakeModalVolume

# One simulated container: ensure, deep-verify, exit (a final commit); report as JSON. The bytes
# counted are those the source gave this container (progress events), so fetches can be summed.
CONTAINER = """
import json, logging, os, signal, sys, time
from pathlib import Path
from weightcache import LeaseSettings, ModalVolumeStore, Source, WeightCache
from weightcache.providers.base import Plan
from weightcache.testing import FakeModalDict, FakeModalVolume

root, source, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

class RandomSource(Source):
    # Different bytes on every fetch of the same version: any mix of two populates fails verify.
    scheme = "random"
    uri = slug = "random-model"
    def resolve(self):
        return Plan("v1")
    def fetch(self, plan, staging):
        staging.plan({f"shard-{i}.bin": 1_000_000 for i in range(4)})
        for i in range(4):
            staging.write_stream(f"shard-{i}.bin", [os.urandom(500_000), os.urandom(500_000)], size=1_000_000)

fetched, took_over = 0, []
def meet(folder, count):
    # Wait, mid-fetch, until `count` containers are fetching: a file each, in a shared folder.
    open(os.path.join(folder, str(os.getpid())), "w").close()
    deadline = time.time() + 60
    while len(os.listdir(folder)) < count:
        assert time.time() < deadline, "the other containers never started fetching"
        time.sleep(0.01)
def progress(event):
    global fetched
    if options.get("meet") and not fetched:
        meet(*options["meet"])
    fetched += event.nbytes
    time.sleep(options.get("chunk_pause", 0.01))
    if options.get("die_once_met") and fetched:
        meet(*options["die_once_met"])  # the others are at their ensure() call: they wait on this lease
        os.kill(os.getpid(), signal.SIGKILL)  # a preempted container: no final commit

class Watch(logging.Handler):
    def emit(self, record):
        if "stopped renewing" in record.getMessage():
            took_over.append(record.getMessage())
logging.getLogger("weightcache").addHandler(Watch())
logging.getLogger("weightcache").setLevel(logging.INFO)

lease = LeaseSettings(**options["lease"]) if options.get("lease") else None
container = FakeModalVolume(root).container()
leases = FakeModalDict(Path(root).parent / "leases.dict")
cache = WeightCache(ModalVolumeStore(container, container.mount_path, lease=lease, lease_dict=leases))
if options.get("start_together"):  # the herd starts at once, each process imported and ready
    meet(*options["start_together"])
if options.get("arrive"):  # tell a waiting container this one is about to ensure()
    open(os.path.join(options["arrive"], str(os.getpid())), "w").close()
entry = cache.ensure(RandomSource() if source == "random" else source, progress=progress)
report = {
    "key": entry.key,
    "hit": entry.hit,
    "fetched": fetched,
    "deep_ok": cache.verify(entry, deep=True).ok,
    "blake3": [record.blake3 for record in entry.manifest.files],
    "took_over": bool(took_over),
}
container.exit()
print(json.dumps(report))
"""

FAST_LEASE = {"lease_seconds": 5.0, "heartbeat_seconds": 0.3, "poll_seconds": 0.1}


def start_container(root: Path, source: str, **options: object) -> subprocess.Popen[str]:
    options.setdefault("lease", FAST_LEASE)
    return subprocess.Popen(
        [sys.executable, "-c", CONTAINER, str(root), source, json.dumps(options)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(container: subprocess.Popen[str]) -> dict:
    out, err = container.communicate(timeout=120)
    assert container.returncode == 0, err
    return json.loads(out)


def fresh_container_hit(volume: FakeModalVolume, source: str | Path) -> None:
    with volume.container() as container:
        cache = WeightCache(ModalVolumeStore(container, container.mount_path))
        entry = cache.ensure(source)
        assert entry.hit and cache.verify(entry, deep=True).ok
        assert [item.key for item in cache.list()] == [entry.key]


def test_a_herd_of_eight_cold_containers_fetches_once(tmp_path: Path, make_image_dir) -> None:
    source = make_image_dir({f"shard-{i}.bin": os.urandom(1_000_000) for i in range(4)})
    model_bytes = 4_000_000
    volume = FakeModalVolume(tmp_path / "volume")
    ready = tmp_path / "ready"
    ready.mkdir()
    herd = [start_container(volume.root, str(source), start_together=[str(ready), 8]) for _ in range(8)]
    results = [finish(container) for container in herd]

    assert len({result["key"] for result in results}) == 1
    assert all(result["deep_ok"] for result in results)
    assert sum(result["fetched"] for result in results) <= 1.1 * model_bytes
    assert sorted(result["hit"] for result in results) == [False] + [True] * 7
    fresh_container_hit(volume, source)


def test_a_container_crashing_mid_populate_is_taken_over(tmp_path: Path, make_image_dir) -> None:
    source = make_image_dir({f"shard-{i}.bin": os.urandom(1_000_000) for i in range(4)})
    volume = FakeModalVolume(tmp_path / "volume")
    lease = {"lease_seconds": 2.0, "heartbeat_seconds": 0.2, "poll_seconds": 0.1}
    arrived = tmp_path / "arrived"
    arrived.mkdir()
    # The holder dies mid-fetch once both survivors are at their ensure() call (a file each in arrived).
    doomed = start_container(volume.root, str(source), lease=lease, die_once_met=[str(arrived), 3])
    wait_for_lease(tmp_path, doomed)
    survivors = [
        start_container(volume.root, str(source), lease=lease, arrive=str(arrived)) for _ in range(2)
    ]

    doomed.communicate(timeout=60)
    assert doomed.returncode == -9  # SIGKILL: it never committed its entry
    results = [finish(container) for container in survivors]
    assert len({result["key"] for result in results}) == 1
    assert all(result["deep_ok"] for result in results)
    assert sorted(result["hit"] for result in results) == [False, True]
    assert any(result["took_over"] for result in results)  # they waited on the dead holder's lease
    assert volume.listdir(".weightcache/staging") == []  # its committed partial download was reclaimed
    # Generation 0 is the dead holder's, never released; exactly one survivor created generation 1.
    assert [record["released"] for record in lease_records(tmp_path)] == [False, True]
    fresh_container_hit(volume, source)


def test_racing_without_a_lease_still_ends_with_one_valid_entry(tmp_path: Path) -> None:
    volume = FakeModalVolume(tmp_path / "volume")
    meeting = tmp_path / "fetching"
    meeting.mkdir()
    # Each racer waits, once it is fetching, for the other to be fetching too: both must populate.
    racers = [start_container(volume.root, "random", lease=None, meet=[str(meeting), 2]) for _ in range(2)]
    results = [finish(container) for container in racers]

    assert [result["hit"] for result in results] == [False, False]  # both populated...
    assert results[0]["blake3"] != results[1]["blake3"]  # ...with different bytes
    with volume.container() as container:
        cache = WeightCache(ModalVolumeStore(container, container.mount_path))
        [entry] = cache.list()
        assert cache.verify(entry, deep=True).ok  # one committer's entry, whole: no mix of the two
        assert [record.blake3 for record in entry.manifest.files] in [result["blake3"] for result in results]


def lease_records(tmp_path: Path) -> list[dict]:
    """The lease Dict's generation records, oldest first."""
    leases = FakeModalDict(tmp_path / "leases.dict")
    items = dict(leases.items())
    generations = [key for key in items if not key.endswith("/head")]
    generations.sort(key=lambda key: int(key.rsplit("/", 1)[1]))
    return [items[key] for key in generations]


def wait_for_lease(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        assert holder.poll() is None, holder.communicate()
        if lease_records(tmp_path):
            return
        time.sleep(0.05)
    raise AssertionError("the first container never took the lease")
