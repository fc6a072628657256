"""ModalVolumeStore in one process: the warm path, reloads refused, commits retried, the lease's edges."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from types import SimpleNamespace

import modal
import pytest

from weightcache import (
    CommitError,
    LeaseSettings,
    LockTimeoutError,
    ModalVolumeStore,
    Source,
    SourceError,
    WeightCache,
)
from weightcache._core.staging import Staging
from weightcache.providers.base import Plan
from weightcache.providers.stores import _modal_lease
from weightcache.providers.stores._modal_lease import DictLease
from weightcache.testing import FakeModalDict, FakeModalVolume, FakeVolumeContainer

FAST = LeaseSettings(lease_seconds=2.0, heartbeat_seconds=0.2, poll_seconds=0.05)


def modal_cache(container: FakeVolumeContainer, **options: object) -> WeightCache:
    options.setdefault("lease", FAST)
    options.setdefault("lease_dict", FakeModalDict(container.mount_path.parent.parent / "leases.dict"))
    options.setdefault("commit_backoff_seconds", 0.0)
    return WeightCache(ModalVolumeStore(container, container.mount_path, **options))  # type: ignore[arg-type]


@pytest.fixture
def volume(tmp_path: Path) -> FakeModalVolume:
    return FakeModalVolume(tmp_path / "volume", name="weights")


def lease_records(volume: FakeModalVolume) -> list[dict]:
    leases = FakeModalDict(volume.root / "leases.dict")
    return [value for value in dict(leases.items()).values() if isinstance(value, dict)]


def test_a_hit_neither_reloads_nor_commits(volume: FakeModalVolume, make_image_dir, caplog) -> None:
    source = make_image_dir()
    with volume.container() as first:
        modal_cache(first).ensure(source)
    container = volume.container()
    entry = modal_cache(container).ensure(source)
    assert entry.hit

    # Any reload would now be refused and any commit would fail: a hit must touch neither.
    container.fail_next_commits(1)
    with open(entry.files[0], "rb"), caplog.at_level(logging.WARNING):
        again = modal_cache(container).ensure(source)
    assert again.hit and caplog.records == []
    with pytest.raises(RuntimeError):
        container.commit()  # the injected failure was still pending


def test_cold_start_carries_on_when_reload_is_refused(
    volume: FakeModalVolume, make_image_dir, caplog
) -> None:
    loaded = make_image_dir({"grounding.pth": os.urandom(1000)}, name="grounding")
    wanted = make_image_dir({"sam2.pt": os.urandom(1000)}, name="sam2")
    container = volume.container()
    cache = modal_cache(container)
    open_model = cache.ensure(loaded)
    with open(open_model.files[0], "rb"), caplog.at_level(logging.WARNING):
        entry = cache.ensure(wanted)  # the first model's file is open: Modal refuses the reload
    assert not entry.hit and cache.verify(entry, deep=True).ok
    warnings = [record.getMessage() for record in caplog.records]
    assert any(
        "skipped reloading Modal Volume 'weights'" in message and "path entries/" in message
        for message in warnings
    ), warnings
    assert modal_cache(volume.container()).ensure(wanted).hit  # committed for everyone


def test_commit_is_retried_then_fails_with_one_clear_error(volume: FakeModalVolume, make_image_dir) -> None:
    source = make_image_dir()
    container = volume.container()
    container.fail_next_commits(2)
    entry = modal_cache(container, commit_attempts=3).ensure(source)
    assert modal_cache(volume.container()).ensure(source).hit

    other = make_image_dir({"x.bin": b"x"}, name="other")
    container.fail_next_commits(100)
    with pytest.raises(CommitError) as failed:
        modal_cache(container, commit_attempts=3).ensure(other)
    message = str(failed.value)
    assert "after 3 attempts" in message and "\n" not in message
    assert entry.key not in message


def test_many_files_warn_against_v1_guidance(volume: FakeModalVolume, make_image_dir, caplog) -> None:
    source = make_image_dir({f"shard-{i}.bin": b"s" for i in range(5)})
    with caplog.at_level(logging.WARNING):
        modal_cache(volume.container(), max_files=4).ensure(source)
    assert any("past Modal's guidance of 4 for v1" in record.getMessage() for record in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        modal_cache(volume.container(), max_files=None).ensure(make_image_dir({"a": b"a"}, name="a"))
    assert caplog.records == []


def test_no_lease_is_left_behind(volume: FakeModalVolume, make_image_dir) -> None:
    with volume.container() as container:
        modal_cache(container).ensure(make_image_dir())
    records = lease_records(volume)
    assert len(records) == 1 and records[0]["released"]
    assert not (volume.root / "committed" / ".weightcache" / "leases").exists()  # nothing on the Volume


class FailingSource(Source):
    """Gives a few bytes, then fails, like a download cut off for good."""

    scheme = "failing"

    @property
    def uri(self) -> str:
        return "failing://model"

    @property
    def slug(self) -> str:
        return "model"

    def resolve(self) -> Plan:
        return Plan("v1")

    def fetch(self, plan: Plan, staging: Staging) -> None:
        staging.write_stream("part.bin", [b"partial"])
        raise SourceError("the source went away; retry later")


def test_a_failed_populate_releases_its_lease_at_once(volume: FakeModalVolume) -> None:
    container = volume.container()
    with pytest.raises(SourceError):
        slow_to_expire = LeaseSettings(lease_seconds=600, heartbeat_seconds=60)
        modal_cache(container, lease=slow_to_expire).ensure(FailingSource())
    assert [record["released"] for record in lease_records(volume)] == [True]  # others need not wait 600s


def test_waiting_for_a_live_holder_times_out(volume: FakeModalVolume, make_image_dir) -> None:
    source = make_image_dir()
    leases = FakeModalDict(volume.root / "leases.dict")
    holder = volume.container("holder")
    holder_store = ModalVolumeStore(holder, holder.mount_path, lease=FAST, lease_dict=leases)
    key = WeightCache(holder_store).status(source).key
    waiter = volume.container("waiter")
    waiter_store = ModalVolumeStore(waiter, waiter.mount_path, lease=FAST, lease_dict=leases)
    with DictLease(holder_store, leases, key, FAST, timeout=None):  # created, renewed by its heartbeat
        with pytest.raises(LockTimeoutError, match="another container populating"):
            WeightCache(waiter_store, lock_timeout=0.5).ensure(source)
        probe = waiter_store.populate_lock(key, timeout=0)  # gc asks "is it busy?" and never waits
        with pytest.raises(LockTimeoutError, match="being populated by"), probe:
            pass


@pytest.mark.parametrize("fetch_seconds", [1.0, 60.0])
def test_a_waiter_learns_of_a_release_within_a_share_of_its_wait_or_poll_seconds(
    volume: FakeModalVolume, monkeypatch: pytest.MonkeyPatch, fetch_seconds: float
) -> None:
    """Short fetches are noticed promptly, long ones within poll_seconds, reading once per poll_seconds."""
    settings = LeaseSettings(lease_seconds=600, heartbeat_seconds=60, poll_seconds=0.25)
    leases = FakeModalDict(volume.root / "leases.dict")
    holder, waiter = volume.container("holder"), volume.container("waiter")
    holder_store = ModalVolumeStore(holder, holder.mount_path, lease=settings, lease_dict=leases)
    waiter_store = ModalVolumeStore(waiter, waiter.mount_path, lease=settings, lease_dict=leases)
    holding = DictLease(holder_store, leases, "model-key", settings, timeout=None).__enter__()
    # The waiter's clock is simulated: a pause advances it at once. The holder releases at
    # fetch_seconds, during a pause (the waiter then takes the next generation: no entry appeared).
    now, pauses, started_at = [0.0], [], []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        started_at.append(now[0])
        if now[0] < fetch_seconds <= now[0] + seconds:
            holding.__exit__(None, None, None)
        now[0] += seconds

    clock = SimpleNamespace(monotonic=lambda: now[0], sleep=pause, time=time.time)
    monkeypatch.setattr(_modal_lease, "time", clock)
    with DictLease(waiter_store, leases, "model-key", settings, timeout=None) as waiting:
        assert waiting.generation == 1
    assert pauses[0] == _modal_lease.FIRST_POLL_SECONDS and max(pauses) <= settings.poll_seconds
    assert pauses == sorted(pauses)  # they only grow
    noticed_after = now[0] - fetch_seconds  # the waiter read the released record at now[0]
    share = max(_modal_lease.FIRST_POLL_SECONDS, _modal_lease.POLL_SHARE_OF_WAIT * fetch_seconds)
    assert 0 <= noticed_after <= min(share, settings.poll_seconds) + 1e-9
    # Once the wait is long, the waiter reads the Dict once per poll_seconds, no more.
    long_after = settings.poll_seconds / _modal_lease.POLL_SHARE_OF_WAIT
    late = [pause for pause, at in zip(pauses, started_at, strict=True) if at >= long_after]
    assert all(pause == settings.poll_seconds for pause in late) and (late or fetch_seconds < long_after)


def test_lease_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="shorter than lease_seconds"):
        LeaseSettings(lease_seconds=10, heartbeat_seconds=10)
    with pytest.raises(ValueError, match="positive"):
        LeaseSettings(poll_seconds=0)


def test_takes_a_real_modal_volume_without_network(tmp_path: Path) -> None:
    volume = modal.Volume.from_name("jaguar-model-weights", create_if_missing=True)  # lazy: no request
    store = ModalVolumeStore(volume, tmp_path / "cache")
    assert store.describe() == f"Modal Volume 'jaguar-model-weights' at {tmp_path / 'cache'}"
    with pytest.raises(TypeError, match=r"modal\.Volume"):
        ModalVolumeStore(object(), tmp_path / "cache")  # type: ignore[arg-type]


class CountingVolume:
    """A container's Volume that counts commits and can raise what a programming error raises."""

    def __init__(self, container: FakeVolumeContainer, commit_error: BaseException | None = None) -> None:
        self.container, self.commit_error, self.commits = container, commit_error, 0
        self.name = container.name

    def commit(self) -> None:
        self.commits += 1
        if self.commit_error is not None:
            raise self.commit_error
        self.container.commit()

    def reload(self) -> None:
        self.container.reload()


