"""SIGKILL a real child process at a named point of a populate, gc or rm (or, in long runs, after a delay).

The child is forked from the test process (so hundreds of trials stay fast), runs one store
operation on the real filesystem, and dies by SIGKILL from the parent: no cleanup of any kind
runs, exactly as when a container is killed. To hit the narrow windows (between two renames,
between writing a manifest and renaming it into place), the child wraps the function or system
call at the named point; when it gets there it tells the parent through a pipe and stops, and
the parent kills it, sometimes after a short extra moment during which the child's other threads
go on. ``point=ANY`` stops at the n-th named point of any name. Nothing is mocked: every byte is
really written, renamed, fsynced or not.
"""

from __future__ import annotations

import faulthandler
import os
import random
import select
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from weightcache._core import gc as gc_module
from weightcache._core import populate, staging
from weightcache._transport import hashing, ranged

ANY = "any"  # as a point: whichever named point comes n-th
HANG_SECONDS = 30  # a trial's operation takes well under a second (an abandoned lease ~3 s): this is a hang


@dataclass(frozen=True)
class Outcome:
    """What became of one child: killed at a point, killed after a delay, finished, or failed."""

    how: str  # "point", "delay", "finished" or "error"
    detail: str = ""
    passed: int = 0  # for "finished": how many named points the operation passed, all names counted


def _path_role(path: object) -> str:
    text = os.fspath(path)  # type: ignore[call-overload]
    for part, role in (("/.weightcache/staging/", "staging"), ("/.weightcache/trash/", "trash")):
        if part in text:
            return role
    if "/.weightcache/refs/" in text:
        return "refs"
    return "entries" if "/entries/" in text else "other"


def _syscall_point(name: str, src: object, dst: object) -> str | None:
    """The named point a rename/replace/link in the child is, if any."""
    roles = (_path_role(src), _path_role(dst))
    if name == "rename" and roles == ("staging", "entries"):
        return "publish-rename"
    if name == "rename" and roles == ("entries", "trash"):
        return "entry-to-trash"
    if name == "replace" and os.fspath(dst).endswith("/manifest.json"):  # type: ignore[call-overload]
        return "manifest-replace"
    if name == "replace" and roles[1] == "refs":
        return "ref-replace"
    if name == "link" and roles[1] == "staging":
        return "reuse-link"
    return None


#: Every named point, and whether the child stops just before or just after it.
POINTS = {
    "lease-taken": "before",  # populate's reclaim_abandoned: first thing under the lease
    "plan": "after",  # staging created, the source announced its files
    "write-chunk": "after",  # a chunk written and hashed, the file incomplete
    "file-fsync": "before",  # a file completely written, not yet fsynced
    "file-recorded": "after",  # a file checked and recorded
    "adopt-hash": "before",  # a downloader's file about to be hashed back
    "reuse-link": "after",  # an unchanged file hardlinked from an earlier entry
    "fetched": "before",  # every file in staging, no manifest yet
    "manifest-replace": "both",  # manifest temp written / manifest in place, staging not yet renamed
    "publish-rename": "both",  # staging renamed into entries/, directory not yet fsynced
    "entry-to-trash": "after",  # an entry moved aside (publish over it, gc, rm): the narrow window
    "ref-replace": "before",  # the ref's temp file written
    "remove-tree": "before",  # deleting staging, trash or a replaced entry
    "drop-refs": "before",  # gc/rm: entry moved aside, its refs not yet forgotten
}


