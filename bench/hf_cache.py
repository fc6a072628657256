"""A Hugging Face cache built locally, laid out exactly as ``snapshot_download`` leaves a finished download.

``models--org--name/{blobs/<sha256>, snapshots/<commit>/<path> -> ../../blobs/<sha256>, refs/main,
trees/<commit>.json}``. Blobs are hardlinks to the files given, so no bytes are copied and nothing
is downloaded. The tree listing makes ``snapshot_download(local_files_only=True)`` check that every
file is present, as it does after a real download.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from huggingface_hub import get_cached_repo_tree
from huggingface_hub.file_download import repo_folder_name


def build_hf_cache(cache_dir: Path, repo_id: str, files: dict[str, Path], sha256s: dict[str, str]) -> None:
    """Lay out ``files`` (repo path -> local file) as a cached snapshot of ``repo_id`` at one commit."""
    storage = cache_dir / repo_folder_name(repo_id=repo_id, repo_type="model")
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    (storage / "blobs").mkdir(parents=True)
    listing = {}
    for repo_path, local in files.items():
        blob = storage / "blobs" / sha256s[repo_path]
        os.link(local, blob)
        link = storage / "snapshots" / commit / repo_path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
        size = blob.stat().st_size
        listing[repo_path] = {
            "size": size,
            "blob_id": hashlib.sha1(repo_path.encode()).hexdigest(),
            "lfs_sha256": sha256s[repo_path],
            "lfs_size": size,
        }
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(commit)
    (storage / "trees").mkdir()
    (storage / "trees" / f"{commit}.json").write_text(json.dumps({"format_version": 1, "files": listing}))
    cached = get_cached_repo_tree(repo_id, cache_dir=cache_dir)
    if len(cached) != len(files):
        raise RuntimeError(
            f"huggingface_hub reads {len(cached)} of {len(files)} files from the cache built in {storage}; "
            "its cache format changed: update bench/hf_cache.py"
        )