def test_a_commit_that_persisted_is_not_retried(volume: FakeModalVolume, make_image_dir, caplog) -> None:
    loaded = make_image_dir({"grounding.pth": os.urandom(100)}, name="grounding")
    wanted = make_image_dir({"sam2.pt": os.urandom(100)}, name="sam2")
    container = volume.container()
    counting = CountingVolume(container)
    cache = WeightCache(
        ModalVolumeStore(counting, container.mount_path, lease=None, commit_backoff_seconds=60)
    )
    open_model = cache.ensure(loaded)
    counting.commits = 0
    with open(open_model.files[0], "rb"), caplog.at_level(logging.WARNING):
        entry = cache.ensure(wanted)  # the commit persists; the reload that follows is refused
    assert counting.commits == 1 and not entry.hit
    assert any("the reload that follows a commit was refused" in r.getMessage() for r in caplog.records)
    assert modal_cache(volume.container()).ensure(wanted).hit  # other containers see it


@pytest.mark.parametrize("error", [TypeError("a bug"), NotImplementedError("a bug"), KeyError("a bug")])
def test_a_programming_error_in_commit_is_raised_at_once(
    volume: FakeModalVolume, make_image_dir, error: BaseException
) -> None:
    container = volume.container()
    counting = CountingVolume(container, commit_error=error)
    store = ModalVolumeStore(counting, container.mount_path, lease=None, commit_backoff_seconds=60)
    with pytest.raises(type(error)):
        WeightCache(store).ensure(make_image_dir())
    assert counting.commits == 1


