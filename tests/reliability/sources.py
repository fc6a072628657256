"""Source kinds for the reliability suite: "a source of kind X serving these bytes", one helper for all.

``dir`` is an image directory; ``hf`` a repository on a local fake Hub (served through the real
huggingface_hub client); ``https`` files on a local HTTP server, pinned by SHA-256 (byte
ranges, resume); ``stream`` a directory served the way a third-party remote source would use the
staging API (``write_stream`` in small chunks with a promised size and SHA-256, ``adopt``,
``try_reuse``), registered as ``teststream://``. ``with source_kind(name, root) as kind`` starts
what the kind needs; ``kind.serve(model, files)`` serves ``files`` (relative path -> bytes) as
source ``model`` and returns it; serving the same model again is its next version.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from weightcache import ImageDirSource, Source
from weightcache.providers.hf import HFSource
from weightcache.providers.url import URLSource
from weightcache.registry import SourceLike, register_source
from weightcache.staging import Staging
from weightcache.testing import FakeHub, FileServer

KIND_NAMES = ["dir", "stream", "hf", "https"]
STREAM_CHUNK = 64 * 1024  # small, so a kill lands mid-file often
_WRITES = itertools.count()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
            path.relative_to(self.root).as_posix(): (path.stat().st_size, _sha256(path.read_bytes()))
            for path in files
        }

    def resolve(self) -> str:
        """A hash of every name and content hash: the "commit" this repository is at."""
        return "rev-" + _sha256(repr(sorted(self._listing().items())).encode())[:20]

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


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        yield from iter(lambda: handle.read(STREAM_CHUNK), b"")


register_source(StreamSource.scheme, StreamSource.from_uri)


@dataclass(frozen=True)
class SourceKind:
    """How to serve given bytes as a source of one kind."""

    name: str
    serve: Callable[[str, dict[str, bytes]], SourceLike]
    #: Kill points (tests/reliability/crash.py) its fetch never passes through.
    never_reaches: tuple[str, ...] = ()
    #: Environment a separate process needs to use the sources (the fake Hub's endpoint).
    env: dict[str, str] | None = None


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


@contextlib.contextmanager
def source_kind(name: str, root: Path) -> Iterator[SourceKind]:
    """Start what kind ``name`` needs (a fake Hub, a file server) for the ``with`` block."""
    if name == "dir":
        yield SourceKind(
            name,
            lambda model, files: ImageDirSource(write_tree(root / model, files)),
            never_reaches=("adopt-hash", "reuse-link"),
        )
    elif name == "stream":
        yield SourceKind(name, lambda model, files: StreamSource(write_tree(root / model, files)))
    elif name == "hf":
        with FakeHub() as hub:
            yield SourceKind(name, partial_hub(hub), env={"HF_ENDPOINT": hub.url})
    else:
        with FileServer() as server:
            yield SourceKind(name, partial_server(server), never_reaches=("adopt-hash",))


def partial_hub(hub: FakeHub) -> Callable[[str, dict[str, bytes]], SourceLike]:
    """Serve a model as repository ``acme/MODEL`` (each call a new commit on main)."""
    served: dict[str, set[str]] = {}

    def serve(model: str, files: dict[str, bytes]) -> SourceLike:
        repo = f"acme/{model}"
        if model not in served:
            hub.add_repo(repo, files)
        else:
            hub.commit(repo, {**dict.fromkeys(served[model] - set(files)), **files})
        served[model] = set(files)
        return HFSource(repo, endpoint=hub.url)

    return serve


def partial_server(server: FileServer) -> Callable[[str, dict[str, bytes]], SourceLike]:
    """Serve a model's files at ``/MODEL/PATH``, as one URL source pinned by their SHA-256s."""
    served: dict[str, set[str]] = {}

    def serve(model: str, files: dict[str, bytes]) -> SourceLike:
        for gone in served.get(model, set()) - set(files):
            server.remove(f"/{model}/{gone}")
        urls = {name: server.add(f"/{model}/{name}", data) for name, data in files.items()}
        served[model] = set(files)
        return URLSource(urls, sha256={name: _sha256(data) for name, data in files.items()})

    return serve
