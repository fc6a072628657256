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
from weightcache._core.registry import SourceLike, register_source
from weightcache._core.staging import Staging
from weightcache.providers.base import Plan
from weightcache.providers.sources.hf import HFSource
from weightcache.providers.sources.url import URLSource
from weightcache.testing import FakeHub, FileServer

KIND_NAMES = ["dir", "stream", "hf", "https"]
STREAM_CHUNK = 64 * 1024  # small, so a kill lands mid-file often
HTTP_TEST_TIMEOUT = 2.0  # seconds without data before a URL download retries (a hang test waits this)
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

    def resolve(self) -> Plan:
        """A hash of every name and content hash: the "commit" this repository is at."""
        return Plan("rev-" + _sha256(repr(sorted(self._listing().items())).encode())[:20])

    def fetch(self, plan: Plan, staging: Staging) -> None:
        """Reuse unchanged files, stream half of the rest in chunks, adopt the other half."""
        listing = self._listing()
        assert self.resolve() == plan, "the served repository changed under the test"
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
class Wire:
    """Where a served file's bytes travel, to inject faults there: a server, the path on it."""

    server: FileServer
    path: str
    #: Serve the file right again: drops its pending faults and corruption.
    clear: Callable[[], None]


@dataclass(frozen=True)
class SourceKind:
    """How to serve given bytes as a source of one kind."""

    name: str
    serve: Callable[[str, dict[str, bytes]], SourceLike]
    #: Kill points (tests/reliability/crash.py) its fetch never passes through.
    never_reaches: tuple[str, ...] = ()
    #: Environment a separate process needs to use the sources (the fake Hub's endpoint).
    env: dict[str, str] | None = None
    #: For remote kinds: where model MODEL's file NAME travels (``wire(model, name)``).
    wire: Callable[[str, str], Wire] | None = None


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
            models = _HubModels(hub)
            yield SourceKind(name, models.serve, env={"HF_ENDPOINT": hub.url}, wire=models.wire)
    else:
        with FileServer() as server:
            served = _ServerModels(server)
            yield SourceKind(name, served.serve, never_reaches=("adopt-hash",), wire=served.wire)


class _HubModels:
    """Models as repositories ``acme/MODEL`` on a fake Hub; serving one again commits on main."""

    def __init__(self, hub: FakeHub) -> None:
        self.hub = hub
        self.files: dict[str, dict[str, bytes]] = {}

    def serve(self, model: str, files: dict[str, bytes]) -> SourceLike:
        repo = f"acme/{model}"
        if model not in self.files:
            self.hub.add_repo(repo, files)
        else:
            self.hub.commit(repo, {**dict.fromkeys(set(self.files[model]) - set(files)), **files})
        self.files[model] = dict(files)
        return HFSource(repo, endpoint=self.hub.url)

    def wire(self, model: str, name: str) -> Wire:
        path = self.hub.cdn_path(f"acme/{model}", name)
        data = self.files[model][name]
        etag = f'"{_sha256(data)}"' if path.startswith("/lfs/") else f'"{path.rsplit("/", 1)[1]}"'
        return Wire(self.hub.cdn, path, lambda: self.hub.cdn.add(path, data, etag=etag))


class _ServerModels:
    """Models as files ``/MODEL/PATH`` on a file server: one URL source each, pinned by SHA-256."""

    def __init__(self, server: FileServer) -> None:
        self.server = server
        self.files: dict[str, dict[str, bytes]] = {}

    def serve(self, model: str, files: dict[str, bytes]) -> SourceLike:
        for gone in set(self.files.get(model, {})) - set(files):
            self.server.remove(f"/{model}/{gone}")
        urls = {name: self.server.add(f"/{model}/{name}", data) for name, data in files.items()}
        self.files[model] = dict(files)
        hashes = {name: _sha256(data) for name, data in files.items()}
        return URLSource(urls, sha256=hashes, timeout=HTTP_TEST_TIMEOUT, retries=3)

    def wire(self, model: str, name: str) -> Wire:
        path, data = f"/{model}/{name}", self.files[model][name]
        return Wire(self.server, path, lambda: self.server.add(path, data))
