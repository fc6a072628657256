"""Attacks from the adversarial pass (B01-B12 of docs/reliability.md) on the store, entries and archives.

Each test reproduces one attack and checks the guarantee that now holds; docs/reliability.md lists
them by id. The network attacks (B07 hangs, B08/B09 leaks) and B13 (terminal escapes) are tested
beside the code they concern.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import lzma
import os
import signal
import stat
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest

from tests.reliability.sources import source_kind
from weightcache import InvalidSourceError, LoadError, StoreNotWritableError, UnsafePathError, WeightCache
from weightcache._core.archive import export_entry, export_to_path, import_archive, open_archive
from weightcache._core.layout import entry_key
from weightcache.errors import (
    ArchiveError,
    ArchiveFormatError,
    InvalidArgumentError,
    SourceChangedError,
    UnsafeStoreError,
)
from weightcache.manifest import FileRecord, Manifest
from weightcache.prefetch import prefetch
from weightcache.providers.sources.hf import HFSource
from weightcache.providers.sources.image_dir import ImageDirSource
from weightcache.testing import FakeHub

WEIGHTS = {"model.safetensors": os.urandom(200_000), "config.json": b'{"layers": 2}'}


@contextlib.contextmanager
def _no_hang(seconds: int = 30) -> Iterator[None]:
    """Turn a hang into a failure (the attacks on blocking opens hang forever when they succeed)."""

    def hung(_signum: int, _frame: object) -> None:
        raise AssertionError(f"blocked for {seconds}s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _writable(path: Path) -> Path:
    path.chmod(0o644)  # entry files are read-only; the attack damages one as bit rot or a bug would
    return path


# --- B01: a damaged entry is fetched again, never re-linked from itself -------------------------


@pytest.mark.parametrize("kind_name", ["stream", "hf", "https"])
@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_b01_a_damaged_file_is_fetched_again_not_reused_from_the_damaged_entry(
    cache: WeightCache, tmp_path: Path, kind_name: str, damage: str
) -> None:
    with source_kind(kind_name, tmp_path / "served") as kind:
        source = kind.serve("model", WEIGHTS)
        entry = cache.ensure(source)
        damaged = entry / "model.safetensors"
        if damage == "truncate":
            os.truncate(_writable(damaged), 1000)
        else:
            damaged.unlink()
        again = cache.ensure(source)
        assert not again.hit
        assert (again / "model.safetensors").read_bytes() == WEIGHTS["model.safetensors"]
        assert cache.verify(again, deep=True).ok
        assert cache.ensure(source).hit


# --- B03: an archive is not taken for its source's own bytes -------------------------------------


def _archive(path: Path, manifest: Manifest, files: dict[str, bytes], compress: str = "") -> Path:
    """A self-consistent archive as ``export`` writes it, of any manifest and files (as an attacker can)."""
    with tarfile.open(path, f"w:{compress}") as tar:
        for name, data in [("manifest.json", manifest.to_json())] + [
            (f"files/{name}", data) for name, data in files.items()
        ]:
            info = tarfile.TarInfo(f"{manifest.key}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _manifest_for(
    source_identity: str, slug: str, version: str, files: dict[str, bytes], **info: str
) -> Manifest:
    records = [
        FileRecord(
            path=name,
            size=len(data),
            blake3=blake3.blake3(data).hexdigest(),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        for name, data in files.items()
    ]
    return Manifest.build(
        key=entry_key(slug, source_identity, version),
        source=source_identity,
        version=version,
        files=records,
        populate_seconds=0,
        source_info=info,
    )


def test_b03_an_imported_entry_is_checked_against_its_source_before_use(
    cache: WeightCache, tmp_path: Path
) -> None:
    evil = {"model.safetensors": b"backdoor" * 1000, "config.json": b'{"layers": 666}'}
    with FakeHub() as hub:
        hub.add_repo("acme/tiny", WEIGHTS)
        source = HFSource("acme/tiny", endpoint=hub.url)
        commit = source.resolve().version
        manifest = _manifest_for(source.identity, source.slug, commit, evil, import_trusted="yes")
        archive = _archive(tmp_path / "evil.tar", manifest, evil)
        with open_archive(str(archive)) as stream:
            imported = import_archive(cache, stream, name="evil.tar")
        assert imported.imported_from == "archive evil.tar"
        assert imported.manifest.source_info["import_trusted"] == "no"  # the archive's own claim is dropped

        served = cache.ensure(source)
        assert not served.hit and served.imported_from is None
        assert {name: (served / name).read_bytes() for name in WEIGHTS} == WEIGHTS
        assert cache.verify(served, deep=True).ok


def test_b03_an_honest_import_is_verified_without_downloading_its_weights_again(
    cache: WeightCache, tmp_path: Path
) -> None:
    with FakeHub() as hub:
        hub.add_repo("acme/tiny", WEIGHTS)
        source = HFSource("acme/tiny", endpoint=hub.url)
        other = WeightCache(tmp_path / "elsewhere")
        exported = other.ensure(source)
        with open(tmp_path / "good.tar", "wb") as handle:
            export_entry(other, exported.key, handle)
        with open_archive(str(tmp_path / "good.tar")) as stream:
            import_archive(cache, stream, name="good.tar")
        lfs_path = hub.cdn_path("acme/tiny", "model.safetensors")
        hub.cdn.remove(lfs_path)  # the weights can only come from the import, after checking them
        served = cache.ensure(source)
        assert served.imported_from is None
        assert (served / "model.safetensors").read_bytes() == WEIGHTS["model.safetensors"]


def test_b03_import_trust_serves_the_archive_as_is(cache: WeightCache, tmp_path: Path) -> None:
    evil = {"model.safetensors": b"mine" * 100}
    with FakeHub() as hub:
        hub.add_repo("acme/tiny", WEIGHTS)
        source = HFSource("acme/tiny", endpoint=hub.url)
        manifest = _manifest_for(source.identity, source.slug, source.resolve().version, evil)
        with open_archive(str(_archive(tmp_path / "mine.tar", manifest, evil))) as stream:
            import_archive(cache, stream, name="mine.tar", trust=True)
        served = cache.ensure(source)
        assert served.hit and served.imported_from == "archive mine.tar"
        assert (served / "model.safetensors").read_bytes() == evil["model.safetensors"]


# --- B04 and B05: gc, rm and repair remove only what is provably the store's ----------------------


@pytest.mark.parametrize("linked", ["entries", ".weightcache/staging", ".weightcache/trash"])
def test_b04_gc_and_rm_never_follow_a_symlinked_store_folder(
    cache: WeightCache, make_image_dir, tmp_path: Path, linked: str
) -> None:
    entry = cache.ensure(make_image_dir())
    folder = cache.store.root / linked
    outside = tmp_path / "bigger-disk"
    os.rename(folder, outside)
    folder.symlink_to(outside)
    victims = [outside / "important-project", outside / f"{entry.key}.1-abc"]
    for victim in victims:
        victim.mkdir(exist_ok=True)
        (victim / "data.txt").write_text("keep me")
    with pytest.raises(UnsafeStoreError, match="is a symlink"):
        cache.gc()
    with pytest.raises(UnsafeStoreError, match="is a symlink"):
        cache.remove(entry.key, force=True)
    assert all((victim / "data.txt").read_text() == "keep me" for victim in victims)


def test_b05_gc_in_a_directory_that_is_not_a_store_removes_nothing(tmp_path: Path, cli, monkeypatch) -> None:
    project = tmp_path / "project"
    folders = [project / "entries" / "src", project / "entries" / "build-000000000000"]
    folders.append(project / ".weightcache" / "staging" / "notes-000000000000.1-abc")
    for folder in folders:
        folder.mkdir(parents=True)
        (folder / "work.txt").write_text("mine")
    assert WeightCache(project).gc().removed == []
    monkeypatch.chdir(project)
    cli("gc", "--store", "")
    assert all((folder / "work.txt").exists() for folder in folders)


def test_b05_a_store_marks_itself_and_a_store_from_before_the_marker_is_adopted(
    cache: WeightCache, make_image_dir
) -> None:
    cache.ensure(make_image_dir())
    layout = cache.store.layout
    assert layout.is_marked()
    layout.marker_path.unlink()  # as a store written before the marker existed
    leftover = layout.staging_dir / "dead-000000000000.123-abc"
    stray = layout.staging_dir / "not-a-leftover-name"
    for folder in (leftover, stray):
        folder.mkdir()
    assert [item.key for item in cache.gc().removed] == ["dead-000000000000"]
    assert stray.exists() and layout.is_marked()


# --- B06: export never replaces what is not a regular file ----------------------------------------


def test_b06_export_writes_through_a_fifo_and_a_device_and_refuses_a_symlink(
    cache: WeightCache, make_image_dir, tmp_path: Path
) -> None:
    entry = cache.ensure(make_image_dir())
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = bytearray()
    reader = threading.Thread(target=lambda: received.extend(fifo.read_bytes()), daemon=True)
    reader.start()
    with _no_hang():
        export_to_path(cache, entry.key, str(fifo))
        reader.join()
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    with tarfile.open(fileobj=io.BytesIO(bytes(received))) as tar:
        assert tar.getnames()[0] == f"{entry.key}/manifest.json"
    if os.geteuid() == 0:
        null = tmp_path / "null"
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a private /dev/null
        export_to_path(cache, entry.key, str(null))
        assert stat.S_ISCHR(null.lstat().st_mode)
    target, link = tmp_path / "precious.txt", tmp_path / "link.tar"
    target.write_text("precious")
    link.symlink_to(target)
    with pytest.raises(ArchiveError, match="is a symlink"):
        export_to_path(cache, entry.key, str(link))
    assert link.is_symlink() and target.read_text() == "precious"
    export_to_path(cache, entry.key, str(tmp_path / "plain.tar"))
    assert tarfile.is_tarfile(tmp_path / "plain.tar")


# --- B10: inputs that ended in a traceback get one sentence ----------------------------------------


def test_b10_export_to_an_empty_path_a_directory_or_a_read_only_filesystem(
    cache: WeightCache, make_image_dir, tmp_path: Path, tmpfs
) -> None:
    entry = cache.ensure(make_image_dir())
    with pytest.raises(InvalidArgumentError, match="empty"):
        export_to_path(cache, entry.key, "")
    with pytest.raises(ArchiveError, match="is a directory"):
        export_to_path(cache, entry.key, str(tmp_path))
    read_only = tmpfs("1m")
    read_only.make_read_only()
    with pytest.raises(ArchiveError, match="Read-only file system"):
        export_to_path(cache, entry.key, str(read_only.path / "backup.tar"))


def test_b10_import_of_a_directory(cache: WeightCache, tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="is a directory"), open_archive(str(tmp_path)):
        pass


@pytest.mark.parametrize("compress", ["gz", "xz"])
@pytest.mark.parametrize("piped", [False, True])
def test_b10_a_truncated_compressed_archive(
    cache: WeightCache, make_image_dir, tmp_path: Path, compress: str, piped: bool, cli
) -> None:
    entry = cache.ensure(make_image_dir())
    plain = io.BytesIO()
    export_entry(cache, entry.key, plain)
    packed = gzip.compress(plain.getvalue()) if compress == "gz" else lzma.compress(plain.getvalue())
    truncated = tmp_path / f"cut.tar.{compress}"
    truncated.write_bytes(packed[: len(packed) // 2])
    other = WeightCache(tmp_path / "other")
    with open(truncated, "rb") as handle:
        stream = io.BufferedReader(_Pipe(handle)) if piped else handle
        with pytest.raises(ArchiveFormatError, match=r"truncated|not a readable tar"):
            import_archive(other, stream, name=truncated.name)
    assert other.list() == []
    result = cli("import", truncated, "--store", tmp_path / "third")
    assert result.exit_code == 1 and "truncated" in result.output


class _Pipe(io.RawIOBase):
    """A file seen as a pipe: readable, not seekable."""

    def __init__(self, handle: io.BufferedReader) -> None:
        self._handle = handle

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        data = self._handle.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"n" * 300 + ".bin": b"x"}, "too long"),
        ({"a": b"file", "a/b": b"file inside"}, "both a file and a directory"),
        ({"a/b": b"file inside", "a": b"file"}, "both a file and a directory"),
    ],
)
def test_b10_archive_names_the_filesystem_cannot_hold(
    cache: WeightCache, tmp_path: Path, files: dict[str, bytes], message: str, cli
) -> None:
    manifest = _manifest_for("dir:///somewhere", "somewhere", "stat-1", files)
    archive = _archive(tmp_path / "odd.tar", manifest, files)
    with pytest.raises(UnsafePathError, match=message), open_archive(str(archive)) as stream:
        import_archive(cache, stream, name="odd.tar")
    result = cli("import", archive, "--store", tmp_path / "other")
    assert result.exit_code == 1 and message in result.output


def test_b10_a_source_path_or_store_path_the_filesystem_refuses(
    cache: WeightCache, make_image_dir, tmp_path: Path
) -> None:
    too_long = tmp_path / "/".join(["d" * 200] * 25)
    with pytest.raises(InvalidSourceError, match="too long"):
        cache.ensure(ImageDirSource(too_long))
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(StoreNotWritableError, match="not a directory"):
        WeightCache(tmp_path / "a-file" / "store").ensure(make_image_dir())


# --- B11: a link destination inside the store ------------------------------------------------------


def test_b11_linking_into_the_store_is_refused(cache: WeightCache, make_image_dir) -> None:
    source = make_image_dir()
    entry = cache.ensure(source)
    for dest in (entry.path, cache.store.root / "elsewhere"):
        with pytest.raises(InvalidArgumentError, match="inside the store"):
            cache.ensure(source, link_to=dest)
    assert all(not path.is_symlink() and path.is_file() for path in entry.files)
    assert cache.verify(entry, deep=True).ok


# --- B12: FIFOs never block ----------------------------------------------------------------------


def test_b12_a_source_file_swapped_for_a_fifo_fails_instead_of_blocking(
    cache: WeightCache, make_image_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = ImageDirSource(make_image_dir({"weights.bin": b"w" * 1000, "config.json": b"{}"}))
    scan, scans = ImageDirSource._scan, []

    def scan_then_swap(self: ImageDirSource) -> list:  # type: ignore[type-arg]
        files = scan(self)
        scans.append(files)
        if len(scans) == 2:  # fetch's own scan: the file turns into a FIFO just after it
            weights = self.path / "weights.bin"
            weights.unlink()
            os.mkfifo(weights)
        return files

    monkeypatch.setattr(ImageDirSource, "_scan", scan_then_swap)
    with _no_hang(), pytest.raises(SourceChangedError, match="no longer a regular file"):
        cache.ensure(source)


def test_b12_prefetch_of_a_fifo_fails_instead_of_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "weights.safetensors"
    os.mkfifo(fifo)
    with _no_hang(), pytest.raises(LoadError, match="not a regular file"):
        prefetch(fifo)


# --- Also: archives of many directories stream; a store inside its own source -----------------------


def test_importing_many_directories_keeps_no_member_list(
    cache: WeightCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"w.bin": b"weights"}
    manifest = _manifest_for("dir:///dirs", "dirs", "stat-2", files)
    archive = tmp_path / "dirs.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in [("manifest.json", manifest.to_json()), ("files/w.bin", files["w.bin"])]:
            info = tarfile.TarInfo(f"{manifest.key}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for index in range(3000):
            info = tarfile.TarInfo(f"{manifest.key}/files/d{index}")
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
    most = 0
    read_next = tarfile.TarFile.next

    def counting_next(self: tarfile.TarFile) -> tarfile.TarInfo | None:
        nonlocal most
        member = read_next(self)
        most = max(most, len(self.members))
        return member

    monkeypatch.setattr(tarfile.TarFile, "next", counting_next)
    with open_archive(str(archive)) as stream:
        entry = import_archive(cache, stream, name="dirs.tar")
    assert (entry / "w.bin").read_bytes() == b"weights"
    assert most <= 2  # the manifest and the member being read, never one per directory


def test_a_store_inside_its_own_source_is_named(make_image_dir) -> None:
    source = make_image_dir({"weights.bin": b"w"})
    with pytest.raises(InvalidSourceError, match="contains a weightcache store"):
        WeightCache(source / "cache").ensure(source)


# --- The same attacks through the CLI: one sentence, exit 1 ------------------------------------------


def test_cli_export_and_import_paths_that_are_not_files(
    cache: WeightCache, make_image_dir, tmp_path: Path, cli
) -> None:
    entry = cache.ensure(make_image_dir())
    store = cache.store.root
    for args in (["export", entry.key, "-o", "", "--store", store], ["import", tmp_path, "--store", store]):
        result = cli(*args)
        assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.output
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = threading.Thread(target=fifo.read_bytes, daemon=True)
    reader.start()
    with _no_hang():
        assert cli("export", entry.key, "-o", fifo, "--store", store).exit_code == 0
        reader.join()
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    archive = tmp_path / "backup.tar"
    export_to_path(cache, entry.key, str(archive))
    result = cli("import", archive, "--trust", "--store", tmp_path / "other", "--json")
    assert result.exit_code == 0 and '"imported_from": "archive ' in result.stdout
