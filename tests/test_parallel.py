"""Parallel I/O tasks stop promptly: on the first error, and on Ctrl-C.

Every task here that could still be running when the error or Ctrl-C arrives blocks on a gate,
and the gate opens only once run_parallel has cancelled what was queued: so the count of tasks
that ran does not depend on how fast the machine is.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from weightcache._transport import parallel
from weightcache._transport.parallel import run_parallel


def test_first_error_cancels_tasks_not_started(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[int] = []
    gate = threading.Event()
    waits = 0
    original_wait = parallel.wait

    def wait(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal waits
        waits += 1
        if waits == 2:  # the wait for the running tasks: the queued ones are cancelled by now
            gate.set()
        return original_wait(*args, **kwargs)

    def fail() -> None:
        raise OSError("disk gone")

    def copy() -> None:
        assert gate.wait(60), "run_parallel never got to waiting for its running tasks"
        ran.append(1)

    monkeypatch.setattr(parallel, "wait", wait)
    with pytest.raises(OSError, match="disk gone"):
        run_parallel([copy, fail, *[copy] * 50], threads=2)
    assert 1 <= len(ran) <= 2  # only what the two threads had started when the error came


def test_ctrl_c_does_not_wait_for_queued_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[int] = []
    started, gate = threading.Semaphore(0), threading.Event()
    original_shutdown = ThreadPoolExecutor.shutdown

    def ctrl_c_while_waiting(*args, **kwargs):  # type: ignore[no-untyped-def]
        started.acquire()
        started.acquire()  # both threads are busy: Ctrl-C now, where the main thread waits
        raise KeyboardInterrupt

    def shutdown(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        gate.set()  # leaving the pool: the queued tasks are cancelled by now
        return original_shutdown(self, *args, **kwargs)

    def task() -> None:
        started.release()
        assert gate.wait(60), "run_parallel never left its pool"
        ran.append(1)

    monkeypatch.setattr(parallel, "wait", ctrl_c_while_waiting)
    monkeypatch.setattr(ThreadPoolExecutor, "shutdown", shutdown)
    with pytest.raises(KeyboardInterrupt):
        run_parallel([task] * 200, threads=2)
    assert len(ran) == 2  # the two running tasks finished; the 198 queued never started
