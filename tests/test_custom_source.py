"""A third-party source plugs in through the registry and gets the same guarantees."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import pytest

from weightcache import (
    ChecksumMismatchError,
    ImageDirSource,
    Plan,
    SchemeTakenError,
    Source,
    WeightCache,
    parse_source,
    register_source,
)
from weightcache._core import registry
from weightcache._core.staging import Staging


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


@pytest.fixture(autouse=True)
def _own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test registers into a copy of the registry, so no scheme outlives it."""
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))


def test_registered_scheme_builds_the_source(cache: WeightCache) -> None:
    source = MemorySource("m", {"a.bin": b"a" * 100}, "v1")
    register_source("mem", lambda uri: source)
    assert cache.ensure("mem://m").manifest.files[0].sha256 == hashlib.sha256(b"a" * 100).hexdigest()


def test_a_scheme_is_replaced_only_when_asked(cache: WeightCache) -> None:
    first = MemorySource("m", {"a.bin": b"a" * 100}, "v1")
    second = MemorySource("m", {"b.bin": b"b" * 100}, "v1")
    register_source("mem", lambda uri: first)
    for scheme in ("mem", "HTTPS", "dir"):
        with pytest.raises(SchemeTakenError, match="clobber=True") as caught:
            register_source(scheme, lambda uri: second)
        assert isinstance(caught.value, ValueError) and "\n" not in str(caught.value)
    assert parse_source("mem://m") is first and parse_source("https://example.com/a.bin").scheme == "https"
    register_source("mem", lambda uri: second, clobber=True)
    assert [record.path for record in cache.ensure("mem://m").manifest.files] == ["b.bin"]


def test_a_source_class_registers_by_its_from_uri(cache: WeightCache, make_image_dir) -> None:
    register_source("local", ImageDirSource)
    folder = make_image_dir({"w.bin": b"w"})
    assert cache.ensure(f"local://{folder}").manifest.source == f"dir://{folder}"


def test_the_plan_is_the_only_thing_between_resolve_and_fetch(cache: WeightCache) -> None:
    source = MemorySource("m", {"a.bin": b"a" * 100}, "v1")
    plan = source.resolve()
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.version = "v2"  # type: ignore[misc]
    with pytest.raises(TypeError):
        plan.info["extra"] = "x"  # type: ignore[index]
    assert source.plan("v1") == Plan("v1")


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
