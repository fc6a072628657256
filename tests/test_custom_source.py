"""A third-party source plugs in through the registry and gets the same guarantees."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from weightcache import ChecksumMismatchError, Source, WeightCache, register_source
from weightcache.providers.base import Plan
from weightcache.staging import Staging


class MemorySource(Source):
    """Serves files from a dict; each file carries the SHA-256 its 'server' vouches for."""

    scheme = "mem"
    offline_first = True

    def __init__(
        self, name: str, files: dict[str, bytes], version: str, *, lie_about: str | None = None
    ) -> None:
        self.name, self.files, self.version, self.lie_about = name, files, version, lie_about
        self.downloaded: list[str] = []
        self.resolves = 0

    @property
    def uri(self) -> str:
        return f"mem://{self.name}"

    @property
    def slug(self) -> str:
        return self.name

    def resolve(self) -> Plan:
        self.resolves += 1
        return Plan(self.version)

    def fetch(self, plan: Plan, staging: Staging) -> None:
        staging.plan({path: len(data) for path, data in self.files.items()})
        for path, data in self.files.items():
            sha = hashlib.sha256(data).hexdigest()
            if path == self.lie_about:
                sha = hashlib.sha256(b"something else").hexdigest()
            if staging.try_reuse(path, sha256=sha, size=len(data)) is None:
                self.downloaded.append(path)
                staging.write_stream(path, [data[:10], data[10:]], size=len(data), sha256=sha)


def test_registered_scheme_builds_the_source(cache: WeightCache) -> None:
    source = MemorySource("m", {"a.bin": b"a" * 100}, "v1")
    register_source("mem", lambda uri: source)
    assert cache.ensure("mem://m").manifest.files[0].sha256 == hashlib.sha256(b"a" * 100).hexdigest()


def test_offline_first_warm_call_does_not_ask_the_source(cache: WeightCache) -> None:
    source = MemorySource("m", {"a.bin": b"a" * 100}, "v1")
    cache.ensure(source)
    source.version = "v2"  # the remote moved on
    assert cache.ensure(source).hit and source.resolves == 1
    refreshed = cache.ensure(source, refresh=True)
    assert not refreshed.hit and refreshed.version == "v2" and source.resolves == 2
    assert cache.ensure(source).version == "v2"  # the store now remembers v2


def test_new_version_reuses_unchanged_files(cache: WeightCache) -> None:
    shared = os.urandom(50_000)
    v1 = MemorySource("m", {"big.safetensors": shared, "config.json": b"{1}"}, "v1")
    first = cache.ensure(v1)
    v2 = MemorySource("m", {"big.safetensors": shared, "config.json": b"{2}"}, "v2")
    second = cache.ensure(v2, refresh=True)
    assert v2.downloaded == ["config.json"]
    big = Path(second.path) / "big.safetensors"
    assert big.read_bytes() == shared
    assert big.stat().st_ino == (first.path / "big.safetensors").stat().st_ino  # hardlinked
    assert cache.verify(second, deep=True).ok


def test_sha256_mismatch_publishes_nothing(cache: WeightCache) -> None:
    source = MemorySource("m", {"a.bin": b"a" * 100, "b.bin": b"b" * 100}, "v1", lie_about="b.bin")
    with pytest.raises(ChecksumMismatchError, match="sha256") as caught:
        cache.ensure(source)
    assert "\n" not in str(caught.value)
    assert cache.list() == []
    assert list(cache.store.layout.staging_dir.iterdir()) == []


def test_deep_verify_checks_the_sources_sha256(cache: WeightCache) -> None:
    entry = cache.ensure(MemorySource("m", {"a.bin": b"a" * 100}, "v1"))
    (entry.path / "a.bin").chmod(0o644)  # published read-only
    (entry.path / "a.bin").write_bytes(b"A" * 100)
    kinds = {problem.kind for problem in cache.verify(entry, deep=True).problems}
    assert kinds == {"blake3", "sha256"}
