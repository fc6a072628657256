"""The Volume and Dict semantics weightcache relies on, written once, run against any backend.

Each assumption is checked by steps that run *inside containers* (two sides, ``a`` and
``b``, so that on Modal they land in different containers) and by the driver, which talks
to the Dict directly. :class:`FakeBackend` runs it on :class:`FakeModalVolume` and
:class:`FakeModalDict` (the test suite does); ``weightcache selftest --modal`` runs it as an
ephemeral Modal app on a real Volume and Dict (:mod:`weightcache.testing.modal_selftest`)::

    outcomes, latencies = run_suite(FakeBackend(tmp_path))
"""

from __future__ import annotations

import os
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..providers.stores._modal_lease import DictLease, LeaseDict, LeaseSettings
from ..providers.stores.modal_volume import OPEN_FILES_MESSAGE, ModalVolumeStore
from .fake_dict import FakeModalDict
from .fake_modal import FakeModalVolume

#: Each assumption the suite checks, and what of weightcache relies on it.
ASSUMPTIONS = {
    "visibility after commit": "another container sees a file after the writer commits and it reloads",
    "reload refused with open files": f"reload() raises RuntimeError containing {OPEN_FILES_MESSAGE!r}",
    "commit persists with open files": "a commit whose reload is refused for open files has still persisted",
    "commit reloads": "commit() also brings in commits made since the container started",
    "last writer wins per file": "a later commit replaces a file; files it never saw stay",
    "Dict atomic create": "of concurrent put(skip_if_exists=True), exactly one returns True",
    "lease takeover": "after a holder stops renewing, each lease generation is taken by exactly one",
}


@dataclass
class Side:
    """What a step gets inside a container: the mounted Volume, its mount path, the lease Dict."""

    volume: Any
    root: Path
    leases: LeaseDict


