"""URL sources against a real local HTTP server: pinned and unpinned, ranges, resume, retries, errors."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from weightcache import (
    ChecksumMismatchError,
    InvalidSourceError,
    SourceAuthError,
    SourceNotFoundError,
    SourceUnreachableError,
    UnsafePathError,
    WeightCache,
)
from weightcache.progress import ProgressEvent
from weightcache.providers.sources.url import URLSource
from weightcache.testing import FileServer

KIB = 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ranges_asked(server: FileServer, path: str) -> list[str]:
    return [request.headers.get("range", "") for request in server.requests if request.path == path]


def assert_nothing_published(cache: WeightCache) -> None:
    assert cache.list() == []
    staging = cache.store.layout.staging_dir
    assert not staging.exists() or list(staging.iterdir()) == []


def test_pinned_url_is_verified_and_a_warm_call_asks_nothing(cache: WeightCache, server: FileServer) -> None:
    data = os.urandom(300 * KIB)
    url = server.add("/releases/sam2_hiera_large.pt", data)
    entry = cache.ensure(f"{url}#sha256={sha(data)}")
    assert not entry.hit and entry.file().read_bytes() == data
    assert entry.version == f"sha256-{sha(data)}" and entry.manifest.files[0].sha256 == sha(data)
    assert entry.file().name == "sam2_hiera_large.pt"
    served = server.count()
    warm = cache.ensure(URLSource(url, sha256=sha(data)))
    assert warm.hit and warm.key == entry.key and server.count() == served


def test_unpinned_url_is_offline_first_until_refreshed(cache: WeightCache, server: FileServer) -> None:
    url = server.add("/ckpt/model.bin", b"version one" * 1000)
    first = cache.ensure(url)
    assert first.manifest.source_info["etag"] and first.version.startswith("http-")
    assert ranges_asked(server, "/ckpt/model.bin") == ["bytes=0-0", "bytes=0-10999"]  # one probe
    served = server.count()
    server.add("/ckpt/model.bin", b"version two" * 1000)  # a new ETag on the server
    assert cache.ensure(url).key == first.key and server.count() == served
    [check] = cache.outdated()
    assert check.outdated and check.cached_version == first.version and check.latest_version != first.version
    refreshed = cache.ensure(url, refresh=True)
    assert not refreshed.hit and refreshed.file().read_bytes() == b"version two" * 1000
    assert cache.ensure(url).key == refreshed.key
    assert not cache.outdated()[0].outdated


def test_large_file_comes_in_parallel_ranges(cache: WeightCache, server: FileServer) -> None:
    data = os.urandom(1000 * KIB + 5)
    url = server.add("/big.safetensors", data)
    server.throttle = 8_000_000  # bytes per second per connection: progress arrives in steps
    events: list[ProgressEvent] = []
    entry = cache.ensure(URLSource(url, sha256=sha(data), part_bytes=128 * KIB), progress=events.append)
    assert entry.file().read_bytes() == data
    asked = ranges_asked(server, "/big.safetensors")
    assert asked[0] == "bytes=0-0"  # the probe
    assert sorted(asked[1:]) == sorted(
        f"bytes={s}-{min(s + 128 * KIB, len(data)) - 1}" for s in range(0, len(data), 128 * KIB)
    )
    advances = [event.nbytes for event in events if event.kind == "advance"]
    assert len(advances) > 8 and sum(advances) == len(data)
    assert [event.path for event in events if event.kind == "file_done"] == ["big.safetensors"]


def test_server_without_ranges_gets_one_stream(cache: WeightCache, server: FileServer) -> None:
    data = os.urandom(600 * KIB)
    url = server.add("/plain.bin", data)
    server.ranges = False
    entry = cache.ensure(URLSource(url, sha256=sha(data), part_bytes=64 * KIB))
    assert entry.file().read_bytes() == data
    assert server.count("/plain.bin") == 2  # the probe, then one full GET


def test_a_dropped_connection_resumes_from_the_bytes_received(cache: WeightCache, server: FileServer) -> None:
    data = os.urandom(3000 * KIB)
    url = server.add("/drop.bin", data)
    server.drop("/drop.bin", after=2200 * KIB)
    entry = cache.ensure(URLSource(url, sha256=sha(data)))
    assert entry.file().read_bytes() == data
    _probe, first, resumed = ranges_asked(server, "/drop.bin")
    assert first == f"bytes=0-{len(data) - 1}"
    start = int(resumed.removeprefix("bytes=").split("-")[0])
    assert 1024 * KIB <= start <= 2200 * KIB  # resumed, not restarted


def test_a_drop_without_range_support_starts_the_file_again(cache: WeightCache, server: FileServer) -> None:
    data = os.urandom(500 * KIB)
    url = server.add("/norange.bin", data)
    server.ranges = False
    server.drop("/norange.bin", after=100 * KIB, times=2)  # the probe's whole-body answer takes one
    entry = cache.ensure(URLSource(url, sha256=sha(data)))
    assert entry.file().read_bytes() == data and server.count("/norange.bin") == 3


def test_5xx_and_timeouts_are_retried(cache: WeightCache, server: FileServer) -> None:
    data = os.urandom(50 * KIB)
    url = server.add("/flaky.bin", data)
    server.fail("/flaky.bin", 503, times=2)
    server.hang("/flaky.bin", seconds=1.0)
    entry = cache.ensure(URLSource(url, sha256=sha(data), timeout=0.3))
    assert entry.file().read_bytes() == data and server.count("/flaky.bin") == 5


def test_a_server_that_keeps_failing_is_unreachable(cache: WeightCache, server: FileServer) -> None:
    url = server.add("/down.bin", b"x")
    server.fail("/down.bin", 502, times=100)
    with pytest.raises(SourceUnreachableError, match=r"failed 3 times in a row \(HTTP 502\)"):
        cache.ensure(URLSource(url, retries=2))
    assert_nothing_published(cache)


def test_corrupt_bytes_are_rejected_and_nothing_is_published(cache: WeightCache, server: FileServer) -> None:
    data = os.urandom(400 * KIB)
    url = server.add("/bad.bin", data)
    server.corrupt("/bad.bin", offset=300 * KIB)
    with pytest.raises(ChecksumMismatchError, match="nothing was published"):
        cache.ensure(URLSource(url, sha256=sha(data), part_bytes=100 * KIB))
    assert_nothing_published(cache)


def test_redirects_are_followed(cache: WeightCache, server: FileServer) -> None:
    server.add("/objects/abc", b"weights")
    server.redirect("/download/model.bin", "/objects/abc")
    entry = cache.ensure(server.url_for("/download/model.bin"))
    assert entry.file("model.bin").read_bytes() == b"weights"


def test_several_urls_make_one_entry_and_the_uri_round_trips(cache: WeightCache, server: FileServer) -> None:
    dino, sam = os.urandom(70 * KIB), os.urandom(90 * KIB)
    source = URLSource(
        {
            "groundingdino_swint_ogc.pth": server.add("/gd/v0.1/groundingdino_swint_ogc.pth", dino),
            "checkpoints/sam2.pt": server.add("/sam/sam2_hiera_large.pt", sam),
        },
        sha256={"checkpoints/sam2.pt": sha(sam)},
    )
    entry = cache.ensure(source)
    assert entry.file("groundingdino_swint_ogc.pth").read_bytes() == dino
    assert entry.file("checkpoints/sam2.pt").read_bytes() == sam
    again = URLSource.from_uri(source.uri)
    assert again.uri == source.uri and again.identity == source.identity
    assert f"#sha256={sha(sam)}&name=checkpoints/sam2.pt" in source.uri
    assert cache.ensure(source.uri).key == entry.key


def test_errors_are_specific_and_one_line(cache: WeightCache, server: FileServer) -> None:
    server.add("/private.bin", b"x")
    server.protect("/private.bin", authorization="Bearer right")
    cases = [
        (server.url_for("/missing.bin"), SourceNotFoundError, "not found"),
        (server.url_for("/private.bin"), SourceAuthError, "refused access"),
        ("http://127.0.0.1:9/closed.bin", SourceUnreachableError, "could not connect"),
        (server.url_for("/dir/"), InvalidSourceError, "names no file"),
        (server.url_for("/x.bin#sha256=abc"), InvalidSourceError, "64 hex digits"),
        (server.url_for("/x.bin#md5=abc"), InvalidSourceError, "unknown #md5"),
        (server.url_for("/x.bin#name=../escape.bin"), UnsafePathError, "escape"),
    ]
    for uri, error, words in cases:
        source = URLSource(uri, retries=0) if error is not InvalidSourceError and "#name" not in uri else uri
        with pytest.raises(error, match=words) as caught:
            cache.ensure(source)
        assert "\n" not in str(caught.value), uri
    assert_nothing_published(cache)


def test_headers_are_sent(cache: WeightCache, server: FileServer) -> None:
    url = server.add("/private.bin", b"secret weights")
    server.protect("/private.bin", authorization="Bearer right")
    entry = cache.ensure(URLSource(url, headers={"Authorization": "Bearer right"}))
    assert entry.file().read_bytes() == b"secret weights"


def test_cli_ensure_https(cli, store_dir: Path, server: FileServer) -> None:
    import json

    data = os.urandom(20 * KIB)
    url = server.add("/cli.bin", data)
    result = cli("ensure", f"{url}#sha256={sha(data)}", "--store", store_dir, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["hit"] is False and Path(report["path"], "cli.bin").read_bytes() == data


def test_a_plan_holds_what_resolve_learned_and_the_source_keeps_nothing(
    cache: WeightCache, server: FileServer
) -> None:
    url = server.add("/model.bin", b"one" * 1000)
    source = URLSource(url)
    first = source.resolve()
    server.add("/model.bin", b"two" * 1000)  # the server's file changes between two resolves
    second = source.resolve()
    assert first.version != second.version and first.info["etag"] != second.info["etag"]
    assert vars(source) == vars(URLSource(url))  # neither resolve left anything in the source
    entry = cache.ensure(source)
    assert entry.version == second.version and entry.manifest.source_info == dict(second.info)


def test_a_pinned_url_records_the_validators_it_was_fetched_with(
    cache: WeightCache, server: FileServer
) -> None:
    data = b"pinned" * 1000
    url = server.add("/pinned.bin", data, etag='"v1"')
    entry = cache.ensure(f"{url}#sha256={sha(data)}")  # no resolve: the fetch's own answers are recorded
    assert entry.manifest.source_info["etag"] == '"v1"'
