"""link(): per file into a directory, or the whole entry at a path; atomic replace; no clobbering."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from weightcache import LinkError, WeightCache


@pytest.fixture
def entry(cache: WeightCache, make_image_dir):  # type: ignore[no-untyped-def]
    return cache.ensure(make_image_dir())


def test_ensure_links_each_file_into_the_app_path(cache: WeightCache, make_image_dir, tmp_path: Path) -> None:
    app_dir = tmp_path / "root" / "data" / "weights"
    entry = cache.ensure(make_image_dir(), link_to=app_dir)
    link = app_dir / "sam2_hiera_large.pt"
    assert link.is_symlink() and Path(os.readlink(link)) == entry.path / "sam2_hiera_large.pt"
    assert (app_dir / "configs" / "sam2.yaml").read_bytes() == b"model: sam2\n"


def test_per_file_leaves_other_files_alone_and_replaces_old_links(
    cache: WeightCache, entry, tmp_path: Path
) -> None:
    app_dir = tmp_path / "weights"
    app_dir.mkdir()
    (app_dir / "unrelated.txt").write_text("keep me")
    (app_dir / "sam2_hiera_large.pt").write_bytes(b"stale half-copied file")
    cache.link(entry, app_dir)
    assert (app_dir / "unrelated.txt").read_text() == "keep me"
    assert (app_dir / "sam2_hiera_large.pt").read_bytes() == (entry.path / "sam2_hiera_large.pt").read_bytes()
    assert not [name for name in os.listdir(app_dir) if name.endswith(".tmp")]


@pytest.mark.parametrize("mode", ["hardlink", "copy"])
def test_hardlink_and_copy_modes(cache: WeightCache, entry, tmp_path: Path, mode: str) -> None:
    cache.link(entry, tmp_path / "w", mode=mode)  # type: ignore[arg-type]
    linked = tmp_path / "w" / "groundingdino_swint_ogc.pth"
    assert not linked.is_symlink()
    assert linked.read_bytes() == (entry.path / "groundingdino_swint_ogc.pth").read_bytes()
    same_inode = linked.stat().st_ino == (entry.path / "groundingdino_swint_ogc.pth").stat().st_ino
    assert same_inode == (mode == "hardlink")


def test_whole_entry_as_a_symlink_replaced_atomically(
    cache: WeightCache, make_image_dir, tmp_path: Path
) -> None:
    source = make_image_dir()
    first = cache.ensure(source)
    model_dir = tmp_path / "models" / "current"
    cache.link(first, model_dir, whole=True)
    assert model_dir.is_symlink() and model_dir.resolve() == first.path.resolve()
    (source / "new.bin").write_bytes(b"v2")
    second = cache.ensure(source)
    cache.link(second, model_dir, whole=True)
    assert model_dir.resolve() == second.path.resolve() and (model_dir / "new.bin").read_bytes() == b"v2"


def test_whole_copy_builds_a_tree(cache: WeightCache, entry, tmp_path: Path) -> None:
    cache.link(entry, tmp_path / "tree", whole=True, mode="copy")
    assert (tmp_path / "tree" / "configs" / "sam2.yaml").read_bytes() == b"model: sam2\n"
    assert not (tmp_path / "tree").is_symlink()


def test_refuses_to_clobber_a_non_empty_directory(cache: WeightCache, entry, tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    with pytest.raises(LinkError, match="non-empty directory") as caught:
        cache.link(entry, precious, whole=True)
    assert "\n" not in str(caught.value)
    assert (precious / "notes.txt").read_text() == "mine"
    cache.link(entry, precious, whole=True, overwrite=True)
    assert precious.is_symlink()


def test_refuses_a_directory_where_a_file_goes(cache: WeightCache, entry, tmp_path: Path) -> None:
    blocker = tmp_path / "w" / "sam2_hiera_large.pt"
    blocker.mkdir(parents=True)
    (blocker / "x").write_text("x")
    with pytest.raises(LinkError, match="non-empty directory"):
        cache.link(entry, tmp_path / "w")


def test_per_file_into_a_file_path_is_an_error(cache: WeightCache, entry, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(LinkError, match="is a file"):
        cache.link(entry, tmp_path / "f")


def test_unknown_mode(cache: WeightCache, entry, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown link mode"):
        cache.link(entry, tmp_path / "w", mode="reflink")  # type: ignore[arg-type]


def test_hardlink_across_filesystems_says_what_to_do(cache: WeightCache, entry, tmpfs) -> None:
    other = tmpfs("8m")
    with pytest.raises(LinkError, match="another filesystem"):
        cache.link(entry, other.path / "w", mode="hardlink")