def _write(side: Side, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = side.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def step_write_commit(side: Side, files: dict[str, str]) -> dict[str, Any]:
    """Write ``files`` and commit; report how long the commit took."""
    _write(side, files)
    started = time.perf_counter()
    side.volume.commit()
    return {"commit_seconds": time.perf_counter() - started}


def step_reload_read(side: Side, names: list[str]) -> dict[str, Any]:
    """Reload, then read ``names`` (``None`` for a missing file); report how long the reload took."""
    started = time.perf_counter()
    side.volume.reload()
    took = time.perf_counter() - started
    texts = {name: (side.root / name).read_text() if (side.root / name).is_file() else None for name in names}
    return {"reload_seconds": took, "texts": texts}


def step_open_files_refusal(side: Side, name: str) -> dict[str, Any]:
    """Commit a file, hold it open and reload (expect a refusal), then reload again once closed."""
    _write(side, {name: "open"})
    side.volume.commit()
    message = None
    with open(side.root / name):
        try:
            side.volume.reload()
        except RuntimeError as exc:
            message = str(exc)
    side.volume.reload()
    return {"message": message}


def step_commit_with_open_file(side: Side, name: str, text: str) -> dict[str, Any]:
    """Write a file and commit while it is open; report what the commit raised, if anything."""
    _write(side, {name: text})
    with open(side.root / name):
        try:
            side.volume.commit()
        except RuntimeError as exc:
            return {"raised": str(exc)}
    return {"raised": None}


def step_late_writer(side: Side, files: dict[str, str], started_key: str, go_key: str) -> dict[str, Any]:
    """Say it started, wait for ``go_key`` in the Dict, write ``files``, commit (no reload), list files."""
    side.leases.put(started_key, True)
    _wait_for(side.leases, go_key)
    _write(side, files)
    side.volume.commit()
    return {
        "files": sorted(str(path.relative_to(side.root)) for path in side.root.rglob("*") if path.is_file())
    }


STEPS: dict[str, Callable[..., dict[str, Any]]] = {
    "write_commit": step_write_commit,
    "reload_read": step_reload_read,
    "open_files_refusal": step_open_files_refusal,
    "commit_with_open_file": step_commit_with_open_file,
    "late_writer": step_late_writer,
}


class Backend(Protocol):
    """Where the suite runs: containers on two sides, and the driver's handle on the Dict."""

    leases: LeaseDict

    def call(self, side: str, step: str, **kwargs: Any) -> dict[str, Any]:
        """Run ``STEPS[step]`` in a container of ``side`` and return its result."""

    def spawn(self, side: str, step: str, **kwargs: Any) -> Future[dict[str, Any]]:
        """Start ``STEPS[step]`` in a container of ``side``; the future gives its result."""


@dataclass
class Outcome:
    """One assumption checked: whether it held, and what was seen."""

    assumption: str
    passed: bool
    detail: str


@dataclass
class SuiteResult:
    """Every outcome, and the latencies measured on the way (seconds, median where repeated)."""

    outcomes: list[Outcome] = field(default_factory=list)
    latencies: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether every assumption held."""
        return all(outcome.passed for outcome in self.outcomes)


Check = Callable[[Backend, str, "SuiteResult"], list[tuple[bool, str]]]


def run_suite(backend: Backend) -> SuiteResult:
    """Check every assumption in :data:`ASSUMPTIONS` on ``backend``; a check that raises fails."""
    result = SuiteResult()
    run = f"selftest-{secrets.token_hex(4)}"
    checks: list[tuple[list[str], Check]] = [
        (["visibility after commit"], _visibility),
        (["reload refused with open files"], _open_files),
        (["commit persists with open files"], _persists),
        (["commit reloads", "last writer wins per file"], _concurrent),
        (["Dict atomic create"], _atomic_create),
        (["lease takeover"], _takeover),
    ]
    for assumptions, check in checks:
        try:
            seen = check(backend, run, result)
        except Exception as exc:  # a check that crashes is reported as failed, and the suite goes on
            seen = [(False, f"{type(exc).__name__}: {exc}")] * len(assumptions)
        result.outcomes += [
            Outcome(name, passed, detail) for name, (passed, detail) in zip(assumptions, seen, strict=True)
        ]
    return result


def _visibility(backend: Backend, run: str, result: SuiteResult) -> list[tuple[bool, str]]:
    name, token = f"{run}/visible.txt", secrets.token_hex(8)
    result.latencies["commit"] = backend.call("a", "write_commit", files={name: token})["commit_seconds"]
    seen = backend.call("b", "reload_read", names=[name])
    result.latencies["reload"] = seen["reload_seconds"]
    return [(seen["texts"][name] == token, f"the other side read {seen['texts'][name]!r}")]


def _open_files(backend: Backend, run: str, result: SuiteResult) -> list[tuple[bool, str]]:
    message = backend.call("a", "open_files_refusal", name=f"{run}/open.txt")["message"]
    return [(message is not None and OPEN_FILES_MESSAGE in message, f"reload raised {message!r}")]


def _persists(backend: Backend, run: str, result: SuiteResult) -> list[tuple[bool, str]]:
    name, token = f"{run}/persisted.txt", secrets.token_hex(8)
    raised = backend.call("a", "commit_with_open_file", name=name, text=token)["raised"]
    seen = backend.call("b", "reload_read", names=[name])["texts"][name]
    return [(seen == token, f"commit raised {raised!r}; the other side then read {seen!r}")]


def _concurrent(backend: Backend, run: str, result: SuiteResult) -> list[tuple[bool, str]]:
    """b starts; a commits two files; then b overwrites one and commits without reloading."""
    shared, only_a = f"{run}/lww/shared.txt", f"{run}/lww/only-a.txt"
    started_key, go_key = f"{run}/b-started", f"{run}/a-committed"
    late = backend.spawn("b", "late_writer", files={shared: "b"}, started_key=started_key, go_key=go_key)
    _wait_for(backend.leases, started_key, pending=late)
    backend.call("a", "write_commit", files={shared: "a", only_a: "a"})
    backend.leases.put(go_key, True)
    listed = late.result(timeout=600)["files"]
    after = backend.call("a", "reload_read", names=[shared, only_a])["texts"]
    return [
        (
            only_a in listed,
            f"after its commit, the other side saw the file committed meanwhile: {only_a in listed}",
        ),
        (
            after == {shared: "b", only_a: "a"},
            f"after both commits: shared={after[shared]!r} (written last by b), only-a={after[only_a]!r}",
        ),
    ]


def _atomic_create(backend: Backend, run: str, result: SuiteResult) -> list[tuple[bool, str]]:
    key, tries = f"{run}/atomic", 8
    started = time.perf_counter()
    with ThreadPoolExecutor(tries) as pool:
        created = list(pool.map(lambda i: backend.leases.put(key, i, skip_if_exists=True), range(tries)))
    result.latencies["Dict put (8 at once)"] = time.perf_counter() - started
    gets = []
    for _ in range(5):
        started = time.perf_counter()
        winner = backend.leases.get(key)
        gets.append(time.perf_counter() - started)
    result.latencies["Dict get"] = statistics.median(gets)
    winners = [i for i, made in enumerate(created) if made]
    return [(winners == [winner], f"{len(winners)} of {tries} creates succeeded; the key holds {winner!r}")]


class _NoVolume:
    """A Volume stand-in for the driver's lease check: the lease is the Dict's alone."""

    name = None

    def commit(self) -> None:
        """Nothing to persist."""

    def reload(self) -> None:
        """Nothing to see."""


def _takeover(backend: Backend, run: str, result: SuiteResult) -> list[tuple[bool, str]]:
    settings = LeaseSettings(lease_seconds=2.0, heartbeat_seconds=0.2, poll_seconds=0.05)
    with tempfile.TemporaryDirectory() as scratch:
        store = ModalVolumeStore(_NoVolume(), Path(scratch) / run, lease_dict=backend.leases)
        dead = DictLease(store, backend.leases, run, settings, timeout=None).__enter__()
        dead._stop.set()  # the holder dies: its heartbeat stops, it never releases
        generations: list[int | None] = []
        lock = threading.Lock()

        def contend() -> None:
            with DictLease(store, backend.leases, run, settings, timeout=120) as lease:
                with lock:
                    generations.append(lease.generation)
                time.sleep(0.3)  # hold a little, so the others see a live holder

        threads = [threading.Thread(target=contend) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    passed = dead.generation == 0 and sorted(generations) == [1, 2, 3]  # type: ignore[type-var]
    return [
        (passed, f"the dead holder had generation {dead.generation}; the three others took {generations}")
    ]


def _wait_for(
    leases: LeaseDict, key: str, *, pending: Future[Any] | None = None, timeout: float = 600
) -> None:
    deadline = time.monotonic() + timeout
    while leases.get(key) is None:
        if pending is not None and pending.done():
            pending.result()  # raises what the other side raised
            raise RuntimeError(f"the other side finished without setting {key}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {key} after {timeout:g}s")
        time.sleep(0.05)


class FakeBackend:
    """The suite on a FakeModalVolume and FakeModalDict under ``root``; a fresh container per step."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.volume = FakeModalVolume(Path(root) / "volume", name="selftest")
        self.leases = FakeModalDict(Path(root) / "leases.dict")
        self._pool = ThreadPoolExecutor(4)

    def call(self, side: str, step: str, **kwargs: Any) -> dict[str, Any]:
        """Run the step in a new simulated container of ``side``, which exits (commits) after."""
        with self.volume.container(f"{side}-{secrets.token_hex(3)}") as container:
            return STEPS[step](Side(container, container.mount_path, self.leases), **kwargs)

    def spawn(self, side: str, step: str, **kwargs: Any) -> Future[dict[str, Any]]:
        """Run the step in a thread, in its own simulated container."""
        return self._pool.submit(self.call, side, step, **kwargs)
