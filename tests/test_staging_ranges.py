"""Staging for downloaders: ranges written out of order, third-party progress, scratch space."""

from __future__ import annotations

import hashlib
import os
import random
import threading
from pathlib import Path

import blake3
import pytest

from weightcache import ChecksumMismatchError, SizeMismatchError
from weightcache._core.staging import Staging
from weightcache.progress import ProgressEvent


def _staging(tmp_path: Path, events: list[ProgressEvent] | None = None) -> Staging:
    staging = Staging(
        tmp_path / "stage", store_name="test", progress=events.append if events is not None else None
    )
    staging.files_dir.mkdir(parents=True)
    return staging


def test_ranges_written_out_of_order_from_threads_are_hashed_in_order(tmp_path: Path) -> None:
    data = os.urandom(9_000_001)
    parts = [(start, min(start + 700_000, len(data))) for start in range(0, len(data), 700_000)]
    random.Random(1).shuffle(parts)
    events: list[ProgressEvent] = []
    staging = _staging(tmp_path, events)
    with staging.write_ranges("model.bin", size=len(data), sha256=hashlib.sha256(data).hexdigest()) as writer:

        def write(assigned: list[tuple[int, int]]) -> None:
            for start, end in assigned:
                for offset in range(start, end, 65_536):
                    writer.write_at(offset, data[offset : min(offset + 65_536, end)])

        threads = [threading.Thread(target=write, args=(parts[i::4],)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    [record] = staging.records()
    assert record.size == len(data) and record.blake3 == blake3.blake3(data).hexdigest()
    assert record.sha256 == hashlib.sha256(data).hexdigest()
    assert (staging.files_dir / "model.bin").read_bytes() == data
    assert sum(event.nbytes for event in events if event.kind == "advance") == len(data)


def test_wrong_bytes_in_ranges_are_not_recorded(tmp_path: Path) -> None:
    staging = _staging(tmp_path)
    with (
        pytest.raises(ChecksumMismatchError),
        staging.write_ranges("a.bin", size=8, sha256=hashlib.sha256(b"12345678").hexdigest()) as writer,
    ):
        writer.write_at(4, b"5678")
        writer.write_at(0, b"1235")
    assert staging.records() == []


def test_a_gap_is_an_incomplete_file(tmp_path: Path) -> None:
    staging = _staging(tmp_path)
    with (
        pytest.raises(SizeMismatchError, match="incomplete"),
        staging.write_ranges("a.bin", size=10) as writer,
    ):
        writer.write_at(0, b"abc")
        writer.write_at(5, b"fghij")
    assert staging.records() == []


def test_a_byte_cannot_be_written_twice(tmp_path: Path) -> None:
    staging = _staging(tmp_path)
    with pytest.raises(ValueError, match="overlap"), staging.write_ranges("a.bin", size=10) as writer:
        writer.write_at(0, b"abcd")
        writer.write_at(3, b"x")
    assert staging.records() == []


def test_third_party_downloads_report_progress_and_scratch_space_is_never_kept(tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    staging = _staging(tmp_path, events)
    with staging.scratch_dir() as scratch:
        (scratch / ".cache").mkdir()
        (scratch / "model.bin").write_bytes(b"x" * 100)
        staging.report_bytes("model.bin", 100, file_size=100)
        os.replace(scratch / "model.bin", staging.path_for("model.bin"))
    assert not scratch.exists()
    staging.adopt("model.bin", size=100)
    assert [event.kind for event in events] == ["advance", "advance", "file_done"]
    assert sorted(path.name for path in staging.directory.iterdir()) == ["files"]
