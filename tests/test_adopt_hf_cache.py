"""Adopting an HF cache written by the real huggingface_hub: verified, linked, never serving bad bytes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import snapshot_download

from weightcache import LocalStore, WeightCache
from weightcache._hf_cache.adopt import adopt_hf_cache
from weightcache._hf_cache.view import git_blob_id
from weightcache.testing import FakeHub

from .helpers import serving_hub

FILES = {
    "config.json": b'{"hidden_size": 32}',
    "model.safetensors": os.urandom(300_000),
    "extra.safetensors": os.urandom(200_000),
    "tokenizer/vocab.json": b'{"a": 0}',
}


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with serving_hub(monkeypatch, FILES) as running:
        yield running


@pytest.fixture
def hf_cache(hub: FakeHub, tmp_path: Path) -> Path:
    """A Hugging Face cache as Modal's examples fill one: snapshot_download into HF_HUB_CACHE."""
    folder = tmp_path / "hf" / "hub"
    snapshot_download("acme/tiny", cache_dir=folder, endpoint=hub.url)
    return folder


def snapshot(hf_cache: Path) -> Path:
    [path] = (hf_cache / "models--acme--tiny" / "snapshots").iterdir()
    return path


def snapshot_dirs(hf_cache: Path) -> list[Path]:
    return list((hf_cache / "models--acme--tiny" / "snapshots").iterdir())


def resolves(hub: FakeHub) -> list[str]:
    return [request.path for request in hub.requests if "/resolve/" in request.path]


def test_an_adopted_revision_is_a_hit_by_sha_and_by_branch_with_no_request(
    cache: WeightCache, hub: FakeHub, hf_cache: Path
) -> None:
    sha = snapshot(hf_cache).name
    assert (hf_cache / "models--acme--tiny" / "trees" / f"{sha}.json").is_file()  # HF's listing
    before = hub.count()
    report = adopt_hf_cache(cache.store, hf_cache)
    [revision] = report.revisions
    assert (revision.status, revision.refs, revision.files) == ("adopted", ["main"], len(FILES))
    assert revision.linked == len(FILES) and revision.copied == 0
    assert hub.count() == before  # the cache's own listing said the snapshot is complete

    pinned = cache.ensure(f"hf://acme/tiny@{sha}")
    branch = cache.ensure("hf://acme/tiny")
    assert pinned.hit and branch.hit and branch.key == pinned.key == revision.key
    assert hub.count() == before
    for name, data in FILES.items():
        assert (pinned.path / name).read_bytes() == data
        assert os.path.samefile(pinned.path / name, snapshot(hf_cache) / name)  # hardlinked, no space used
    assert cache.verify(pinned, deep=True).ok
    # The user's cache still works as it did.
    offline = snapshot_download("acme/tiny", cache_dir=hf_cache, local_files_only=True)
    assert (Path(offline) / "config.json").read_bytes() == FILES["config.json"]
    again = adopt_hf_cache(cache.store, hf_cache)
    assert again.revisions[0].status == "skipped" and again.revisions[0].reason == "already in the store"


def test_a_corrupt_blob_is_never_served(cache: WeightCache, hub: FakeHub, hf_cache: Path) -> None:
    sha = snapshot(hf_cache).name
    blob = (snapshot(hf_cache) / "model.safetensors").resolve()
    damaged = bytearray(blob.read_bytes())
    damaged[1000] ^= 0xFF
    blob.write_bytes(bytes(damaged))

    [revision] = adopt_hf_cache(cache.store, hf_cache).revisions
    assert revision.status == "incomplete" and "1 file(s) failed verification" in (revision.reason or "")
    assert any("model.safetensors" in problem and "corrupt" in problem for problem in revision.problems)
    [partial] = cache.list()
    assert partial.version == f"{sha}.partial"
    assert "model.safetensors" not in [record.path for record in partial.manifest.files]

    hub.requests.clear()
    entry = cache.ensure(f"hf://acme/tiny@{sha}")
    assert not entry.hit and (entry.path / "model.safetensors").read_bytes() == FILES["model.safetensors"]
    fetched = resolves(hub)
    assert any("model.safetensors" in path for path in fetched)
    assert not any("extra.safetensors" in path for path in fetched)  # taken from the partial entry


