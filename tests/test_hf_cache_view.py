"""An HF cache view of an entry, read by the real huggingface_hub and transformers with no request."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import hf_hub_download, scan_cache_dir, snapshot_download

from weightcache import WeightCache
from weightcache.testing import FakeHub

from .helpers import serving_hub

FILES = {
    "config.json": b'{"hidden_size": 32}',
    "model.safetensors": os.urandom(300_000),
    "tokenizer/vocab.json": b'{"a": 0}',
}
DEAD_ENDPOINT = "http://127.0.0.1:9"  # nothing listens there: any request fails at once


def run_with_env(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh Python process with ``env`` added to the environment."""
    return subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )


def tiny_bert(folder: Path) -> dict[str, bytes]:
    """A tiny random BERT saved by transformers, as its files (skips without the examples extra)."""
    pytest.importorskip("transformers", reason="needs transformers (pip install '.[examples]')")
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    BertModel(config).save_pretrained(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with serving_hub(monkeypatch, FILES) as running:
        yield running


def test_huggingface_hub_reads_the_view_with_no_request_and_no_copy(
    cache: WeightCache, hub: FakeHub, tmp_path: Path
) -> None:
    view = tmp_path / "hf"
    entry = cache.ensure("hf://acme/tiny", hf_cache=view)
    served = hub.count()
    repo_dir = view / "models--acme--tiny"
    assert (repo_dir / "refs" / "main").read_text() == entry.version

    snapshot = snapshot_download("acme/tiny", cache_dir=view, local_files_only=True)
    assert Path(snapshot) == repo_dir / "snapshots" / entry.version
    for name, data in FILES.items():
        assert (Path(snapshot) / name).read_bytes() == data
        assert os.path.samefile(Path(snapshot) / name, entry.path / name)  # the entry's own file
    pinned = hf_hub_download("acme/tiny", "config.json", cache_dir=view, revision=entry.version)
    assert Path(pinned).read_bytes() == FILES["config.json"]
    assert hub.count() == served
    [repo] = scan_cache_dir(view).repos  # huggingface_hub's own scan accepts the layout
    assert repo.repo_id == "acme/tiny" and repo.size_on_disk == sum(map(len, FILES.values()))

    blobs = sorted(p.name for p in (repo_dir / "blobs").iterdir())
    lfs = next(r for r in entry.manifest.files if r.sha256)
    assert lfs.sha256 in blobs and all(len(name) in (40, 64) for name in blobs)
    # Online, huggingface_hub asks which commit main is (HEAD) and downloads nothing.
    online = hf_hub_download("acme/tiny", "model.safetensors", cache_dir=view, endpoint=hub.url)
    assert os.path.samefile(online, entry.path / "model.safetensors")
    assert [request.method for request in hub.requests[-1:]] == ["HEAD"] and hub.count() == served + 1
    # A second ensure finds the view in place; the hub is gone and nothing changes.
    hub.close()
    assert cache.ensure("hf://acme/tiny", hf_cache=view).hit
    by_branch = hf_hub_download("acme/tiny", "model.safetensors", cache_dir=view, endpoint=DEAD_ENDPOINT)
    assert Path(by_branch).read_bytes() == FILES["model.safetensors"]


def test_from_pretrained_with_hf_hub_cache_and_offline_reads_the_view(
    cache: WeightCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = tiny_bert(tmp_path / "bert")
    view = tmp_path / "hf"
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        hub.add_repo("acme/tiny-bert", files)
        cache.ensure("hf://acme/tiny-bert", hf_cache=view)
    # The hub is stopped; unchanged loading code runs in a fresh process, in the environment Modal apps set.
    # The same process then loads the saved folder by path, the reference (one torch import, not two).
    code = (
        "from transformers import BertModel\n"
        "for name in ['acme/tiny-bert', {folder!r}]:\n"
        "    model = BertModel.from_pretrained(name)\n"
        "    print(sum(float(p.sum()) for p in model.parameters()))\n"
    ).format(folder=str(tmp_path / "bert"))
    env = {"HF_HUB_CACHE": str(view), "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": DEAD_ENDPOINT}
    result = run_with_env(code, env)
    assert result.returncode == 0, result.stderr
    from_view, from_folder = result.stdout.splitlines()
    assert from_view == from_folder


@pytest.mark.parametrize("repo_type", ["dataset", "space"])
def test_datasets_and_spaces_get_their_own_view(
    cache: WeightCache, hub: FakeHub, tmp_path: Path, repo_type: str
) -> None:
    hub.add_repo("acme/rows", {"data.csv": b"a,b\n1,2\n"}, repo_type=repo_type)
    view = tmp_path / "hf"
    entry = cache.ensure(f"hf://{repo_type}s/acme/rows", hf_cache=view)
    served = hub.count()
    folder = snapshot_download("acme/rows", repo_type=repo_type, cache_dir=view, local_files_only=True)
    assert Path(folder) == view / f"{repo_type}s--acme--rows" / "snapshots" / entry.version
    assert (Path(folder) / "data.csv").read_bytes() == b"a,b\n1,2\n" and hub.count() == served


def test_rm_and_gc_take_the_view_with_the_entry(cache: WeightCache, hub: FakeHub, tmp_path: Path) -> None:
    view = tmp_path / "hf"
    old = cache.ensure("hf://acme/tiny", hf_cache=view)
    hub.commit("acme/tiny", {"config.json": b'{"hidden_size": 64}'})
    new = cache.ensure("hf://acme/tiny", hf_cache=view, refresh=True)
    cache.ensure(f"hf://acme/tiny@{old.version}", hf_cache=view)  # the shared blob now links into old
    cache.release(old)
    repo_dir = view / "models--acme--tiny"
    assert (repo_dir / "refs" / "main").read_text() == new.version

    report = cache.gc(keep=1)
    assert [removal.key for removal in report.removed] == [old.key]
    assert not (repo_dir / "snapshots" / old.version).exists()
    # The weights did not change between the commits: the new view still reads them.
    snapshot = snapshot_download("acme/tiny", cache_dir=view, local_files_only=True)
    assert (Path(snapshot) / "model.safetensors").read_bytes() == FILES["model.safetensors"]

    cache.release(new)
    cache.remove(new)
    assert not (repo_dir / "snapshots").exists() or not any((repo_dir / "snapshots").iterdir())
    assert not (repo_dir / "refs" / "main").exists()
    assert not any((repo_dir / "blobs").iterdir())


def test_cli_ensure_lays_out_the_view(cli, hub: FakeHub, store_dir: Path, tmp_path: Path) -> None:
    view = tmp_path / "hf"
    result = cli("ensure", "hf://acme/tiny", "--store", str(store_dir), "--hf-cache", str(view))
    assert result.exit_code == 0, result.output
    snapshot = snapshot_download("acme/tiny", cache_dir=view, local_files_only=True)
    assert (Path(snapshot) / "config.json").read_bytes() == FILES["config.json"]


def test_a_source_that_is_not_hf_is_refused(cache: WeightCache, make_image_dir, tmp_path: Path) -> None:
    from weightcache import InvalidSourceError

    with pytest.raises(InvalidSourceError, match="hf://"):
        cache.ensure(make_image_dir({"a.bin": b"x"}), hf_cache=tmp_path / "hf")


def test_removing_one_of_two_views_of_a_commit_leaves_the_other_whole(
    cache: WeightCache, hub: FakeHub, tmp_path: Path
) -> None:
    view = tmp_path / "hf"
    configs = cache.ensure("hf://acme/tiny?allow=*.json", hf_cache=view)
    whole = cache.ensure("hf://acme/tiny", hf_cache=view)
    assert configs.version == whole.version and configs.key != whole.key
    cache.release(configs)
    cache.remove(configs)
    snapshot = snapshot_download("acme/tiny", cache_dir=view, local_files_only=True)
    for name, data in FILES.items():
        assert (Path(snapshot) / name).read_bytes() == data
