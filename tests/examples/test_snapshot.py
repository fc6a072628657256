"""The memory-snapshot switch and the check that the snap phase let go of the Volume."""

from __future__ import annotations

import mmap
from pathlib import Path

import pytest

from examples.snapshot import check_volume_released, memory_snapshot_enabled, volume_files_in_use


def test_files_open_or_mapped_under_the_mount_are_found_and_closed_ones_are_not(tmp_path: Path) -> None:
    mount = tmp_path / "cache"
    (mount / "entries").mkdir(parents=True)
    weights, config = mount / "entries/model.safetensors", mount / "entries/config.json"
    weights.write_bytes(b"\0" * 4096)
    config.write_text("{}")
    outside = tmp_path / "elsewhere.bin"
    outside.write_bytes(b"x")

    with open(config) as held, open(outside), open(weights, "rb") as source:
        mapped = mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ)
        source.close()  # only the mapping remains
        while_open = volume_files_in_use(mount)
        held.close()
        mapped.close()

    assert while_open == [str(config), str(weights)]
    assert volume_files_in_use(mount) == []


def test_the_snap_phase_check_names_what_is_still_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "weights.bin").write_bytes(b"w")

    with open(tmp_path / "weights.bin"):
        found = check_volume_released(tmp_path)

    assert found == [str(tmp_path / "weights.bin")]
    assert "Volume reloads will fail" in caplog.text


@pytest.mark.parametrize(("value", "enabled"), [("1", True), ("0", False), (None, False)])
def test_the_switch_reads_examples_memory_snapshot(
    monkeypatch: pytest.MonkeyPatch, value: str | None, enabled: bool
) -> None:
    if value is None:
        monkeypatch.delenv("EXAMPLES_MEMORY_SNAPSHOT", raising=False)
    else:
        monkeypatch.setenv("EXAMPLES_MEMORY_SNAPSHOT", value)

    assert memory_snapshot_enabled() is enabled
