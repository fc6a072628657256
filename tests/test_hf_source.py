"""The Hub source: the real huggingface_hub client against a local fake Hub (HF_ENDPOINT)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from weightcache import (
    ChecksumMismatchError,
    EmptySourceError,
    InvalidSourceError,
    SourceAuthError,
    SourceNotFoundError,
    SourceUnreachableError,
    WeightCache,
)
from weightcache.progress import ProgressEvent
from weightcache.providers.sources.hf import HFSource
from weightcache.testing import FakeHub

from .helpers import serving_hub

WEIGHTS = os.urandom(400_000)
FILES = {
    "config.json": b'{"hidden_size": 32}',
    "model.safetensors": WEIGHTS,
    "tokenizer/vocab.json": b'{"a": 0}',
    "README.md": b"# tiny\n",
}


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A fake Hub that sources built from URIs reach through HF_ENDPOINT; no token in the environment."""
    with serving_hub(monkeypatch, FILES) as running:
        yield running


def hub_paths(hub: FakeHub) -> list[str]:
    return [request.path for request in hub.requests]


def test_branch_populates_verified_files_and_a_warm_call_sends_no_request(
    cache: WeightCache, hub: FakeHub
) -> None:
    events: list[ProgressEvent] = []
    entry = cache.ensure("hf://acme/tiny", progress=events.append)
    assert not entry.hit and len(entry.version) == 40
    assert sorted(record.path for record in entry.manifest.files) == sorted(FILES)
    for record in entry.manifest.files:
        assert (entry.path / record.path).read_bytes() == FILES[record.path]
    [lfs] = [record for record in entry.manifest.files if record.sha256]
    assert lfs.path == "model.safetensors" and lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    assert entry.manifest.source == "hf://acme/tiny"
    assert entry.manifest.source_info == {
        "repo_id": "acme/tiny",
        "repo_type": "model",
        "requested_revision": "main",
        "transfer": "hub",  # files this small come through huggingface_hub, one request each
    }
    assert not any(
        part.startswith(".") for path in entry.path.rglob("*") for part in path.relative_to(entry.path).parts
    )
    assert sum(event.nbytes for event in events if event.kind == "advance") == sum(map(len, FILES.values()))
    served = hub.count()
    warm = cache.ensure("hf://acme/tiny@main")
    assert warm.hit and warm.key == entry.key and hub.count() == served


def test_a_commit_sha_needs_no_revision_request_and_shares_the_branch_entry(
    cache: WeightCache, hub: FakeHub
) -> None:
    sha = hub.commit("acme/tiny", {"config.json": b'{"hidden_size": 64}'})
    pinned = cache.ensure(f"hf://acme/tiny@{sha}")
    assert pinned.version == sha and not any("/revision/" in path for path in hub_paths(hub))
    served = hub.count()
    assert cache.ensure(f"hf://acme/tiny@{sha.upper()}").key == pinned.key and hub.count() == served
    assert cache.ensure("hf://acme/tiny").key == pinned.key  # main resolves to the same commit: same entry


def test_branch_moves_outdated_lists_it_and_refresh_downloads_only_what_changed(
    cache: WeightCache, hub: FakeHub, cli, store_dir: Path
) -> None:
    first = cache.ensure("hf://acme/tiny")
    new_sha = hub.commit("acme/tiny", {"config.json": b'{"hidden_size": 64}'})
    served = hub.count()
    assert cache.ensure("hf://acme/tiny").key == first.key and hub.count() == served  # still offline
    [check] = cache.outdated()
    assert check.outdated and (check.cached_version, check.latest_version) == (first.version, new_sha)
    listed = cli("outdated", "--store", store_dir, "--json")
    assert listed.exit_code == 0 and json.loads(listed.stdout)[0]["latest_version"] == new_sha
    weights_downloads = hub.cdn.count(hub.cdn_path("acme/tiny", "model.safetensors"))
    refreshed = cache.ensure("hf://acme/tiny", refresh=True)
    assert (
        refreshed.version == new_sha
        and (refreshed.path / "config.json").read_bytes() == b'{"hidden_size": 64}'
    )
    assert hub.cdn.count(hub.cdn_path("acme/tiny", "model.safetensors")) == weights_downloads  # reused
    assert (refreshed.path / "model.safetensors").stat().st_ino == (
        first.path / "model.safetensors"
    ).stat().st_ino
    assert not cache.outdated()[0].outdated
    human = cli("outdated", "--store", store_dir)
    assert human.exit_code == 0 and "up to date" in human.stdout


def test_patterns_select_files_and_are_part_of_the_identity(cache: WeightCache, hub: FakeHub) -> None:
    source = HFSource("acme/tiny", allow_patterns=["*.json", "*.safetensors"], ignore_patterns="tokenizer/*")
    entry = cache.ensure(source)
    assert sorted(record.path for record in entry.manifest.files) == ["config.json", "model.safetensors"]
    assert source.uri == "hf://acme/tiny@main?allow=*.json,*.safetensors&ignore=tokenizer/*"
    assert (
        HFSource.from_uri(source.uri).identity
        == source.identity
        == "hf://acme/tiny?allow=*.json,*.safetensors&ignore=tokenizer/*"
    )
    assert cache.ensure("hf://acme/tiny").key != entry.key
    with pytest.raises(EmptySourceError, match="matches the allow/ignore patterns"):
        cache.ensure("hf://acme/tiny?allow=*.gguf")


