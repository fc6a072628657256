"""The fake Hub's data: repositories, commits and blobs, with git and LFS ids computed as the Hub does."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

#: Suffixes a Hub repository's default ``.gitattributes`` stores with LFS (plus any file of 10 MiB or more).
LFS_SUFFIXES = frozenset(
    {
        ".bin",
        ".ckpt",
        ".gguf",
        ".h5",
        ".model",
        ".msgpack",
        ".npz",
        ".onnx",
        ".pkl",
        ".pt",
        ".pth",
        ".safetensors",
    }
)
_LFS_MIN_BYTES = 10 * 1024 * 1024
_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")


def git_blob_id(data: bytes) -> str:
    """The git object id of a blob with this content (what the Hub lists as a file's ``oid``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class Blob:
    """One file's content as the Hub stores it: in git, or in LFS behind a pointer."""

    data: bytes
    oid: str
    sha256: str | None

    @classmethod
    def of(cls, path: str, data: bytes) -> Blob:
        """Store ``data`` the way the Hub would for a file named ``path``."""
        if PurePosixPath(path).suffix not in LFS_SUFFIXES and len(data) < _LFS_MIN_BYTES:
            return cls(data, git_blob_id(data), None)
        sha256 = hashlib.sha256(data).hexdigest()
        return cls(data, git_blob_id(_lfs_pointer(sha256, len(data))), sha256)

    @property
    def cdn_path(self) -> str:
        """Where the fake Hub's CDN serves this content."""
        return f"/lfs/{self.sha256}" if self.sha256 else f"/git/{self.oid}"

    def tree_entry(self, path: str) -> dict[str, object]:
        """This file as ``/api/{type}s/{repo}/tree/{rev}`` lists it."""
        entry: dict[str, object] = {"type": "file", "oid": self.oid, "size": len(self.data), "path": path}
        if self.sha256:
            pointer_size = len(_lfs_pointer(self.sha256, len(self.data)))
            entry["lfs"] = {"oid": self.sha256, "size": len(self.data), "pointerSize": pointer_size}
        return entry


@dataclass
class Repo:
    """A repository: its commits, branches and tags, and who may read it."""

    repo_type: str
    repo_id: str
    private: bool = False
    gated: bool = False
    readers: set[str] = field(default_factory=set)
    commits: dict[str, dict[str, Blob]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)

    def commit(self, changes: dict[str, bytes | None], *, branch: str) -> str:
        """Apply ``changes`` (``None`` deletes a file) on top of ``branch``, move it, return the new sha."""
        parent = self.refs.get(branch)
        files = dict(self.commits[parent]) if parent else {}
        for path, data in changes.items():
            if data is None:
                files.pop(path, None)
            else:
                files[path] = Blob.of(path, data)
        listing = "\n".join(f"{path} {blob.oid}" for path, blob in sorted(files.items()))
        sha = hashlib.sha1(f"{parent}\n{len(self.commits)}\n{listing}".encode()).hexdigest()
        self.commits[sha] = files
        self.refs[branch] = sha
        return sha

    def resolve(self, revision: str) -> str | None:
        """The commit sha a branch, tag or sha names, or ``None``."""
        if revision in self.refs:
            return self.refs[revision]
        return revision if _COMMIT_SHA.match(revision) and revision in self.commits else None

    def tree(self, sha: str, prefix: str, *, recursive: bool) -> list[dict[str, object]]:
        """The tree listing under ``prefix`` at ``sha``: files and directories, sorted by path."""
        entries: dict[str, dict[str, object]] = {}
        base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        for path, blob in self.commits[sha].items():
            if not path.startswith(base):
                continue
            parts = path[len(base) :].split("/")
            for depth in range(1, len(parts)):
                if depth > 1 and not recursive:
                    break
                folder = base + "/".join(parts[:depth])
                entries[folder] = {
                    "type": "directory",
                    "oid": git_blob_id(folder.encode()),
                    "size": 0,
                    "path": folder,
                }
            if len(parts) == 1 or recursive:
                entries[path] = blob.tree_entry(path)
        return [entries[path] for path in sorted(entries)]


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
