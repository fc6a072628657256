"""Files hashed at the same time share the CPUs instead of each starting BLAKE3's whole pool."""

from __future__ import annotations

import os
from pathlib import Path

import blake3

from weightcache._transport.hashing import blake3_threads, hash_file
from weightcache._transport.parallel import run_parallel


def test_a_file_alone_gets_blake3s_pool_and_files_together_share_the_cpus() -> None:
    assert blake3_threads(1, 2) == blake3.blake3.AUTO
    assert [blake3_threads(n, 2) for n in (2, 4)] == [1, 1]
    assert [blake3_threads(n, 16) for n in (2, 4, 32)] == [8, 4, 1]


def test_files_hashed_at_once_give_the_same_digests(tmp_path: Path) -> None:
    contents = [os.urandom(3 * 1024 * 1024 + index) for index in range(6)]
    paths = []
    for index, content in enumerate(contents):
        paths.append(tmp_path / f"f{index}")
        paths[-1].write_bytes(content)
    digests = run_parallel([lambda path=path: hash_file(path) for path in paths], threads=4)
    assert [d.blake3 for d in digests] == [blake3.blake3(c).hexdigest() for c in contents]
    assert [d.size for d in digests] == [len(c) for c in contents]