def test_a_corrupt_git_file_leaves_the_commit_uncached(
    cache: WeightCache, hub: FakeHub, hf_cache: Path
) -> None:
    sha = snapshot(hf_cache).name
    (snapshot(hf_cache) / "config.json").resolve().write_bytes(b'{"hidden_size": 99}')  # same size
    [revision] = adopt_hf_cache(cache.store, hf_cache).revisions
    assert revision.status == "incomplete" and "config.json has git blob id" in revision.problems[0]
    # Offline, the store does not claim the commit: ensure can only ask the Hub, never serve these bytes.
    assert not cache.status(f"hf://acme/tiny@{sha}").cached
    assert not cache.status("hf://acme/tiny").cached


def test_missing_and_truncated_files_are_reported(cache: WeightCache, hub: FakeHub, hf_cache: Path) -> None:
    (snapshot(hf_cache) / "tokenizer" / "vocab.json").unlink()
    blob = (snapshot(hf_cache) / "extra.safetensors").resolve()
    blob.write_bytes(blob.read_bytes()[:1000])
    [revision] = adopt_hf_cache(cache.store, hf_cache).revisions
    assert revision.status == "incomplete" and revision.files == 2
    assert "1 file(s) of the commit are not in the cache" in (revision.reason or "")
    problems = " | ".join(revision.problems)
    assert "tokenizer/vocab.json: not in the cache" in problems
    assert "extra.safetensors has 1,000 bytes" in problems


def test_without_a_listing_completeness_is_unknown(cache: WeightCache, hub: FakeHub, hf_cache: Path) -> None:
    for tree in (hf_cache / "models--acme--tiny" / "trees").iterdir():
        tree.unlink()  # as an older huggingface_hub leaves a cache
    [offline] = adopt_hf_cache(cache.store, hf_cache, ask_hub=False).revisions
    assert offline.status == "incomplete" and "unknown" in (offline.reason or "")
    downloads = len(resolves(hub))
    hub.requests.clear()
    [asked] = adopt_hf_cache(cache.store, hf_cache).revisions  # a listing request, no download
    assert asked.status == "adopted" and len(resolves(hub)) == 0 < downloads
    assert [request.path for request in hub.requests if "/tree/" in request.path]


