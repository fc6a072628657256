"""Shared fixtures: temporary stores, image directories, and the CLI run in-process or as a real process."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from typer.testing import CliRunner

from weightcache import LocalStore, WeightCache
from weightcache._transport.cpus import usable_cpus
from weightcache.cli import app
from weightcache.testing import FileServer

# Property tests draw the same examples on every run (derived from each test), with no time limit
# per example: a loaded machine must not turn a slow example into a failure. `pytest
# --hypothesis-seed=N` explores other examples. No example database: nothing is written to the checkout.
settings.register_profile("weightcache", derandomize=True, deadline=None, database=None)
settings.load_profile("weightcache")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (the default, see pyproject.toml): a worker per usable CPU (affinity, quota), at most 4.

    Many tests wait on child processes and local servers, so two workers keep a 2-core machine
    busy; more than four would each import torch and collect every test for little gain.
    """
    return min(4, usable_cpus())


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """A store directory that does not exist yet."""
    return tmp_path / "store"


@pytest.fixture
def cache(store_dir: Path) -> WeightCache:
    """A cache on a fresh local store."""
    return WeightCache(LocalStore(store_dir))


MakeDir = Callable[..., Path]


@pytest.fixture
def make_image_dir(tmp_path: Path) -> MakeDir:
    """Build an image directory from {relative path: bytes}."""

    def make(files: dict[str, bytes] | None = None, name: str = "initial_weights") -> Path:
        root = tmp_path / "image" / name
        content = (
            files
            if files is not None
            else {
                "groundingdino_swint_ogc.pth": os.urandom(300_000),
                "sam2_hiera_large.pt": os.urandom(500_000),
                "configs/sam2.yaml": b"model: sam2\n",
            }
        )
        for relpath, data in content.items():
            path = root / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return root

    return make


@pytest.fixture
def cli() -> Callable[..., object]:
    """Run the CLI in-process; returns click's Result (exit_code, stdout, stderr)."""
    runner = CliRunner()

    def run(*args: str) -> object:
        return runner.invoke(app, [str(arg) for arg in args], catch_exceptions=False)

    return run


class Mount:
    """A real tmpfs mounted for one test: a tiny filesystem to fill, or one to flip read-only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def make_read_only(self) -> None:
        """Remount read-only: every write now fails with EROFS, as on a read-only volume."""
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Mount]]:
    """Mount tmpfs filesystems of a given size, or with given options such as ``nr_inodes=12``.

    Needs root, as CI and dev machines run; else the test is skipped.
    """
    mounts: list[Path] = []

    def mount(size: str = "64m") -> Mount:
        path = tmp_path / f"tmpfs{len(mounts)}"
        path.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", size if "=" in size else f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.decode().strip()}")
        mounts.append(path)
        return Mount(path)

    yield mount
    for path in mounts:
        with contextlib.suppress(OSError):
            subprocess.run(["umount", "-l", str(path)], check=False)


SEED_ENV = "WEIGHTCACHE_TEST_SEED"


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """A seed for the test's random choices: derived from the test's id, so every run makes the same
    ones; ``WEIGHTCACHE_TEST_SEED=N`` overrides it to replay or explore. Printed when the test fails."""
    override = os.environ.get(SEED_ENV)
    digest = hashlib.sha256(request.node.nodeid.encode()).digest()
    value = int(override) if override else int.from_bytes(digest[:4], "big")
    request.node.user_properties.append(("seed", value))
    return value


@pytest.fixture
def rng(seed: int) -> random.Random:
    """A random generator on the test's :func:`seed` (same choices every run, replayable)."""
    return random.Random(seed)


@pytest.fixture
def server() -> Iterator[FileServer]:
    """A local HTTP file server on 127.0.0.1 (ranges, faults, request log)."""
    with FileServer() as running:
        yield running


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """On a failure, say which seed the test ran with and how to replay it."""
    report = yield
    seeds = [value for name, value in item.user_properties if name == "seed"]
    if report.failed and seeds:
        report.sections.append(("seed", f"{SEED_ENV}={seeds[0]} pytest '{item.nodeid}' replays this run"))
    return report
