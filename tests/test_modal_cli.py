"""push, pull, ls and verify against a Modal Volume: on FakeModalVolume, and on the real SDK offline."""

from __future__ import annotations

import json
import os
from pathlib import Path

import modal
import modal.exception
import pytest

from weightcache import ModalVolumeStore, WeightCache
from weightcache.providers.stores import remote_volume
from weightcache.testing import FakeModalVolume


@pytest.fixture
def volumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeModalVolume]:
    """Point ``open_volume`` at fake Volumes, created (like Modal's) only when asked to."""
    opened: dict[str, FakeModalVolume] = {}

    def open_fake(name: str, *, create: bool = False) -> FakeModalVolume:
        if name not in opened:
            if not create:
                raise modal.exception.NotFoundError(f"Volume '{name}' not found in environment 'main'")
            opened[name] = FakeModalVolume(tmp_path / "volumes" / name, name=name)
        return opened[name]

    monkeypatch.setattr(remote_volume, "open_volume", open_fake)
    return opened


@pytest.fixture
def local_store(tmp_path: Path) -> Path:
    return tmp_path / "laptop-store"


def push(cli, source: Path, local_store: Path) -> dict:
    result = cli("push", source, "--modal-volume", "weights", "--store", local_store, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_push_then_a_fresh_container_hits_without_fetching(
    cli, volumes, local_store: Path, make_image_dir
) -> None:
    source = make_image_dir()
    report = push(cli, source, local_store)
    assert report["already_present"] is False and report["files"] == 3 and report["bytes"] == 800_012
    assert report["refs"] == [f"dir://{source}"]

    fetched = []
    with volumes["weights"].container() as container:
        cache = WeightCache(ModalVolumeStore(container, container.mount_path))
        entry = cache.ensure(source, progress=lambda event: fetched.append(event.nbytes))
        assert entry.hit and entry.key == report["key"] and sum(fetched) == 0
        assert cache.verify(entry, deep=True).ok

    again = push(cli, source, local_store)
    assert again["already_present"] is True


def test_push_replaces_a_damaged_entry_on_the_volume(cli, volumes, local_store: Path, make_image_dir) -> None:
    source = make_image_dir()
    key = push(cli, source, local_store)["key"]
    with volumes["weights"].container() as container:  # a container truncates a file and commits
        (container.mount_path / "entries" / key / "files" / "sam2_hiera_large.pt").write_bytes(b"cut")
    assert cli("verify", "--modal-volume", "weights").exit_code == 1

    assert push(cli, source, local_store)["already_present"] is False
    assert cli("verify", key, "--deep", "--modal-volume", "weights").exit_code == 0


def test_ls_and_verify_read_the_volume(cli, volumes, local_store: Path, make_image_dir) -> None:
    key = push(cli, make_image_dir(), local_store)["key"]
    listed = json.loads(cli("ls", "--modal-volume", "weights", "--json").stdout)
    assert [(item["key"], item["files"], item["path"]) for item in listed] == [
        (key, 3, f"entries/{key}/files")
    ]
    assert key in cli("ls", "--modal-volume", "weights").stdout

    verified = json.loads(cli("verify", "--modal-volume", "weights", "--deep", "--json").stdout)
    assert [(report["key"], report["ok"], report["bytes_checked"]) for report in verified] == [
        (key, True, 800_012)
    ]

    with volumes["weights"].container() as container:  # same size, different bytes: only --deep sees it
        victim = container.mount_path / "entries" / key / "files" / "groundingdino_swint_ogc.pth"
        victim.write_bytes(b"\0" * victim.stat().st_size)
    assert cli("verify", key, "--modal-volume", "weights").exit_code == 0
    deep = cli("verify", key, "--deep", "--modal-volume", "weights")
    assert deep.exit_code == 1 and "FAILED" in deep.stdout and "blake3" in deep.stdout


def test_an_entry_without_manifest_is_not_listed_and_fails_verify(cli, volumes, tmp_path: Path) -> None:
    volume = remote_volume.open_volume("weights", create=True)
    (tmp_path / "part.bin").write_bytes(b"partial")
    with volume.batch_upload() as batch:  # files of an upload cut short before its manifest
        batch.put_file(tmp_path / "part.bin", "entries/model-0123456789ab/files/part.bin")
    assert json.loads(cli("ls", "--modal-volume", "weights", "--json").stdout) == []
    result = cli("verify", "--modal-volume", "weights", "--json")
    assert result.exit_code == 1
    [report] = json.loads(result.stdout)
    assert report["key"] == "model-0123456789ab" and report["problems"][0]["kind"] == "manifest"


def populated_by_a_container(volume: FakeModalVolume, source: Path) -> str:
    with volume.container() as container:
        return WeightCache(ModalVolumeStore(container, container.mount_path, lease=None)).ensure(source).key


def test_pull_copies_an_entry_checked_against_its_manifest(
    cli, volumes, local_store: Path, make_image_dir
) -> None:
    source = make_image_dir()
    key = populated_by_a_container(remote_volume.open_volume("weights", create=True), source)

    pulled = cli("pull", key, "--modal-volume", "weights", "--store", local_store, "--json")
    assert pulled.exit_code == 0, pulled.output
    info = json.loads(pulled.stdout)
    assert info["key"] == key and info["hit"] is False
    local = WeightCache(local_store)
    assert local.verify(key, deep=True).ok
    assert local.ensure(source).hit  # the same entry a local populate would make
    again = cli("pull", key, "--modal-volume", "weights", "--store", local_store)
    assert again.exit_code == 0 and "already in the store" in again.stdout


def test_pull_refuses_bytes_that_differ_from_the_manifest(
    cli, volumes, local_store: Path, make_image_dir
) -> None:
    volume = remote_volume.open_volume("weights", create=True)
    key = populated_by_a_container(volume, make_image_dir())
    with volume.container() as container:
        victim = container.mount_path / "entries" / key / "files" / "sam2_hiera_large.pt"
        victim.write_bytes(os.urandom(victim.stat().st_size))

    result = cli("pull", key, "--modal-volume", "weights", "--store", local_store)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: sam2_hiera_large.pt from Modal Volume 'weights' differs")
    assert WeightCache(local_store).list() == []
    assert list((local_store / ".weightcache" / "staging").iterdir()) == []


def test_errors_are_one_line(cli, volumes, local_store: Path) -> None:
    remote_volume.open_volume("weights", create=True)
    cases = [
        (["pull", "model-0123456789ab", "--modal-volume", "weights"], "no entry model-0123456789ab"),
        (["verify", "model-0123456789ab", "--modal-volume", "weights"], "no entry model-0123456789ab"),
        (["ls", "--modal-volume", "missing"], "Modal Volume 'missing' was not found"),
    ]
    for args, message in cases:
        result = cli(*args, "--store", local_store)
        assert result.exit_code == 1, args
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
        assert message in result.stderr
    assert cli("verify", "dir:///not/a/key", "--modal-volume", "weights").exit_code == 2


@pytest.fixture
def no_modal_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "no-modal.toml"))


def test_the_real_sdk_opens_volumes_lazily(no_modal_credentials) -> None:
    volume = remote_volume.open_volume("fashion-model-weights")
    assert isinstance(volume, modal.Volume) and volume.name == "fashion-model-weights"


def test_without_a_token_the_real_sdk_fails_in_one_line(cli, no_modal_credentials) -> None:
    result = cli("ls", "--modal-volume", "fashion-model-weights")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "Modal refused access to Volume 'fashion-model-weights' (Token missing" in result.stderr
    assert "modal token new" in result.stderr