class HalfWrittenSource(FailingSource):
    """Writes half a file, holds it open until the lease has heartbeaten three times, then finishes."""

    def __init__(self, leases: FakeModalDict) -> None:
        self.leases = leases

    def fetch(self, plan: Plan, staging: Staging) -> None:
        def chunks():
            yield b"first half"
            deadline = time.monotonic() + 120  # waits for the condition, however slow the machine
            while time.monotonic() < deadline:
                records = [value for key, value in self.leases.items() if key.endswith("/0")]
                if records and records[0]["beat"] >= 3:
                    break
                time.sleep(0.01)
            yield b"second half"

        staging.write_stream("part.bin", chunks())


def test_heartbeats_never_commit_the_volume(volume: FakeModalVolume) -> None:
    container = volume.container()
    counting = CountingVolume(container)
    leases = FakeModalDict(volume.root / "leases.dict")
    fast_heartbeat = LeaseSettings(lease_seconds=30, heartbeat_seconds=0.01, poll_seconds=0.05)
    store = ModalVolumeStore(counting, container.mount_path, lease=fast_heartbeat, lease_dict=leases)
    entry = WeightCache(store).ensure(HalfWrittenSource(leases))
    assert (entry.path / "part.bin").read_bytes() == b"first halfsecond half"
    assert counting.commits == 1  # the publish: none while the staging file was open and half written
