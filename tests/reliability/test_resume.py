"""A killed populate resumes, and the integrity rules hold through kills, herds and bad servers.

Each case runs real processes against a real local server: a child downloads and, when its
progress callback sees a given share of the bytes written, writes a marker and stops; the
parent then SIGKILLs it (no cleanup runs, as when a container dies) and counts, on the
server's side, the bytes the next ``ensure`` asks for again.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from weightcache import ChecksumMismatchError, WeightCache
from weightcache._core.staging import Staging
from weightcache._transport.resume import Journal
from weightcache.testing import FakeHub, FileServer

MIB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]

#: The child: ensure URI into STORE; at FRACTION of the bytes written, write MARKER and then wait
#: for GO to exist ("kill": forever). It prints the blake3 of each file it got, as JSON.
CHILD = r"""
import json, os, sys, threading, time
from weightcache import WeightCache
store, uri, marker, fraction, go = sys.argv[1:6]
state = {"total": None, "got": 0, "marked": False}
lock = threading.Lock()
def progress(event):
    with lock:  # a thread stopped here holds the lock: every other download thread stops too
        if event.kind == "plan":
            state["total"] = event.total_bytes
        elif event.kind == "advance" and not state["marked"]:
            state["got"] += event.nbytes
            if state["got"] >= float(fraction) * state["total"]:
                state["marked"] = True
                with open(marker + ".tmp", "w") as handle:
                    handle.write(str(state["got"]))
                os.rename(marker + ".tmp", marker)
                while not os.path.exists(go):
                    time.sleep(0.01)
