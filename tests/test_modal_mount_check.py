"""Inside a Modal container, a ModalVolumeStore path that is not on a mounted Volume is refused."""

from __future__ import annotations

from pathlib import Path

import modal
import pytest

from weightcache import ModalVolumeStore
from weightcache.errors import VolumeNotMountedError
from weightcache.providers.stores._modal_mounts import check_volume_mounted, enclosing_mount, mount_points
from weightcache.testing import FakeModalVolume

MOUNTINFO = """\
22 1 0:21 / / rw,relatime - overlay overlay rw
98 22 0:50 / /cache rw,relatime - fuse modal rw
99 22 0:51 / /my\\040weights rw,relatime - fuse modal rw
"""


@pytest.fixture
def in_a_modal_container(monkeypatch: pytest.MonkeyPatch) -> None:
    # What modal.is_local() answers inside a running Function (modal/_runtime/execution_context.py).
    monkeypatch.setattr(modal, "is_local", lambda: False)


@pytest.fixture
def volume() -> modal.Volume:
    return modal.Volume.from_name("weights", create_if_missing=True)  # lazy: no request


def test_a_typo_in_the_mount_path_is_one_clear_sentence(in_a_modal_container, volume, tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTINFO)
    with pytest.raises(VolumeNotMountedError) as refused:
        check_volume_mounted(volume, Path("/cahce"), mountinfo=str(mountinfo))
    message = str(refused.value)
    assert message.startswith("/cahce is not where a Volume is mounted") and message.count(". ") == 0
    assert isinstance(refused.value, ValueError)  # a bad argument
    check_volume_mounted(volume, Path("/cache"), mountinfo=str(mountinfo))
    check_volume_mounted(volume, Path("/cache/models"), mountinfo=str(mountinfo))  # a store inside the Volume
    check_volume_mounted(volume, Path("/my weights"), mountinfo=str(mountinfo))


def test_the_store_checks_the_real_mount_table(in_a_modal_container, volume) -> None:
    with pytest.raises(VolumeNotMountedError, match="is not where a Volume is mounted"):
        ModalVolumeStore(volume, "/cahce-that-is-not-mounted")


def test_not_checked_outside_modal_or_for_duck_typed_volumes(volume, tmp_path: Path, monkeypatch) -> None:
    ModalVolumeStore(volume, "/cahce-that-is-not-mounted")  # on a laptop: modal.is_local() is true
    monkeypatch.setattr(modal, "is_local", lambda: False)
    container = FakeModalVolume(tmp_path / "volume").container()
    ModalVolumeStore(container, "/cahce-that-is-not-mounted")  # a test double is never checked


def test_mount_table_parsing(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTINFO)
    points = mount_points(str(mountinfo))
    assert points == {"/", "/cache", "/my weights"}
    assert enclosing_mount("/cachex/a", points) == "/"
    assert enclosing_mount("/cache/a", points) == "/cache"
    assert mount_points(str(tmp_path / "missing")) == {"/"}