def test_move_leaves_the_cache_readable_through_symlinks(
    tmp_path: Path, hub: FakeHub, hf_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from weightcache._hf_cache import adopt_files

    monkeypatch.setattr(adopt_files.os, "link", no_hardlinks)
    cache = WeightCache(LocalStore(tmp_path / "store"))
    [revision] = adopt_hf_cache(cache.store, hf_cache, move=True).revisions
    assert revision.status == "adopted" and revision.moved == len(FILES)
    entry = cache.get(revision.key or "")
    for name, data in FILES.items():
        assert (snapshot(hf_cache) / name).resolve() == (entry.path / name).resolve()
        assert (entry.path / name).read_bytes() == data and not (entry.path / name).is_symlink()
    offline = snapshot_download("acme/tiny", cache_dir=hf_cache, local_files_only=True)
    assert (Path(offline) / "model.safetensors").read_bytes() == FILES["model.safetensors"]
    # The HF cache now reads the entry, so removing the entry removes that revision from it: nothing dangles.
    cache.remove(entry)
    assert not snapshot_dirs(hf_cache) and not list((hf_cache / "models--acme--tiny" / "blobs").iterdir())


def test_cli_json_reports_each_revision(cli, hub: FakeHub, hf_cache: Path, store_dir: Path) -> None:
    hub.commit("acme/tiny", {"config.json": b'{"hidden_size": 64}'})
    snapshot_download("acme/tiny", cache_dir=hf_cache, endpoint=hub.url)
    result = cli("adopt-hf-cache", hf_cache.parent, "--store", store_dir, "--json")  # HF_HOME is fine too
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [item["status"] for item in report["revisions"]] == ["adopted", "adopted"]
    assert sorted(ref for item in report["revisions"] for ref in item["refs"]) == ["main"]


def test_cli_exits_1_when_a_file_is_damaged(cli, hub: FakeHub, hf_cache: Path, store_dir: Path) -> None:
    (snapshot(hf_cache) / "extra.safetensors").resolve().write_bytes(b"cut")
    result = cli("adopt-hf-cache", hf_cache, "--store", store_dir, "--json")
    assert result.exit_code == 1
    [revision] = json.loads(result.stdout)["revisions"]
    assert revision["status"] == "incomplete" and "extra.safetensors has 3 bytes" in revision["problems"][0]


def test_cli_modal_volume_uploads_the_adopted_entries(
    cli, hub: FakeHub, hf_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from weightcache.providers.stores import remote_volume
    from weightcache.providers.stores.remote_volume import RemoteVolumeStore
    from weightcache.testing import FakeModalVolume

    volume = FakeModalVolume(tmp_path / "volume", name="weights")
    monkeypatch.setattr(remote_volume, "open_volume", lambda name, create=False: volume)
    result = cli("adopt-hf-cache", hf_cache, "--store", tmp_path / "laptop", "--modal-volume", "weights")
    assert result.exit_code == 0, result.output
    [entry] = WeightCache(RemoteVolumeStore(volume, "weights")).list()
    assert entry.version == snapshot(hf_cache).name


def test_a_modal_volume_holding_an_hf_home_is_adopted_in_a_container(hub: FakeHub, tmp_path: Path) -> None:
    from weightcache import ModalVolumeStore
    from weightcache.testing import FakeModalVolume

    volume = FakeModalVolume(tmp_path / "volume", name="weights")
    # FakeModalVolume keeps no symlinks across containers, so the HF cache is filled and adopted in one.
    with volume.container() as container:  # Modal's example: HF_HOME on the Volume, snapshot_download
        hf_cache = container.mount_path / "hf" / "hub"
        snapshot_download("acme/tiny", cache_dir=hf_cache, endpoint=hub.url)
        [revision] = adopt_hf_cache(ModalVolumeStore(container, container.mount_path), hf_cache).revisions
        assert revision.status == "adopted" and revision.copied == 0, revision
    served = hub.count()
    with volume.container() as after:  # adopt committed: a fresh container hits, by branch, with no request
        entry = WeightCache(ModalVolumeStore(after, after.mount_path)).ensure("hf://acme/tiny")
        assert entry.hit and (entry.path / "model.safetensors").read_bytes() == FILES["model.safetensors"]
    assert hub.count() == served


def test_a_move_killed_before_publishing_is_put_back_by_the_next_adopt(
    tmp_path: Path, hub: FakeHub, hf_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_MOVE, str(store), str(hf_cache)], capture_output=True, text=True
    )
    assert killed.returncode == 9, killed.stderr
    assert not (snapshot(hf_cache) / "model.safetensors").exists()  # moved into staging, then killed

    from weightcache._hf_cache import adopt_files

    monkeypatch.setattr(adopt_files.os, "link", no_hardlinks)
    cache = WeightCache(LocalStore(store))
    [revision] = adopt_hf_cache(cache.store, hf_cache, move=True).revisions
    assert revision.status == "adopted" and revision.moved == len(FILES)
    offline = snapshot_download("acme/tiny", cache_dir=hf_cache, local_files_only=True)
    for name, data in FILES.items():
        assert (Path(offline) / name).read_bytes() == data


def no_hardlinks(src: object, dst: object) -> None:
    raise OSError(1, "Operation not permitted")  # as on a filesystem without hardlinks


KILLED_MOVE = """
import os, sys
from weightcache import LocalStore
from weightcache._hf_cache import adopt, adopt_files
from weightcache._hf_cache.adopt import adopt_hf_cache

def no_hardlinks(src, dst):
    raise OSError(1, "Operation not permitted")

def killed(*args, **kwargs):
    os._exit(9)

adopt_files.os.link = no_hardlinks
adopt.publish = killed
adopt_hf_cache(LocalStore(sys.argv[1]), sys.argv[2], move=True, ask_hub=False)
"""


def test_a_cache_written_without_symlinks_is_checked_against_the_listing(
    cache: WeightCache, hub: FakeHub, hf_cache: Path
) -> None:
    for pointer in [path for path in snapshot(hf_cache).rglob("*") if path.is_symlink()]:
        blob = pointer.resolve()
        pointer.unlink()
        pointer.write_bytes(blob.read_bytes())  # as huggingface_hub leaves it where symlinks are unsupported
    (snapshot(hf_cache) / "config.json").write_bytes(b'{"hidden_size": 99}')
    [revision] = adopt_hf_cache(cache.store, hf_cache, ask_hub=False).revisions
    assert revision.status == "incomplete" and revision.files == len(FILES) - 1
    listed = hashlib.sha1(b"blob %d\0" % len(FILES["config.json"]) + FILES["config.json"]).hexdigest()
    found = git_blob_id(snapshot(hf_cache) / "config.json")
    assert revision.problems == [f"config.json has git blob id {found}, not {listed} (corrupt)"]
