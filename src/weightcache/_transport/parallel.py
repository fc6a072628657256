"""Run independent I/O tasks on a few threads, failing fast on the first error."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")


def run_parallel(tasks: Sequence[Callable[[], T]], *, threads: int) -> list[T]:
    """Run ``tasks`` on up to ``threads`` threads and return their results in order.

    The first exception cancels the tasks not yet started and is re-raised once the
    running ones finish, so no thread keeps writing after the caller cleans up. Ctrl-C
    cancels them too, instead of waiting for every queued task to run.
    """
    if threads <= 1 or len(tasks) <= 1:
        return [task() for task in tasks]
    with ThreadPoolExecutor(max_workers=min(threads, len(tasks)), thread_name_prefix="weightcache") as pool:
        futures: list[Future[T]] = [pool.submit(task) for task in tasks]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
        finally:
            for future in futures:
                future.cancel()  # only stops tasks not started yet
        wait(futures)
        for future in futures:
            if not future.cancelled() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        return [future.result() for future in futures]
