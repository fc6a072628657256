"""prefetch: files end up in the page cache, in the foreground or the background, and the CLI."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from bench.pagecache import drop_file
from weightcache import WeightCache, WeightFileNotFoundError
from weightcache._core.constants import CHUNK_BYTES
from weightcache._transport.cpus import READ_BUDGET
from weightcache.prefetch import prefetch, prefetch_in_background


def cached(path: Path, offset: int, length: int = 4096) -> bool:
    """Whether those bytes are in the page cache: a RWF_NOWAIT read fails rather than go to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.preadv(descriptor, [bytearray(length)], offset, os.RWF_NOWAIT)
        return True
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno == errno.EOPNOTSUPP:
            pytest.skip("this filesystem does not support RWF_NOWAIT reads")
        raise
    finally:
        os.close(descriptor)


def write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def test_files_end_up_in_the_page_cache(tmp_path: Path) -> None:
    big = write(tmp_path / "w" / "big.bin", 3 * CHUNK_BYTES + 12345)
    small = write(tmp_path / "w" / "sub" / "small.bin", 100)
    offsets = [(big, 0), (big, CHUNK_BYTES + 4096), (big, big.stat().st_size - 1), (small, 0)]
    for path in (big, small):
        drop_file(path)
    if any(cached(path, offset, 1) for path, offset in offsets):
        pytest.skip("this filesystem keeps files cached whatever fadvise says")
    report = prefetch(tmp_path / "w", threads=4)
    assert (report.files, report.bytes, report.threads) == (2, big.stat().st_size + 100, 4)
    assert all(cached(path, offset, 1) for path, offset in offsets)


def test_entries_files_directories_and_links_are_read_once(
    cache: WeightCache, make_image_dir, tmp_path
) -> None:
    entry = cache.ensure(make_image_dir(), link_to=tmp_path / "linked")
    report = prefetch([entry, tmp_path / "linked", entry.file("sam2_hiera_large.pt")], threads=3)
    assert (report.files, report.bytes) == (3, entry.total_bytes)
    one = prefetch(str(entry.file("configs/sam2.yaml")))
    assert (one.files, one.bytes) == (1, len(b"model: sam2\n"))


def test_any_thread_count_reads_every_byte(tmp_path: Path) -> None:
    for index in range(5):
        write(tmp_path / f"f{index}", index * CHUNK_BYTES // 3)
    total = sum(index * CHUNK_BYTES // 3 for index in range(5))
    for threads in (1, 2, 16):
        report = prefetch(tmp_path, threads=threads)
        assert (report.files, report.bytes, report.threads) == (5, total, threads)
        assert report.gb_per_s > 0


def test_background_prefetch_reports_when_waited_on(tmp_path: Path) -> None:
    write(tmp_path / "m" / "a.bin", CHUNK_BYTES + 1)
    write(tmp_path / "m" / "empty.bin", 0)
    handle = prefetch_in_background(tmp_path / "m", threads=2)
    report = handle.wait()
    assert handle.done() and not report.cancelled
    assert (report.files, report.bytes) == (2, CHUNK_BYTES + 1)
    assert handle.bytes_read == handle.total_bytes == CHUNK_BYTES + 1


def test_background_prefetch_can_be_cancelled_and_waited_on_with_a_timeout(tmp_path: Path) -> None:
    sparse = tmp_path / "sparse.bin"
    with open(sparse, "wb") as handle:
        handle.truncate(4 * 1024**3)  # reads as zeros from memory: seconds of reading, no disk used
    prefetching = prefetch_in_background(sparse, threads=1)
    with pytest.raises(TimeoutError, match="still running"):
        prefetching.wait(timeout=0)
    prefetching.cancel()
    report = prefetching.wait(timeout=30)
    assert report.cancelled and report.bytes < 4 * 1024**3


def test_missing_paths_fail_before_reading(cache: WeightCache, make_image_dir, tmp_path: Path) -> None:
    present = write(tmp_path / "present.bin", 10)
    with pytest.raises(WeightFileNotFoundError, match="does not exist") as caught:
        prefetch([present, tmp_path / "missing.bin"])
    assert isinstance(caught.value, FileNotFoundError)
    entry = cache.ensure(make_image_dir())
    entry.file("sam2_hiera_large.pt").unlink()
    handle = prefetch_in_background(entry)
    with pytest.raises(WeightFileNotFoundError, match=r"sam2_hiera_large\.pt does not exist"):
        handle.wait()


def test_cli_prefetches_keys_sources_and_paths(cli, store_dir: Path, make_image_dir, tmp_path: Path) -> None:
    source = make_image_dir()
    key = json.loads(cli("ensure", source, "--store", store_dir, "--json").stdout)["key"]
    extra = write(tmp_path / "extra.bin", 1000)
    result = cli("prefetch", key, f"dir://{source}", extra, "--threads", "2", "--store", store_dir, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # The key and the source name the same entry, so its files are read once; an existing path is a path.
    assert (report["files"], report["bytes"], report["threads"]) == (4, 800_012 + 1000, 2)
    assert report["targets"][0] == report["targets"][1] == str(store_dir / "entries" / key / "files")
    human = cli("prefetch", key, "--store", store_dir)
    assert human.exit_code == 0 and human.stdout.startswith("prefetched 3 files, 781.3 KiB in ")


def test_cli_refuses_a_source_that_is_not_cached(cli, store_dir: Path, make_image_dir) -> None:
    source = make_image_dir()
    result = cli("prefetch", f"dir://{source}", "--store", store_dir)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "is not cached" in result.stderr and "weightcache ensure" in result.stderr
    assert cli("prefetch", "--store", store_dir).exit_code == 2  # nothing named
    source.rename(source.with_name("gone"))
    gone = cli("prefetch", str(source), "--store", store_dir)  # neither a path nor a cached source
    assert gone.exit_code == 1 and gone.stderr.startswith("error: ") and "Traceback" not in gone.output


def test_reads_through_a_buffer_where_the_kernel_cannot_splice(tmp_path: Path, monkeypatch) -> None:
    # Filesystems that cannot splice pages into /dev/null are not available here: take that path directly.
    monkeypatch.setattr("weightcache.prefetch._open_sink", lambda: None)
    big = write(tmp_path / "big.bin", 2 * CHUNK_BYTES + 7)
    drop_file(big)
    report = prefetch(tmp_path, threads=2)
    assert (report.files, report.bytes) == (1, 2 * CHUNK_BYTES + 7)
    assert all(cached(big, offset, 1) for offset in (0, CHUNK_BYTES, 2 * CHUNK_BYTES))


def test_a_prefetch_and_a_load_share_the_processs_reader_threads(tmp_path: Path) -> None:
    write(tmp_path / "w.bin", 1000)
    assert prefetch(tmp_path).threads == READ_BUDGET.total  # alone, it takes them all
    with READ_BUDGET.take(3):  # a load holding 3 (as load_safetensors does while it runs)
        assert prefetch(tmp_path).threads == max(READ_BUDGET.total - 3, READ_BUDGET.total // 2, 1)
    assert READ_BUDGET.in_use == 0
