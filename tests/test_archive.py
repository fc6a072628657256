"""export and import: a streamed tar round trip, and archives that must be refused."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from weightcache import ChecksumMismatchError, IntegrityError, ManifestError, WeightCache
from weightcache._core.archive import export_entry, import_archive


@pytest.fixture
def exported(cache: WeightCache, make_image_dir, tmp_path: Path) -> tuple[str, Path]:
    entry = cache.ensure(make_image_dir())
    archive = tmp_path / "backup.tar"
    with open(archive, "wb") as handle:
        export_entry(cache, entry.key, handle)
    return entry.key, archive


def test_export_then_import_gives_the_same_entry(cli, exported, tmp_path: Path) -> None:
    key, archive = exported
    with tarfile.open(archive) as tar:
        assert tar.getnames()[0] == f"{key}/manifest.json"
        assert sorted(tar.getnames()[1:]) == [
            f"{key}/files/configs/sam2.yaml",
            f"{key}/files/groundingdino_swint_ogc.pth",
            f"{key}/files/sam2_hiera_large.pt",
        ]
    restored = tmp_path / "restored"
    result = cli("import", archive, "--store", restored, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["key"] == key and info["hit"] is False
    assert WeightCache(restored).verify(key, deep=True).ok
    again = cli("import", archive, "--store", restored)
    assert again.exit_code == 0 and "already in the store" in again.stdout


def test_export_and_import_stream_through_a_pipe(cache: WeightCache, make_image_dir, tmp_path: Path) -> None:
    entry = cache.ensure(make_image_dir())
    restored = tmp_path / "restored"
    cli = [sys.executable, "-m", "weightcache"]
    exporter = subprocess.Popen(
        [*cli, "export", entry.key, "-o", "-", "--store", str(cache.store.root)], stdout=subprocess.PIPE
    )
    importer = subprocess.run(
        [*cli, "import", "-", "--store", str(restored)],
        stdin=exporter.stdout,
        capture_output=True,
        check=False,
    )
    exporter.stdout.close()  # type: ignore[union-attr]
    assert exporter.wait() == 0 and importer.returncode == 0, importer.stderr
    assert WeightCache(restored).verify(entry.key, deep=True).ok


def rewrite(archive: Path, change) -> bytes:
    """The archive with ``change(name, data) -> data | None`` applied to each member (None drops it)."""
    out = io.BytesIO()
    with tarfile.open(archive) as source, tarfile.open(fileobj=out, mode="w") as target:
        for member in source.getmembers():
            data = change(member.name, source.extractfile(member).read())  # type: ignore[union-attr]
            if data is not None:
                member.size = len(data)
                target.addfile(member, io.BytesIO(data))
    return out.getvalue()


def import_bytes(store: Path, data: bytes) -> None:
    import_archive(WeightCache(store), io.BytesIO(data), name="tampered.tar")


def test_tampered_archives_publish_nothing(exported, tmp_path: Path) -> None:
    key, archive = exported
    big = f"{key}/files/sam2_hiera_large.pt"

    def flip_a_byte(name: str, data: bytes) -> bytes:
        return bytes([data[0] ^ 1]) + data[1:] if name == big else data

    def new_source(name: str, data: bytes) -> bytes:
        if not name.endswith("manifest.json"):
            return data
        manifest = json.loads(data)
        manifest["source"] = "dir:///somewhere/else"
        return json.dumps(manifest).encode()

    cases = [
        (flip_a_byte, ChecksumMismatchError, "differs from its manifest"),
        (lambda name, data: None if name == big else data, IntegrityError, r"lacks 1 file\(s\)"),
        (lambda name, data: data[:-1] if name == big else data, IntegrityError, "promised"),
        (new_source, ManifestError, "which its source and version do not give"),
    ]
    for number, (change, error, message) in enumerate(cases):
        store = tmp_path / f"store-{number}"
        with pytest.raises(error, match=message):
            import_bytes(store, rewrite(archive, change))
        assert WeightCache(store).list() == []
        assert not any((store / "entries").glob("*/manifest.json"))
        assert list((store / ".weightcache" / "staging").glob("*")) == []


def test_an_extra_member_is_refused(exported, tmp_path: Path) -> None:
    key, archive = exported
    data = bytearray(rewrite(archive, lambda name, data: data))
    extra = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(bytes(data))) as source,
        tarfile.open(fileobj=extra, mode="w") as tar,
    ):
        for member in source.getmembers():
            tar.addfile(member, source.extractfile(member))
        evil = tarfile.TarInfo(f"{key}/files/../../../etc/cron.d/evil")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
    with pytest.raises(IntegrityError, match="which its manifest does not list"):
        import_bytes(tmp_path / "restored", extra.getvalue())
    assert WeightCache(tmp_path / "restored").list() == []


def test_cli_errors_are_one_line(cli, cache: WeightCache, make_image_dir, tmp_path: Path) -> None:
    entry = cache.ensure(make_image_dir())
    (tmp_path / "not.tar").write_bytes(os.urandom(2048))
    victim = entry.path / "sam2_hiera_large.pt"
    victim.write_bytes(b"\0" * victim.stat().st_size)  # same size: only a rehash notices
    output = tmp_path / "out.tar"
    cases = [
        (["import", tmp_path / "not.tar", "--store", tmp_path / "other"], "is not a readable tar archive"),
        (["export", entry.key, "-o", output, "--store", cache.store.root], "differs from its manifest"),
        (["export", "no-such-key", "-o", output, "--store", cache.store.root], "no entry 'no-such-key'"),
        (
            ["export", entry.key, "-o", tmp_path / "nowhere" / "x.tar", "--store", cache.store.root],
            "could not write",
        ),
    ]
    for args, message in cases:
        result = cli(*args)
        assert result.exit_code == 1, args
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
        assert message in result.stderr
    assert not output.exists() and list(tmp_path.glob(".out.tar.*")) == []  # no half-written archive
    assert cli("import", tmp_path / "missing.tar", "--store", tmp_path / "other").exit_code == 2


def test_ls_marks_an_imported_entry(cli, exported, tmp_path: Path) -> None:
    _key, archive = exported
    restored = tmp_path / "restored"
    assert cli("import", archive, "--store", restored).exit_code == 0
    listing = cli("ls", "--store", restored)  # piped: tab-separated rows, values whole
    assert listing.exit_code == 0
    assert listing.stdout.splitlines()[1].split("\t")[1].endswith(" [imported]")