entry = WeightCache(store).ensure(uri, progress=progress)
print(json.dumps({r.path: r.sha256 for r in entry.manifest.files}), flush=True)
"""


def child(
    store: Path, uri: str, marker: Path, fraction: float, go: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store), uri, str(marker), str(fraction), str(go)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, process: subprocess.Popen[str]) -> None:
    """Wait until the child writes ``path`` (it stops there), failing if it exits first."""
    deadline = time.monotonic() + 120
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"the child exited before the kill point: {process.stderr.read()}")  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the child never reached the kill point"
        time.sleep(0.01)


def kill_at(
    store: Path, uri: str, fraction: float, tmp_path: Path, env: dict[str, str] | None = None
) -> None:
    """Run a child until ``fraction`` of the bytes are written, then SIGKILL it."""
    marker = tmp_path / f"marker-{fraction}"
    process = child(store, uri, marker, fraction, tmp_path / "never", env)
    wait_for(marker, process)
    process.send_signal(signal.SIGKILL)
    process.wait()


def body_bytes(server: FileServer, since: int = 0) -> int:
    """Body bytes the GETs from request number ``since`` on asked for (one-byte probes left out)."""
    total = 0
    for request in server.requests[since:]:
        if request.method != "GET":
            continue
        asked = request.headers.get("range", "")
        first, _, last = asked.removeprefix("bytes=").partition("-")
        length = int(last) - int(first) + 1 if asked else server_size(server, request.path)
        total += length if length > 1 else 0
    return total


def server_size(server: FileServer, path: str) -> int:
    return server._resources[path].size  # the test's own server


def serve(server: FileServer, rng: random.Random, sizes: dict[str, int], *, pinned: bool = True):
    """Serve files of ``sizes``; return the URI of them all and their contents."""
    contents = {name: rng.randbytes(size) for name, size in sizes.items()}
    parts = []
    for name, data in contents.items():
        url = server.add(f"/{name}", data)
        parts.append(f"{url}#sha256={hashlib.sha256(data).hexdigest()}" if pinned else url)
    return " | ".join(parts), contents


def check(entry_files: dict[str, Path], contents: dict[str, bytes]) -> None:
    assert {name: path.read_bytes() for name, path in entry_files.items()} == contents


def ensure_files(store: Path, uri: str) -> dict[str, Path]:
    entry = WeightCache(store).ensure(uri)
    return {record.path: entry.path / record.path for record in entry.manifest.files}


SHAPES = {"one file": {"model.bin": 24 * MIB}, "8 files": {f"shard-{i}.bin": 8 * MIB for i in range(8)}}


@pytest.mark.parametrize("pinned", [True, False], ids=["pinned", "unpinned"])
@pytest.mark.parametrize("shape", SHAPES)
def test_a_populate_killed_at_70_percent_fetches_at_most_40_percent_again(
    server: FileServer, store_dir: Path, tmp_path: Path, rng, shape: str, pinned: bool
) -> None:
    uri, contents = serve(server, rng, SHAPES[shape], pinned=pinned)
    kill_at(store_dir, uri, 0.7, tmp_path)
    before = len(server.requests)
    check(ensure_files(store_dir, uri), contents)
    total = sum(map(len, contents.values()))
    assert body_bytes(server, before) <= 0.4 * total
    assert not list((store_dir / ".weightcache" / "staging").iterdir())  # nothing left behind


def test_a_hub_download_killed_at_70_percent_resumes_too(
    store_dir: Path, tmp_path: Path, rng, monkeypatch: pytest.MonkeyPatch
) -> None:
    shards = {f"model-0000{i}-of-00004.safetensors": rng.randbytes(6 * MIB) for i in range(4)}
    with FakeHub() as hub:
        hub.add_repo("acme/sharded", {**shards, "config.json": b"{}"})
        kill_at(store_dir, "hf://acme/sharded", 0.7, tmp_path, env={"HF_ENDPOINT": hub.url})
        before = len(hub.cdn.requests)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        files = ensure_files(store_dir, "hf://acme/sharded")
        assert body_bytes(hub.cdn, before) <= 0.4 * sum(map(len, shards.values()))
    check({name: path for name, path in files.items() if name in shards}, shards)


def test_killed_at_40_percent_then_rerun_gives_every_file_right(
    server: FileServer, store_dir: Path, tmp_path: Path, rng
) -> None:
    uri, contents = serve(server, rng, SHAPES["8 files"])
    kill_at(store_dir, uri, 0.4, tmp_path)
    check(ensure_files(store_dir, uri), contents)


def test_a_file_changed_on_the_server_after_the_kill_is_fetched_afresh(
    server: FileServer, store_dir: Path, tmp_path: Path, rng
) -> None:
    uri, _ = serve(server, rng, SHAPES["one file"], pinned=False)
    kill_at(store_dir, uri, 0.7, tmp_path)
    new = rng.randbytes(SHAPES["one file"]["model.bin"])
    server.add("/model.bin", new)  # a new ETag: the bytes on disk are of another version
    check(ensure_files(store_dir, uri), {"model.bin": new})


def test_four_processes_at_once_fetch_the_bytes_once_and_all_get_them_right(
    server: FileServer, store_dir: Path, tmp_path: Path, rng
) -> None:
    uri, contents = serve(server, rng, SHAPES["8 files"])
    go, marker = tmp_path / "go", tmp_path / "first-at-70"
    first = child(store_dir, uri, marker, 0.7, go)
    wait_for(marker, first)  # the others start while the first is 70 % through
    others = [child(store_dir, uri, tmp_path / f"m{i}", 2.0, go) for i in range(3)]
    go.touch()
    expected = {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}
    for process in [first, *others]:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert json.loads(out) == expected
    assert body_bytes(server) == sum(map(len, contents.values()))


def test_a_flipped_byte_is_caught_and_not_kept_once_the_server_is_fixed(
    server: FileServer, store_dir: Path, tmp_path: Path, rng
) -> None:
    uri, contents = serve(server, rng, SHAPES["one file"])
    server.corrupt("/model.bin", offset=100)
    with pytest.raises(ChecksumMismatchError):
        WeightCache(store_dir).ensure(uri)
    assert WeightCache(store_dir).list() == []
    kill_at(store_dir, uri, 0.7, tmp_path)  # and a kill keeps the flipped byte on disk
    server.add("/model.bin", contents["model.bin"])  # fixed
    check(ensure_files(store_dir, uri), contents)


def test_a_file_written_afresh_drops_what_a_killed_populate_recorded_for_its_name(tmp_path: Path) -> None:
    # Else a later resume could take the record as describing these new bytes.
    staging = Staging(tmp_path / "staging", store_name="test")
    journal = Journal(staging.directory, "a.bin", size=4, version="etag x")
    journal.save([(0, 4)])
    staging.write_stream("a.bin", [b"abcd"])
    assert journal.load() == []