def _install(point: str, occurrence: int, stop: Callable[[str], None]) -> list[int]:
    """In the child: make the ``occurrence``-th arrival at ``point`` (any point for ``ANY``) call ``stop``.

    Returns a one-item list that counts the arrivals at every named point.
    """
    seen, passed = 0, [0]
    guard = threading.Lock()

    def reached(name: str) -> None:
        nonlocal seen
        with guard:
            passed[0] += 1
            if point not in (name, ANY):
                return
            seen += 1
            now = seen == occurrence
        if now:
            stop(name)

    def around(owner: object, attr: str, name: str, when: str) -> None:
        original = getattr(owner, attr)

        def wrapper(*args: object, **kwargs: object) -> object:
            if when in ("before", "both"):
                reached(name)
            result = original(*args, **kwargs)
            if when in ("after", "both"):
                reached(name)
            return result

        setattr(owner, attr, wrapper)

    for attr in ("rename", "replace", "link"):
        original = getattr(os, attr)

        def call(src: object, dst: object, *args: object, _attr: str = attr, _original=original, **kw):  # type: ignore[no-untyped-def]
            name = _syscall_point(_attr, src, dst)
            if name is not None and POINTS[name] in ("before", "both"):
                reached(name)
            result = _original(src, dst, *args, **kw)
            if name is not None and POINTS[name] in ("after", "both"):
                reached(name)
            return result

        setattr(os, attr, call)
    around(populate, "reclaim_abandoned", "lease-taken", "before")
    around(staging.Staging, "plan", "plan", "after")
    around(hashing.HashingWriter, "write", "write-chunk", "after")
    around(ranged.RangedWriter, "write_at", "write-chunk", "after")
    around(hashing.HashingWriter, "close", "file-fsync", "before")
    around(ranged.RangedWriter, "close", "file-fsync", "before")
    around(staging.Staging, "_add", "file-recorded", "after")
    around(staging, "hash_file", "adopt-hash", "before")
    around(staging.Staging, "records", "fetched", "before")
    around(populate, "remove_tree", "remove-tree", "before")
    around(gc_module, "remove_tree", "remove-tree", "before")
    around(gc_module, "drop_refs_to", "drop-refs", "before")
    return passed


def run_child(
    action: Callable[[], object],
    *,
    point: str | None = None,
    occurrence: int = 1,
    delay: float | None = None,
    rng: random.Random,
) -> Outcome:
    """Fork a child that runs ``action``; SIGKILL it at ``point`` (its n-th time) or after ``delay``.

    The outcome's detail names the point reached, which for ``ANY`` is the one that came n-th.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        # A hang is a bug to report, not a trial to wait out: dump every thread's stack to the parent.
        faulthandler.dump_traceback_later(HANG_SECONDS, file=os.fdopen(write_end, "w", closefd=False))
        try:
            passed = [0]
            if point is not None:
                passed = _install(point, occurrence, lambda name: _stop_here(write_end, name))
            action()
            os.write(write_end, f"finished {passed[0]}\n".encode())
        except BaseException as error:
            os.write(write_end, f"error {type(error).__name__}: {error}\n".encode()[:4000])
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        return _kill_child(pid, read_end, point, delay, rng)
    finally:
        os.close(read_end)


def _stop_here(write_end: int, name: str) -> None:
    os.write(write_end, f"point {name}\n".encode())
    threading.Event().wait()  # this thread stops here; the parent's SIGKILL ends the process


def _kill_child(
    pid: int, read_end: int, point: str | None, delay: float | None, rng: random.Random
) -> Outcome:
    ready, _, _ = select.select([read_end], [], [], HANG_SECONDS + 5 if delay is None else delay)
    said = os.read(read_end, 64 * 1024).decode(errors="replace") if ready else ""
    if said.startswith("finished"):
        os.waitpid(pid, 0)
        return Outcome("finished", passed=int(said.split()[1]))
    if said.startswith("error"):
        os.waitpid(pid, 0)
        return Outcome("error", said.strip())
    if said.startswith("point"):
        time.sleep(rng.choice([0, 0, 0.0005, 0.002]))  # sometimes let the other threads run on a little
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    if said.startswith("point"):
        return Outcome("point", said.split()[1])
    if not said and delay is not None:
        return Outcome("delay", f"{delay:.4f}s")
    raise AssertionError(f"the child hung (aiming for {point}):\n{said}")
