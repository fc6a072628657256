"""hf:// large LFS files come in parallel byte ranges from the CDN, checked against the Hub's SHA-256."""

from __future__ import annotations

import hashlib
import random

import pytest

from weightcache import ChecksumMismatchError, HFSource, WeightCache
from weightcache._core.constants import HTTP_MIN_PART_BYTES
from weightcache.testing import FakeHub

MIB = 1024 * 1024


@pytest.fixture
def shards(request: pytest.FixtureRequest) -> dict[str, bytes]:
    rng = random.Random(request.node.nodeid)
    size = HTTP_MIN_PART_BYTES + MIB
    files = {f"model-0000{i}-of-00004.safetensors": rng.randbytes(size) for i in range(4)}
    return {**files, "config.json": b'{"layers": 4}'}


def test_large_lfs_files_come_in_parallel_ranges_from_the_cdn(cache: WeightCache, shards) -> None:
    with FakeHub() as hub:
        hub.add_repo("acme/sharded", shards)
        hub.cdn.gather(8)  # 4 files of 2 parts each: all 8 parts are in flight at once
        entry = cache.ensure(HFSource("acme/sharded", endpoint=hub.url))
        assert hub.cdn.peak_in_flight >= 8
        records = {record.path: record for record in entry.manifest.files}
        for name, data in shards.items():
            assert (entry.path / name).read_bytes() == data
            if name.endswith(".safetensors"):
                path = hub.cdn_path("acme/sharded", name)
                assert len([r for r in hub.cdn.requests if r.path == path]) == 3  # the probe, two parts
                assert records[name].sha256 == hashlib.sha256(data).hexdigest()
        assert all(request.headers.get("authorization") is None for request in hub.cdn.requests)
    assert entry.manifest.source_info["transfer"] == "hub+ranges"


def test_a_flipped_byte_in_a_ranged_hub_file_publishes_nothing(cache: WeightCache, shards) -> None:
    with FakeHub() as hub:
        hub.add_repo("acme/sharded", shards)
        hub.corrupt("acme/sharded", "model-00002-of-00004.safetensors", offset=HTTP_MIN_PART_BYTES + 7)
        with pytest.raises(ChecksumMismatchError, match="model-00002"):
            cache.ensure(HFSource("acme/sharded", endpoint=hub.url))
    assert cache.list() == []
