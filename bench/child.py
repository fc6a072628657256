"""Measurements that need a fresh process: peak memory, and what a container start pays to import.

The parent calls :func:`measure_in_child`; the child (``python -m bench.child OP ARGS``) does one
thing and prints one JSON line with its wall time and its own peak RSS, so no other work of
the run (or of the parent) is counted.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

_STATUS = Path("/proc/self/status")


@dataclass(frozen=True)
class ChildResult:
    """What one child process measured."""

    seconds: float
    peak_rss_bytes: int


def measure_in_child(op: str, *args: str, env: dict[str, str] | None = None) -> ChildResult:
    """Run ``op`` in a fresh Python process and return its time and peak RSS."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.child", op, *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench child {op} {' '.join(args)} failed:\n{done.stderr.strip()}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return ChildResult(seconds=found["seconds"], peak_rss_bytes=found["peak_rss_bytes"])


def _run(op: str, args: list[str]) -> float:
    started = time.perf_counter()
    if op == "import":
        module, attribute = args[0].split(":")
        getattr(importlib.import_module(module), attribute)  # touching it runs lazy imports
        return time.perf_counter() - started
    from weightcache import LocalStore, WeightCache

    if op == "baseline":
        return time.perf_counter() - started
    source_uri, store = args
    entry = WeightCache(LocalStore(store)).ensure(source_uri)
    if entry.hit != (op == "warm"):
        raise SystemExit(f"expected a {'hit' if op == 'warm' else 'miss'} for {source_uri} in {store}")
    return time.perf_counter() - started


def main() -> None:
    """Child side: ``import MODULE:ATTR`` | ``baseline`` | ``populate URI STORE`` | ``warm URI STORE``."""
    seconds = _run(sys.argv[1], sys.argv[2:])
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