def test_datasets_and_paged_tree_listings(cache: WeightCache, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    files = {f"shard-{index}.json": f"{index}".encode() for index in range(7)}
    with FakeHub(tree_page_size=3) as hub:
        hub.add_repo("acme/data", files, repo_type="dataset")
        entry = cache.ensure(HFSource("acme/data", repo_type="dataset", endpoint=hub.url))
    assert sorted(record.path for record in entry.manifest.files) == sorted(files)
    assert entry.manifest.source == "hf://datasets/acme/data"


@pytest.mark.parametrize("path", ["model.safetensors", "config.json"])
def test_corrupt_bytes_of_the_right_size_are_rejected(cache: WeightCache, hub: FakeHub, path: str) -> None:
    hub.corrupt("acme/tiny", path, offset=3)
    with pytest.raises(ChecksumMismatchError, match="nothing was published"):
        cache.ensure("hf://acme/tiny")
    assert cache.list() == [] and list(cache.store.layout.staging_dir.iterdir()) == []


def test_a_dropped_download_is_resumed(cache: WeightCache, hub: FakeHub) -> None:
    hub.cdn.drop(hub.cdn_path("acme/tiny", "model.safetensors"), after=100_000)
    entry = cache.ensure("hf://acme/tiny")
    assert (entry.path / "model.safetensors").read_bytes() == WEIGHTS


def test_missing_repo_revision_and_uri_errors(cache: WeightCache, hub: FakeHub) -> None:
    cases = [
        ("hf://acme/nope", SourceNotFoundError, "was not found.*set HF_TOKEN"),
        ("hf://acme/tiny@v9", SourceNotFoundError, "revision 'v9' does not exist"),
        ("hf://acme/tiny@" + "0" * 40, SourceNotFoundError, "does not exist"),
        ("hf://acme/tiny?include=*.json", InvalidSourceError, "unknown parameter 'include'"),
        ("hf://acme/../x", InvalidSourceError, "not a Hugging Face repo id"),
        ("hf://acme/tiny@", InvalidSourceError, "revision of hf://acme/tiny is empty"),
    ]
    for uri, error, words in cases:
        with pytest.raises(error, match=words) as caught:
            cache.ensure(uri)
        assert "\n" not in str(caught.value)


def test_private_and_gated_repositories(
    cache: WeightCache, hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add_repo("acme/private", {"a.json": b"{}"}, private=True)
    hub.add_repo("acme/gated", {"b.safetensors": b"w" * 100}, gated=True)
    with pytest.raises(SourceNotFoundError, match="if it is private set HF_TOKEN"):
        cache.ensure("hf://acme/private")
    with pytest.raises(SourceAuthError, match=r"is gated; accept its conditions.*set HF_TOKEN"):
        cache.ensure("hf://acme/gated")
    hub.add_token("hf_valid_but_not_granted")
    monkeypatch.setenv("HF_TOKEN", "hf_valid_but_not_granted")
    with pytest.raises(SourceAuthError, match="token in use has no access"):
        cache.ensure("hf://acme/gated")
    monkeypatch.setenv("HF_TOKEN", "hf_made_up")
    with pytest.raises(SourceAuthError, match="rejected the token"):
        cache.ensure("hf://acme/tiny")
    hub.grant("acme/private", "hf_reader")
    hub.grant("acme/gated", "hf_reader")
    monkeypatch.setenv("HF_TOKEN", "hf_reader")
    assert cache.ensure("hf://acme/private").file("a.json").read_bytes() == b"{}"
    gated = cache.ensure(HFSource("acme/gated", token="hf_reader"))
    assert gated.file("b.safetensors").read_bytes() == b"w" * 100
    cdn_auth = [request.headers.get("authorization") for request in hub.cdn.requests]
    assert cdn_auth == [None]  # the LFS download went to the CDN, without the token


def test_unreachable_hub_fails_a_cold_cache_but_not_a_warm_one(cache: WeightCache, hub: FakeHub) -> None:
    with pytest.raises(SourceUnreachableError, match="cannot reach the Hugging Face Hub"):
        cache.ensure(HFSource("acme/tiny", endpoint="http://127.0.0.1:9"))
    entry = cache.ensure("hf://acme/tiny")
    hub.failing = 503
    with pytest.raises(SourceUnreachableError, match=r"HTTP 503"):
        cache.ensure("hf://acme/tiny", refresh=True)
    assert cache.ensure("hf://acme/tiny").key == entry.key  # warm: the Hub is not asked
    [check] = cache.outdated()
    assert check.error is not None and "HTTP 503" in check.error


def test_cli_ensure_hf(cli, store_dir: Path, hub: FakeHub) -> None:
    result = cli("ensure", "hf://acme/tiny?allow=*.json", "--store", store_dir, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["files"] == 2 and report["source"] == "hf://acme/tiny?allow=*.json"
    failed = cli("ensure", "hf://acme/nope", "--store", store_dir)
    assert failed.exit_code == 1 and failed.stderr.startswith("error: the Hugging Face model repository")
    assert failed.stderr.count("\n") == 1
