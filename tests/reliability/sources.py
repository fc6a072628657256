"""Source kinds for the reliability suite: "a source of kind X serving these bytes", one fixture for all.

``dir`` is the core's image-directory source. ``stream`` stands in for a remote source until the
Hub and URL sources land: it serves a directory the way they do, through the staging API a
remote source uses (``write_stream`` in small chunks with a promised size and SHA-256,
``adopt`` of a file a third-party downloader wrote, ``try_reuse`` for unchanged files), and it is
offline-first (its version is remembered in a ref). Adding the Hub and URL kinds is one entry
each in :data:`KINDS`.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from weightcache import ImageDirSource, Source
from weightcache.registry import SourceLike, register_source
from weightcache.staging import Staging

STREAM_CHUNK = 64 * 1024  # small, so a kill lands mid-file often
_WRITES = itertools.count()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        yield from iter(lambda: handle.read(STREAM_CHUNK), b"")


class StreamSource(Source):
    """A directory served as a remote repository would be: ``teststream:///abs/dir``."""

    scheme = "teststream"
    offline_first = True

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def from_uri(cls, uri: str) -> StreamSource:
        """Parse ``teststream:///abs/dir``."""
        return cls(Path(uri[len("teststream://") :]))

    @property
    def uri(self) -> str:
        """The served directory as a URI."""
        return f"teststream://{self.root}"

    @property
    def slug(self) -> str:
        """The directory's name."""
        return self.root.name

    def _listing(self) -> dict[str, tuple[int, str]]:
        files = sorted(path for path in self.root.rglob("*") if path.is_file())
        return {
            path.relative_to(self.root).as_posix(): (path.stat().st_size, _sha256(path)) for path in files
        }

    def resolve(self) -> str:
        """A hash of every name and content hash: the "commit" this repository is at."""
        listing = self._listing()
        return "rev-" + hashlib.sha256(repr(sorted(listing.items())).encode()).hexdigest()[:20]

    def fetch(self, version: str, staging: Staging) -> None:
        """Reuse unchanged files, stream half of the rest in chunks, adopt the other half."""
        listing = self._listing()
        assert self.resolve() == version, "the served repository changed under the test"
        staging.plan({name: size for name, (size, _sha) in listing.items()})
        for index, (name, (size, sha256)) in enumerate(listing.items()):
            if staging.try_reuse(name, sha256=sha256, size=size) is not None:
                continue
            if index % 2:
                staging.path_for(name).write_bytes((self.root / name).read_bytes())
                staging.adopt(name, size=size, sha256=sha256)
            else:
                staging.write_stream(name, _chunks(self.root / name), size=size, sha256=sha256)


register_source(StreamSource.scheme, StreamSource.from_uri)


@dataclass(frozen=True)
class SourceKind:
    """How to serve given bytes as a source of one kind."""

    name: str
    serve: Callable[[Path, dict[str, bytes]], SourceLike]
    #: Kill points (tests/reliability/crash.py) its fetch never passes through.
    never_reaches: tuple[str, ...] = ()


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    """Make ``root`` hold exactly ``files`` (relative path -> bytes); return it."""
    for existing in sorted(root.rglob("*"), reverse=True) if root.exists() else []:
        if existing.is_file():
            existing.unlink()
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        # Distinct mtimes for every write even on a coarse clock, so every rewrite is a new dir version.
        stamp = time.time_ns() + next(_WRITES)
        os.utime(path, ns=(stamp, stamp))
    return root


KINDS: dict[str, SourceKind] = {
    "dir": SourceKind(
        "dir",
        lambda root, files: ImageDirSource(write_tree(root, files)),
        never_reaches=("adopt-hash", "reuse-link"),
    ),
    "stream": SourceKind("stream", lambda root, files: StreamSource(write_tree(root, files))),
}
