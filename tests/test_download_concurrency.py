"""An entry's files download at once, in byte ranges, under one connection budget (settable three ways)."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from weightcache import InvalidSourceError, SourceChangedError, WeightCache
from weightcache._core.constants import ENV_CONNECTIONS, HTTP_MIN_PART_BYTES
from weightcache._transport.http_parts import part_bytes_for, split
from weightcache.providers.sources.url import URLSource
from weightcache.testing import FileServer

MIB = 1024 * 1024


def serve(server: FileServer, rng: random.Random, sizes: dict[str, int]) -> tuple[dict[str, str], dict]:
    """Serve files of ``sizes``; return ``{name: url}`` and ``{name: sha256}``."""
    urls, hashes = {}, {}
    for name, size in sizes.items():
        data = rng.randbytes(size)
        urls[name] = server.add(f"/{name}", data)
        hashes[name] = hashlib.sha256(data).hexdigest()
    return urls, hashes


def gets(server: FileServer, name: str) -> list[str]:
    """The Range headers of the GETs for ``name`` after its one-byte probe."""
    asked = [r.headers.get("range", "") for r in server.requests if r.path == f"/{name}"]
    assert asked[0] == "bytes=0-0"
    return asked[1:]


def test_the_files_of_an_entry_download_at_once(server: FileServer, cache: WeightCache, rng) -> None:
    urls, hashes = serve(server, rng, {f"shard-{index}.bin": MIB for index in range(8)})
    server.gather(8)  # a client fetching one file after another never has 8 bodies in flight
    entry = cache.ensure(URLSource(urls, sha256=hashes))
    assert server.peak_in_flight >= 8
    assert sorted(record.path for record in entry.manifest.files) == sorted(urls)


def test_a_large_file_is_split_and_small_files_are_one_request_each(
    server: FileServer, cache: WeightCache, rng
) -> None:
    sizes = {"big.bin": 2 * HTTP_MIN_PART_BYTES + 5, **{f"tok-{index}.json": 3000 for index in range(10)}}
    urls, hashes = serve(server, rng, sizes)
    entry = cache.ensure(URLSource(urls, sha256=hashes))
    assert len(gets(server, "big.bin")) == 3  # parts of HTTP_MIN_PART_BYTES
    assert all(gets(server, f"tok-{index}.json") == ["bytes=0-2999"] for index in range(10))
    assert (entry.path / "big.bin").stat().st_size == sizes["big.bin"]


def test_the_connection_budget_bounds_connections_across_files(
    server: FileServer, cache: WeightCache, rng, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls, hashes = serve(server, rng, {f"shard-{index}.bin": 3 * MIB for index in range(6)})
    monkeypatch.setenv(ENV_CONNECTIONS, "3")
    cache.ensure(URLSource(urls, sha256=hashes))
    assert 1 <= server.peak_in_flight <= 3


def test_the_api_parameter_overrides_the_environment(
    server: FileServer, cache: WeightCache, rng, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls, hashes = serve(server, rng, {f"shard-{index}.bin": MIB for index in range(4)})
    monkeypatch.setenv(ENV_CONNECTIONS, "64")
    cache.ensure(URLSource(urls, sha256=hashes, connections=1))
    assert server.peak_in_flight == 1


def test_the_cli_flag_sets_the_budget(
    server: FileServer, store_dir: Path, cli, rng, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_CONNECTIONS, "64")  # the flag overrides it (and the test restores it)
    urls, hashes = serve(server, rng, {"a.bin": MIB, "b.bin": MIB})
    uri = " | ".join(f"{url}#sha256={hashes[name]}" for name, url in urls.items())
    result = cli("ensure", uri, "--store", store_dir, "--connections", "1")
    assert result.exit_code == 0, result.stdout
    assert server.peak_in_flight == 1


@pytest.mark.parametrize("value", ["0", "-2", "many", "٣"])
def test_a_bad_budget_in_the_environment_is_one_clear_error(
    server: FileServer, cache: WeightCache, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    url = server.add("/a.bin", b"abc")
    monkeypatch.setenv(ENV_CONNECTIONS, value)
    with pytest.raises(InvalidSourceError, match=ENV_CONNECTIONS):
        cache.ensure(URLSource(url))


def test_part_sizes_follow_the_download() -> None:
    # Small downloads get the smallest parts, large ones larger parts (fewer requests), within bounds.
    assert part_bytes_for(10 * MIB, 32) == HTTP_MIN_PART_BYTES
    assert HTTP_MIN_PART_BYTES < part_bytes_for(1024 * MIB, 32) <= 32 * MIB
    assert split([(0, 10), (20, 25)], 4) == [(0, 4), (4, 8), (8, 10), (20, 24), (24, 25)]


def test_a_range_of_a_file_changed_since_its_probe_is_refused(server: FileServer, tmp_path: Path) -> None:
    # The range requests of an unpinned file carry If-Range: a server whose file changed sends it
    # whole (200), and the download stops instead of mixing two versions.
    from weightcache._core.staging import Staging
    from weightcache._transport.download import HTTPDownloader, Probe
    from weightcache._transport.http_parts import FileJob

    url = server.add("/a.bin", b"x" * 100, etag=False)
    stale = Probe(size=100, ranges=True, etag=None, last_modified="Mon, 01 Jan 2024 00:00:00 GMT")
    staging = Staging(tmp_path / "staging", store_name="test")
    with HTTPDownloader() as downloader, pytest.raises(SourceChangedError, match="If-Range"):
        downloader.download_all([FileJob(url, "a.bin", "a.bin", stale, None)], staging)
    assert [r.headers.get("if-range") for r in server.requests] == [stale.last_modified]
