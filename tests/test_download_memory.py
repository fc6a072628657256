"""Memory stays flat in the download's size with 32 connections in flight (bounded buffers)."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from weightcache.testing import FileServer

MIB = 1024 * 1024

#: The child downloads URI into STORE with 32 connections and prints its peak RSS (VmHWM, bytes).
CHILD = r"""
import sys
from weightcache import WeightCache
from weightcache.providers.sources.url import URLSource
WeightCache(sys.argv[1]).ensure(URLSource(sys.argv[2], connections=32))
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(int(peak.split()[1]) * 1024)
"""


def peak_rss(server: FileServer, tmp_path: Path, name: str, size: int, rng: random.Random) -> int:
    data = rng.randbytes(size)
    url = server.add(f"/{name}", data) + f"#sha256={hashlib.sha256(data).hexdigest()}"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / name), url],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return int(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_peak_memory_does_not_grow_with_the_download(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    rng = random.Random(request.node.nodeid)
    with FileServer() as server:
        small = peak_rss(server, tmp_path, "small.bin", 8 * MIB, rng)
        large = peak_rss(server, tmp_path, "large.bin", 192 * MIB, rng)  # 48 parts of 4 MiB, 32 in flight
    assert large - small < 32 * MIB, f"{small / MIB:.0f} MiB for 8 MiB, {large / MIB:.0f} MiB for 192 MiB"
