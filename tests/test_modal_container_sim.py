"""Modal apps run as their containers run them: /root/app.py, modal.is_local() false, the image's layers."""

from __future__ import annotations

from pathlib import Path

import pytest

from weightcache.errors import InvalidArgumentError
from weightcache.testing.modal_container import ContainerStartError, ModalContainer, available

pytestmark = pytest.mark.skipif(available() is not None, reason=available() or "")

REPO = Path(__file__).resolve().parents[1]
CRASHING = "tests/modal_apps/crashing_app.py"
CACHE_APP = "tests/modal_apps/cache_app.py"


def test_an_app_that_only_imports_on_the_deploying_machine_is_caught(tmp_path: Path) -> None:
    # The same app imports fine here: the crash exists only where Modal mounts it, at /root/crashing_app.py.
    with pytest.raises(ContainerStartError) as crashed:
        ModalContainer(CRASHING, "hello", state_dir=tmp_path, cwd=REPO).start()
    assert crashed.value.phase == "importing the app" and crashed.value.error_type == "IndexError"
    assert 'File "/root/crashing_app.py"' in crashed.value.details
    assert "parents[2]" in crashed.value.details


def test_a_fixed_app_starts_cold_then_warm(tmp_path: Path) -> None:
    with ModalContainer(CACHE_APP, "Service", state_dir=tmp_path, cwd=REPO) as first:
        cold = first.request("GET", "/info").json()
    assert cold["file"] == "/root/cache_app.py" and cold["cwd"] == "/root"
    assert cold["is_local"] is False and cold["mode"] == "container"  # the image's .env
    assert cold["phases"] == ["snap", "restore"]  # @modal.enter(snap=True) first
    assert cold["greeting"] == "hello from the image"  # add_local_python_source
    assert cold["etc"] == "asset from add_local_dir"  # add_local_file at /etc/cache-app/greeting.txt
    assert cold["copied"] == "asset from add_local_dir"  # add_local_file(..., copy=True)
    assert first.entered == {"pre_snapshot": ["ensure"], "post_snapshot": ["restore"]}
    assert first.open_at_snapshot == [] and first.endpoints == ["web"]
    assert cold["hit"] is False and cold["entry_path"].startswith("/cache/entries/")
    entries = first.volume("cache-app-weights").listdir("entries")
    assert [entry.path for entry in entries] == [
        cold["entry_path"].removeprefix("/cache/").removesuffix("/files")
    ]

    with ModalContainer(CACHE_APP, "Service", state_dir=tmp_path, cwd=REPO) as second:
        warm = second.request("GET", "/info").json()
    assert warm["hit"] is True and warm["entry_path"] == cold["entry_path"]  # committed by the first


def test_a_store_path_that_is_not_the_volume_mount_is_refused(tmp_path: Path) -> None:
    container = ModalContainer(
        CACHE_APP, "Service", state_dir=tmp_path, cwd=REPO, env={"CACHE_APP_STORE": "/cahce"}
    )
    with pytest.raises(ContainerStartError) as refused:
        container.start()
    assert refused.value.phase == "running @modal.enter methods"
    assert refused.value.error_type == "VolumeNotMountedError"
    assert "/cahce is not where a Volume is mounted" in refused.value.details


def test_a_volume_file_held_open_at_the_snapshot_is_reported(tmp_path: Path) -> None:
    container = ModalContainer(
        CACHE_APP, "Service", state_dir=tmp_path, cwd=REPO, env={"CACHE_APP_HOLD": "1"}
    )
    with container:
        entry_path = container.request("GET", "/info").json()["entry_path"]
        with pytest.raises(InvalidArgumentError, match="has no web endpoint 'info'; pick one of web"):
            container.request("GET", "/", endpoint="info")
        with pytest.raises(InvalidArgumentError, match="already running"):
            container.start()

    assert container.open_at_snapshot == [f"{entry_path}/greeting.txt"]
