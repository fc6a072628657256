"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from weightcache.testing import FakeHub


def run_python(
    code: str,
    *args: str,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh Python process (real processes for concurrency and crash tests)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
        check=False,
    )


#: The uid and gid of ``nobody``: tests that check what another user may do act as it.
NOBODY = 65534


def as_nobody(action: Callable[[], str]) -> str:
    """Run ``action`` in a forked child that has dropped root for ``nobody``; return what it said."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            said = action()
        except BaseException as error:
            said = f"{type(error).__name__}: {error}"
        os.write(write_end, said.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        said = pipe.read()
    os.waitpid(pid, 0)
    return said


@contextlib.contextmanager
def serving_hub(monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes]) -> Iterator[FakeHub]:
    """A fake Hub holding ``acme/tiny`` = ``files``, reached through HF_ENDPOINT, with no token set."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with FakeHub() as running:
        monkeypatch.setenv("HF_ENDPOINT", running.url)
        running.add_repo("acme/tiny", files)
        yield running
