"""Measurements that need a fresh process: peak memory, imports, and clients of the test servers.

The parent calls :func:`measure_in_child`; the child (``python -m bench.child OP ARGS``) sets up,
times one call, and prints one JSON line with that time and its own peak RSS, so no other work
of the run (or of the parent, or of a server the parent runs) is counted.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
_STATUS = Path("/proc/self/status")
_READ_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ChildResult:
    """What one child process measured."""

    seconds: float
    peak_rss_bytes: int


class ChildFailed(RuntimeError):
    """The child's call raised; ``last_line`` is the end of its traceback (the exception)."""

    def __init__(self, command: str, stderr: str) -> None:
        lines = stderr.strip().splitlines()
        self.last_line = lines[-1] if lines else "no output"
        super().__init__(f"bench child {command} failed:\n{stderr.strip()}")


def measure_in_child(
    op: str, *args: str, env: dict[str, str] | None = None, prefix: list[str] | None = None
) -> ChildResult:
    """Run ``op`` in a fresh Python process and return the time of its call and its peak RSS.

    ``prefix`` is a command the Python process runs under (a private mount namespace, for one).
    """
    done = subprocess.run(
        [*(prefix or []), sys.executable, "-m", "bench.child", op, *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ChildFailed(f"{op} {' '.join(args)}", done.stderr)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return ChildResult(seconds=found["seconds"], peak_rss_bytes=found["peak_rss_bytes"])


def _import(target: str) -> Callable[[], object]:
    module, attribute = target.split(":")
    # Touching the attribute runs a package's lazy imports too.
    return lambda: getattr(importlib.import_module(module), attribute)


def _ensure(source_uri: str, store: str, *, hit: bool) -> Callable[[], object]:
    from weightcache import LocalStore, WeightCache

    cache = WeightCache(LocalStore(store))

    def call() -> None:
        if cache.ensure(source_uri).hit != hit:
            raise SystemExit(f"expected a {'hit' if hit else 'miss'} for {source_uri} in {store}")

    return call


def _one_stream(url: str, dest: str) -> Callable[[], object]:
    """One connection, as curl -C - or wget -c: after a drop, resume from the bytes already written."""

    def call() -> None:
        total = None
        with open(dest, "wb") as out:
            while total is None or out.tell() < total:
                request = urllib.request.Request(url, headers={"Range": f"bytes={out.tell()}-"})
                try:
                    with urllib.request.urlopen(request) as response:
                        # "bytes START-END/TOTAL"; http.client ends a cut body quietly, so count ourselves.
                        total = int(response.headers["Content-Range"].rsplit("/", 1)[1])
                        while chunk := response.read(_READ_BYTES):
                            out.write(chunk)
                except (HTTPException, ConnectionError):
                    continue

    return call


def _pooch(url: str, sha256: str, dest: str) -> Callable[[], object]:
    import pooch

    return lambda: pooch.retrieve(url, known_hash=f"sha256:{sha256}", fname="model.bin", path=dest)


def _truss(dest: str) -> Callable[[], object]:
    """truss-transfer resolving the manifest the parent bound at /bptr (see bench.cases.peers)."""
    import truss_transfer

    return lambda: truss_transfer.lazy_data_resolve(dest)


def _snapshot(repo_id: str, dest: str) -> Callable[[], object]:
    """huggingface_hub's snapshot_download from ``HF_ENDPOINT`` into a plain directory."""
    from huggingface_hub import snapshot_download

    return lambda: snapshot_download(repo_id, local_dir=dest)


OPS: dict[str, Callable[..., Callable[[], object]]] = {
    "import": _import,
    "baseline": lambda: _import("weightcache:WeightCache"),
    "populate": lambda uri, store: _ensure(uri, store, hit=False),
    "warm": lambda uri, store: _ensure(uri, store, hit=True),
    "one-stream": _one_stream,
    "pooch": _pooch,
    "truss": _truss,
    "snapshot": _snapshot,
}


def main() -> None:
    """Child side: set up ``OP`` with its arguments, time its call, print time and peak RSS."""
    call = OPS[sys.argv[1]](*sys.argv[2:])
    started = time.perf_counter()
    call()
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_rss_bytes": _peak_rss()}))


def _peak_rss() -> int:
    # Not ru_maxrss on Linux: it survives exec, so a child would report the parent's size at fork.
    if _STATUS.exists():
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS


if __name__ == "__main__":
    main()
