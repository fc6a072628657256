"""Parallel I/O tasks stop promptly: on the first error, and on Ctrl-C."""

from __future__ import annotations

import time

import pytest

from tests.helpers import run_python
from weightcache.parallel import run_parallel


def test_first_error_cancels_tasks_not_started() -> None:
    ran: list[int] = []

    def fail() -> None:
        raise OSError("disk gone")

    def copy() -> None:
        time.sleep(0.01)
        ran.append(1)

    with pytest.raises(OSError, match="disk gone"):
        run_parallel([fail, *[copy] * 50], threads=2)
    assert len(ran) < 10


def test_ctrl_c_does_not_wait_for_queued_tasks() -> None:
    code = """
import os, signal, threading, time
from weightcache.parallel import run_parallel
ran = []
def task():
    time.sleep(0.05)
    ran.append(1)
threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
try:
    run_parallel([task] * 200, threads=2)
except KeyboardInterrupt:
    print(len(ran))
"""
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 50  # 200 tasks would take 5 s; they stopped within a few
