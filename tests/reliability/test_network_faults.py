"""Network faults during a populate: retried, resumed or rejected as documented; nothing bad published.

| fault                      | https://                     | hf://                                   |
|----------------------------|------------------------------|-----------------------------------------|
| one 503                    | retried                      | SourceUnreachableError (not retried)    |
| 503 on every request       | SourceUnreachableError       | SourceUnreachableError                  |
| no bytes past the timeout  | retried                      | resumed by huggingface_hub              |
| connection dropped mid-body| resumed from the bytes had   | resumed by huggingface_hub              |
| wrong bytes, right size    | ChecksumMismatchError        | ChecksumMismatchError                   |

After a failure nothing is listed and no staging is left, and once the server is right again
the next ``ensure`` succeeds; after a recovery the entry is byte-exact.
"""

from __future__ import annotations

import os
from pathlib import Path

import huggingface_hub.constants
import pytest

from tests.reliability.sources import HTTP_TEST_TIMEOUT, Wire, source_kind
from weightcache import ChecksumMismatchError, SourceUnreachableError, WeightCache

WEIGHTS = "model.safetensors"
FAULTS = {
    "one-503": lambda wire: wire.server.fail(wire.path, 503),
    "503-always": lambda wire: wire.server.fail(wire.path, 503, times=1000),
    "hang": lambda wire: wire.server.hang(wire.path, HTTP_TEST_TIMEOUT + 2),
    "drop-mid-body": lambda wire: wire.server.drop(wire.path, after=700_000),
    "wrong-bytes": lambda wire: wire.server.corrupt(wire.path, offset=1_000_000),
}
FAILS = {
    ("hf", "one-503"): SourceUnreachableError,
    ("hf", "503-always"): SourceUnreachableError,
    ("https", "503-always"): SourceUnreachableError,
    ("hf", "wrong-bytes"): ChecksumMismatchError,
    ("https", "wrong-bytes"): ChecksumMismatchError,
}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("kind_name", ["hf", "https"])
def test_network_fault(
    kind_name: str, fault: str, cache: WeightCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DOWNLOAD_TIMEOUT", HTTP_TEST_TIMEOUT)
    files = {WEIGHTS: os.urandom(3_000_000), "config.json": b'{"layers": 2}'}
    with source_kind(kind_name, tmp_path / "served") as kind:
        source = kind.serve("model", files)
        assert kind.wire is not None
        wire: Wire = kind.wire("model", WEIGHTS)
        FAULTS[fault](wire)
        expected = FAILS.get((kind_name, fault))
        if expected is not None:
            with pytest.raises(expected) as caught:
                cache.ensure(source)
            assert "\n" not in str(caught.value)
            assert cache.list() == [] and list(cache.store.layout.staging_dir.iterdir()) == []
            wire.clear()
        entry = cache.ensure(source)
        assert wire.server.count(wire.path, "GET") >= 2  # the fault was met, then got past
    assert not entry.hit and cache.verify(entry, deep=True).ok
    assert {path: (entry.path / path).read_bytes() for path in files} == files
