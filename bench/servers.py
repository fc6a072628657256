"""The test data served on 127.0.0.1, for the cases that download: weightcache's own fake Hub and file server.

Both record every request they receive, so a case can count the bytes a client asked of the
source (a ``Range``'s length, else the whole file) without trusting the client's word.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from weightcache.testing import FakeHub, FileServer

REPO_ID = "bench/model"


@contextlib.contextmanager
def hub_serving(files: dict[str, Path], repo_id: str = REPO_ID) -> Iterator[tuple[FakeHub, str]]:
    """A fake Hub holding ``files`` (repo path -> local file) in ``repo_id`` on ``main``, and the commit sha.

    The fake Hub keeps content in memory, so this needs RAM for the whole model while it runs.
    """
    with FakeHub() as hub:
        sha = hub.add_repo(repo_id, {name: path.read_bytes() for name, path in files.items()})
        yield hub, sha


@contextlib.contextmanager
def file_serving(files: dict[str, Path], *, throttle: int | None = None) -> Iterator[tuple[FileServer, str]]:
    """A file server streaming ``files`` from disk at ``/<name>``, and the ``|``-joined URI of them all."""
    with FileServer(throttle=throttle) as server:
        urls = [server.add(f"/{name}", path) for name, path in files.items()]
        yield server, " | ".join(urls)


def files_of(directory: Path) -> dict[str, Path]:
    """The files directly in ``directory``, by name."""
    return {path.name: path for path in sorted(directory.iterdir()) if path.is_file()}


def hub_bytes_requested(hub: FakeHub, files: dict[str, Path]) -> int:
    """Body bytes asked of the Hub's CDN for ``files`` so far."""
    sizes = {hub.cdn_path(REPO_ID, name): path.stat().st_size for name, path in files.items()}
    return bytes_requested(hub.cdn, sizes)


def bytes_requested(server: FileServer, sizes: dict[str, int]) -> int:
    """Body bytes GET requests asked of ``server`` for the paths in ``sizes`` (path -> file size)."""
    total = 0
    for request in server.requests:
        if request.method == "GET" and request.path in sizes:
            total += _range_length(request.headers.get("range"), sizes[request.path])
    return total


def _range_length(header: str | None, size: int) -> int:
    if not header or not header.startswith("bytes=") or "," in header:
        return size
    first, _, last = header[len("bytes=") :].partition("-")
    if not first:
        return min(size, int(last))
    end = min(size - 1, int(last)) if last else size - 1
    return max(0, end - int(first) + 1)
